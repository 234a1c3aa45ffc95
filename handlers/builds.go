package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"kozmic/git"
	"kozmic/internal/paths"
	"kozmic/internal/when"
	"kozmic/store"
	"kozmic/views"
)

const buildsPerPage = 25

func ago(t time.Time) views.Time {
	if t.IsZero() {
		return views.Time{}
	}
	return views.Time{Relative: when.Ago(t, time.Now()), Exact: t.Local().Format("2006-01-02 15:04:05 MST")}
}

// took is how long something ran: until it finished, or so far, and then
// with its start for the page to tick from.
func took(start, end time.Time) views.Elapsed {
	if start.IsZero() {
		return views.Elapsed{}
	}
	var e views.Elapsed
	if end.IsZero() {
		end = time.Now()
		e.Since = start.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	d := end.Sub(start).Round(time.Second)
	e.Text, e.Seconds = when.Duration(d), int64(d/time.Second)
	return e
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// buildsSection is the list of a project's builds, newest first, a page at
// a time (?before=N), optionally of one branch (?branch=), started one way
// (?event=, one of views.BuildEvents) and in one status (?status=, one of
// views.BuildStatuses). An event or status of no such value filters
// nothing.
func (h *Handler) buildsSection(r *http.Request, p store.Project) (views.BuildsView, error) {
	branch := strings.TrimSpace(r.URL.Query().Get("branch"))
	before, _ := strconv.Atoi(r.URL.Query().Get("before"))
	q := store.BuildQuery{Before: before, Limit: buildsPerPage + 1}
	event, status := filterValue(r, "event", views.BuildEvents), filterValue(r, "status", views.BuildStatuses)
	q.Trigger, q.Status = store.TriggerKind(event), store.BuildStatus(status)
	q.Ref = branchRef(branch)
	bs, err := h.db.Builds(r.Context(), p.ID, q)
	if err != nil {
		return views.BuildsView{}, err
	}
	v := views.BuildsView{ProjectID: p.ID, Branch: branch, Event: event, Status: status, DefaultBranch: p.DefaultBranch,
		BadgeMD: fmt.Sprintf("[![build](%s/badges/%s.svg)](%s%s)", h.baseURL, p.FullName, h.baseURL, paths.Project(p.ID))}
	if len(bs) > buildsPerPage {
		bs = bs[:buildsPerPage]
		v.NextBefore = bs[len(bs)-1].Number
	}
	for _, b := range bs {
		row := views.BuildRow{Number: b.Number, Status: views.BuildStatus(b.Status), Branch: b.Branch(), ShortSHA: b.ShortSHA(),
			Message: firstLine(b.Message), Author: b.Author, Trigger: h.trigger(p, b), Age: ago(b.CreatedAt)}
		if !b.StartedAt.IsZero() {
			row.Duration = took(b.StartedAt, b.FinishedAt)
		}
		v.Builds = append(v.Builds, row)
	}
	return v, nil
}

// branchRef is the ref a branch filter names: a full ref as it is, a
// branch's name as refs/heads/NAME; "" for none.
func branchRef(branch string) string {
	if branch == "" || strings.HasPrefix(branch, "refs/") {
		return branch
	}
	return "refs/heads/" + branch
}

// filterValue is the query parameter key when it is one of the options'
// values, else "".
func filterValue(r *http.Request, key string, options []views.FilterOption) string {
	v := r.URL.Query().Get(key)
	for _, o := range options {
		if o.Value == v {
			return v
		}
	}
	return ""
}

// trigger says how b was started and by whom: "push", "pull request #12"
// (linked to it for a GitHub project) or "manual", and who re-ran its jobs.
func (h *Handler) trigger(p store.Project, b store.Build) views.Trigger {
	t := views.Trigger{How: "push", By: b.Trigger.User, RerunBy: b.RerunUser}
	switch b.Trigger.Kind {
	case store.TriggerPullRequest:
		t.How = "pull request #" + strconv.Itoa(b.Trigger.PR)
		if p.Source == store.SourceGitHub {
			t.URL = fmt.Sprintf("%s/%s/pull/%d", h.githubURL, p.FullName, b.Trigger.PR)
		}
	case store.TriggerManual:
		t.How = "manual"
	}
	return t
}

// buildFor loads the build numbered in the path, of project p.
func (h *Handler) buildFor(r *http.Request, p store.Project) (store.Build, error) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		return store.Build{}, store.ErrNotFound
	}
	return h.db.BuildByNumber(r.Context(), p.ID, n)
}

func (h *Handler) showBuild(w http.ResponseWriter, r *http.Request) {
	p, role, err := h.projectFor(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b, err := h.buildFor(r, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	jobs, err := h.db.Jobs(r.Context(), b.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := views.BuildView{User: user(r).Login(), ProjectID: p.ID, FullName: p.FullName, Number: b.Number, Status: views.BuildStatus(b.Status),
		Ref: b.Ref, SHA: b.SHA, Message: b.Message, Author: b.Author, Trigger: h.trigger(p, b), Created: ago(b.CreatedAt), Finished: b.Status.Finished(),
		CanConfigure: role >= store.RoleManager}
	if q := r.URL.Query(); q.Has("existing") {
		v.Flash = existingFlash(q)
	}
	if p.Source == store.SourceGitHub {
		v.CommitURL = fmt.Sprintf("%s/%s/commit/%s", h.githubURL, p.FullName, b.SHA)
	}
	if !b.StartedAt.IsZero() {
		v.Duration = took(b.StartedAt, b.FinishedAt)
	}
	// A build that finished without starting (every job canceled while
	// queued) waited for nothing in the end: no queue time.
	if !b.StartedAt.IsZero() || !v.Finished {
		v.Queued = took(b.CreatedAt, b.StartedAt)
	}
	notes, err := h.db.BuildAnnotationCounts(r.Context(), b.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	waiting := h.jobs.Waiting()
	for _, j := range latestAttempts(jobs) {
		row := views.JobRow{ID: j.ID, Title: j.HookTitle, Attempt: j.Attempt, Status: views.JobStatus(j.Status), Duration: took(j.StartedAt, j.FinishedAt),
			Annotations: notes[j.ID]}
		switch j.Cache {
		case store.CacheHit:
			row.Cache = "cache hit"
		case store.CacheMiss:
			row.Cache = "cache miss"
		}
		if j.Status == store.JobEnqueued {
			row.Waiting = waiting
		}
		v.AnyFailed = v.AnyFailed || j.Status == store.JobFailure || j.Status == store.JobError
		v.Jobs = append(v.Jobs, row)
	}
	h.renderPolled(w, r, views.BuildPage(v), views.JobsTable(v))
}

// latestAttempts keeps the newest attempt of each hook call; jobs come
// ordered by hook title, hook call and attempt.
func latestAttempts(jobs []store.Job) []store.Job {
	var out []store.Job
	for i, j := range jobs {
		if i+1 < len(jobs) && jobs[i+1].HookCallID == j.HookCallID {
			continue
		}
		out = append(out, j)
	}
	return out
}

func (h *Handler) rerunFailed(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b, err := h.buildFor(r, p)
	if err == nil {
		_, err = h.jobs.RerunFailed(r.Context(), b.ID, user(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, paths.Build(p.ID, b.Number), http.StatusSeeOther)
}

// cancelBuild cancels every job of a build that has not finished, for its
// managers and owner: a queued job never runs, a running one is killed,
// each ending as an error "canceled by <login>". A job that finishes
// meanwhile keeps its result.
func (h *Handler) cancelBuild(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b, err := h.buildFor(r, p)
	var jobs []store.Job
	if err == nil {
		jobs, err = h.db.Jobs(r.Context(), b.ID)
	}
	for _, j := range jobs {
		if err != nil {
			break
		}
		if !j.Status.Finished() {
			// ErrConflict: it finished since it was read.
			if err = h.jobs.Cancel(r.Context(), j.ID, user(r).Login()); errors.Is(err, store.ErrConflict) {
				err = nil
			}
		}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, paths.Build(p.ID, b.Number), http.StatusSeeOther)
}

// The query keys of a build page after Run build of a commit built before:
// how many jobs that added for new hooks and re-ran for edited ones, and how
// many edited hooks it left alone.
const (
	queryAdded      = "added"
	queryRerun      = "rerun"
	queryEditedLeft = "edited"
)

// existingFlash says what Run build of a commit built before did, from the
// counts in q (see queryAdded); a count that is no positive number is none.
func existingFlash(q url.Values) string {
	n := func(key string) int {
		i, err := strconv.Atoi(q.Get(key))
		if err != nil || i < 0 {
			return 0
		}
		return i
	}
	pick := func(n int, one, many string) string {
		if n == 1 {
			return one
		}
		return many
	}
	count := func(n int, noun string) string { return fmt.Sprintf("%d %s", n, pick(n, noun, noun+"s")) }
	added, rerun, left := n(queryAdded), n(queryRerun), n(queryEditedLeft)
	msg := "This commit was built before: here is that build."
	if added > 0 {
		msg += fmt.Sprintf(" Added %s for hooks it had not run.", count(added, "job"))
	}
	if rerun > 0 {
		msg += fmt.Sprintf(" Re-running %s edited since %s.", count(rerun, "hook"), pick(rerun, "its job ran", "their jobs ran"))
	}
	if left > 0 {
		msg += fmt.Sprintf(" %s edited since %s not re-run: tick “Also re-run hooks edited since their jobs ran” on Run build to re-run %s once %s finished.",
			count(left, "hook"), pick(left, "its job ran was", "their jobs ran were"), pick(left, "it", "them"), pick(left, "its job has", "their jobs have"))
	}
	if added+rerun == 0 {
		msg += " Restart a job or re-run the failed ones to build it again."
	}
	return msg
}

// buildsOfProject sends a member to the project's page, which lists its
// builds. A refused Run build renders its form at this path, so a reload or
// a copied address lands here rather than on a 404.
func (h *Handler) buildsOfProject(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, paths.Project(p.ID), http.StatusSeeOther)
}

// runBuild starts a build of what the form names (a branch, tag or commit),
// resolved to a commit on the project's git server. A commit built before
// shows that build, with a job added for each hook it has not run and, when
// the form asks (rerun_edited), a new attempt of each hook edited since its
// job there ran. When every git slot stays taken it answers 503
// with Retry-After; the first contact with an SSH server pins its host key,
// and a key other than the pinned one is refused with both fingerprints.
// The branch HEAD names, which git lists anyway, becomes the project's
// default branch.
func (h *Handler) runBuild(w http.ResponseWriter, r *http.Request) {
	p, role, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	typed := strings.TrimSpace(r.PostFormValue("ref"))
	refuse := func(msg string) {
		v, err := h.projectView(r, p, role)
		if err == nil {
			v.Builds, err = h.buildsSection(r, p)
		}
		if err == nil {
			v.Insights, err = h.insightsSection(r, p)
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		v.RunRef, v.Error = typed, msg
		h.render(w, r, http.StatusUnprocessableEntity, views.ProjectPage(v))
	}
	key, err := h.db.DeployKeyOf(ctx, p.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.fail(w, r, err)
		return
	}
	var pinErr error
	remote := git.Remote{URL: p.CloneURL(), DeployKey: key.PrivateKey, HostKey: p.SSHHostKey, Pin: func(k string) error {
		if pinErr = h.db.PinHostKey(ctx, p.ID, k); pinErr == nil {
			fp, _ := git.Fingerprint(k) // git made k
			h.log.InfoContext(ctx, "pinned the SSH host key of a git server", "project", p.ID, "fingerprint", fp)
		}
		return pinErr
	}}
	ref, sha, defaultBranch, err := git.ResolveRef(ctx, remote, typed)
	switch {
	case ctx.Err() != nil:
		return // the person left while git ran: nobody to answer
	case errors.Is(err, git.ErrBusy):
		h.fail(w, r, errBusy)
		return
	case pinErr != nil:
		h.fail(w, r, pinErr)
		return
	case err != nil:
		refuse(err.Error())
		return
	}
	// git listed HEAD anyway: the badge's branch comes free.
	h.learnDefaultBranch(ctx, p.ID, p.DefaultBranch, defaultBranch)
	// A repository on this machine has the commit at hand; of any other,
	// the first job's checkout reads it (runner, SetBuildCommit).
	commit, _, err := git.LocalCommit(ctx, p.CloneURL(), sha)
	switch {
	case ctx.Err() != nil:
		return
	case errors.Is(err, git.ErrBusy):
		h.fail(w, r, errBusy)
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	run, err := h.db.RunBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: ref, SHA: sha, Author: commit.Author,
		Message: commit.Subject, Trigger: store.Trigger{Kind: store.TriggerManual, User: user(r).Login(), UserID: user(r).ID}},
		r.PostFormValue("rerun_edited") != "")
	switch {
	case errors.Is(err, store.ErrNoHooks):
		refuse("The project has no hooks yet: add one in its settings, then run it.")
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	b := run.Build
	path := paths.Build(p.ID, b.Number)
	if run.Existed {
		q := url.Values{}
		for key, n := range map[string]int{queryAdded: run.Added, queryRerun: len(run.Jobs) - run.Added, queryEditedLeft: run.EditedLeft} {
			if n > 0 {
				q.Set(key, strconv.Itoa(n))
			}
		}
		path += "?existing"
		if len(q) > 0 {
			path += "&" + q.Encode()
		}
	}
	if len(run.Jobs) > 0 {
		h.jobs.Enqueued()
		h.log.InfoContext(r.Context(), "build run by hand", "project", p.ID, "build", b.Number, "ref", clip(ref), "sha", sha,
			"by", user(r).Login(), "jobs", len(run.Jobs), "existed", run.Existed)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}
