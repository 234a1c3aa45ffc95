package handlers

import (
	"math"
	"net/http"
	"strconv"

	"kozmic/internal/paths"
	"kozmic/store"
	"kozmic/views"
)

// projectJob loads the project, build and job named in the path, checking
// the user's role as projectFor does.
func (h *Handler) projectJob(r *http.Request, need store.Role) (store.Project, store.Role, store.Build, store.Job, error) {
	p, role, err := h.projectFor(r, need)
	if err != nil {
		return p, role, store.Build{}, store.Job{}, err
	}
	b, j, err := h.jobFor(r, p)
	return p, role, b, j, err
}

// jobFor loads the build and job named in the path; the job must belong to
// that build of project p.
func (h *Handler) jobFor(r *http.Request, p store.Project) (store.Build, store.Job, error) {
	b, err := h.buildFor(r, p)
	if err != nil {
		return b, store.Job{}, err
	}
	id, err := strconv.ParseInt(r.PathValue("job"), 10, 64)
	if err != nil {
		return b, store.Job{}, store.ErrNotFound
	}
	j, err := h.db.JobByID(r.Context(), id)
	if err == nil && j.BuildID != b.ID {
		err = store.ErrNotFound
	}
	return b, j, err
}

func (h *Handler) showJob(w http.ResponseWriter, r *http.Request) {
	p, role, b, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if r.Header.Get("HX-Request") == "true" {
		// The list of the build's jobs polls for itself: it reads them alone.
		all, err := h.db.Jobs(r.Context(), b.ID)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		list := views.JobList(jobLinks(p, b, j, all), jobListPoll(p, b, j))
		h.renderPolled(w, r, list, list)
		return
	}
	v, err := h.jobView(r, p, role, b, j)
	if err == nil {
		err = h.logView(r, p, b, j, &v)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.renderPolled(w, r, views.JobPage(v), views.JobList(v.Jobs, v.PollURL)) // for its Vary
}

// jobListPoll is where the list of jobs beside job j's log polls for
// itself: its page, until the build has finished; then "", no more polls.
func jobListPoll(p store.Project, b store.Build, j store.Job) string {
	if b.Status.Finished() {
		return ""
	}
	return paths.Job(p.ID, b.Number, j.ID)
}

// jobView is what a job's page shows, also sent again when its log ends.
func (h *Handler) jobView(r *http.Request, p store.Project, role store.Role, b store.Build, j store.Job) (views.JobView, error) {
	all, err := h.db.Jobs(r.Context(), b.ID)
	if err != nil {
		return views.JobView{}, err
	}
	path := paths.Job(p.ID, b.Number, j.ID)
	// Ended, but the store does not have the result yet: nothing is left to cancel.
	recording := !j.Status.Finished() && h.jobs.Recording(j.ID)
	fork, _ := b.ScopeName(j.CacheScope)
	v := views.JobView{User: user(r).Login(), ProjectID: p.ID, FullName: p.FullName, BuildNumber: b.Number, ID: j.ID,
		Title: j.HookTitle, Attempt: j.Attempt, Status: views.JobStatus(j.Status), Duration: took(j.StartedAt, j.FinishedAt),
		Error: j.Error, Cache: j.Cache, CacheFork: fork, Engine: j.Engine, CanConfigure: role >= store.RoleManager,
		CanCancel: !j.Status.Finished() && !recording, Finished: j.Status.Finished(), Recording: recording,
		StreamURL: path + "/log/stream", PageURL: path + "/log", RawURL: path + "/log.txt"}
	latest := true
	for _, a := range all {
		if a.HookCallID != j.HookCallID {
			continue
		}
		v.Attempts = append(v.Attempts, views.AttemptLink{ID: a.ID, Attempt: a.Attempt, Status: views.JobStatus(a.Status), Current: a.ID == j.ID})
		latest = a.Attempt <= j.Attempt
	}
	v.CanRestart = j.Status.Finished() && latest && j.HookID != 0
	if v.Annotations, err = h.annotationsView(r.Context(), p, b, j); err != nil {
		return v, err
	}
	v.Jobs, v.PollURL = jobLinks(p, b, j, all), jobListPoll(p, b, j)
	info, err := h.db.LogInfoOf(r.Context(), j.ID)
	if err != nil {
		return v, err
	}
	switch {
	case !info.DeletedAt.IsZero():
		v.LogNote = "This job's log was deleted " + ago(info.DeletedAt).Relative + ", as logs are kept for a limited time (KOZMIC_KEEP_LOGS)."
	case info.Truncated:
		v.LogNote = "This log reached the size limit (KOZMIC_MAX_LOG_BYTES): the rest of the job's output was not kept."
	}
	return v, nil
}

// logSections are the sections of a finished job's log, one for each of
// its steps, each loading its own byte range of the log a page at a time:
// closed when the step passed or was skipped, open otherwise. A step the
// store still shows running (its end was lost) ends as its job did.
func logSections(steps []store.JobStep, j store.Job, pageURL string) []views.LogSection {
	out := make([]views.LogSection, len(steps))
	for i, s := range steps {
		if s.Status == store.StepRunning {
			s.Status, s.FinishedAt = store.StepStatusOf(j.Status), j.FinishedAt
		}
		url := pageURL + "?at=" + strconv.FormatInt(s.Offset, 10) + ":" + strconv.Itoa(s.Line)
		if rng := stepRange(steps, i); rng.to != math.MaxInt64 {
			url += "&to=" + strconv.FormatInt(rng.to, 10)
		}
		out[i] = sectionOf(s)
		out[i].PageURL = url
	}
	return out
}

// stepRange is the part of a log with these steps that is step i's
// section: from its start to the next step's.
func stepRange(steps []store.JobStep, i int) logRange {
	rng := logRange{from: steps[i].Offset, line: steps[i].Line, to: math.MaxInt64}
	if i+1 < len(steps) {
		rng.to = steps[i+1].Offset
	}
	return rng
}

// sectionOf shows step s as a section of its job's log, open unless it
// passed or was skipped.
func sectionOf(s store.JobStep) views.LogSection {
	return views.LogSection{ID: views.LogSectionID(s.Seq), Line: s.Line, Name: s.Name.Title(), Status: s.Status,
		Duration: took(s.StartedAt, s.FinishedAt), Open: s.Status != store.StepSuccess && s.Status != store.StepSkipped}
}

// jobLinks lists the build's jobs beside job j's log: the newest attempt
// of each, except that j stands for its own.
func jobLinks(p store.Project, b store.Build, j store.Job, all []store.Job) []views.JobLink {
	latest := latestAttempts(all)
	out := make([]views.JobLink, len(latest))
	for i, a := range latest {
		if a.HookCallID == j.HookCallID {
			a = j
		}
		out[i] = views.JobLink{Title: a.HookTitle, URL: paths.Job(p.ID, b.Number, a.ID), Status: views.JobStatus(a.Status),
			Duration: took(a.StartedAt, a.FinishedAt), Attempt: a.Attempt, Current: a.ID == j.ID}
	}
	return out
}

func (h *Handler) cancelJob(w http.ResponseWriter, r *http.Request) {
	p, _, b, j, err := h.projectJob(r, store.RoleManager)
	if err == nil {
		err = h.jobs.Cancel(r.Context(), j.ID, user(r).Login())
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, paths.Job(p.ID, b.Number, j.ID), http.StatusSeeOther)
}

func (h *Handler) restartJob(w http.ResponseWriter, r *http.Request) {
	p, _, b, j, err := h.projectJob(r, store.RoleManager)
	if err == nil {
		j, err = h.jobs.Restart(r.Context(), j.ID, user(r))
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, paths.Job(p.ID, b.Number, j.ID), http.StatusSeeOther)
}
