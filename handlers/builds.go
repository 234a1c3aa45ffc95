package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	terminal "github.com/buildkite/terminal-to-html/v3"

	"kozmic/internal/when"
	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

const buildsPerPage = 25

// statusViews shows build and job statuses alike: a build "pending" and a
// job "running" are both running.
var statusViews = map[string]views.Status{
	"enqueued": {Word: "enqueued", Class: "status-enqueued"},
	"pending":  {Word: "running", Class: "status-running"},
	"running":  {Word: "running", Class: "status-running"},
	"success":  {Word: "passed", Class: "status-success"},
	"failure":  {Word: "failed", Class: "status-failure"},
	"error":    {Word: "error", Class: "status-error"},
}

func buildStatus(s store.BuildStatus) views.Status { return statusViews[string(s)] }
func jobStatus(s store.JobStatus) views.Status     { return statusViews[string(s)] }

func ago(t time.Time) views.Time {
	if t.IsZero() {
		return views.Time{}
	}
	return views.Time{Relative: when.Ago(t, time.Now()), Exact: t.Local().Format("2006-01-02 15:04:05 MST")}
}

// took is how long something ran: until it finished, or so far.
func took(start, end time.Time) string {
	if start.IsZero() {
		return ""
	}
	if end.IsZero() {
		end = time.Now()
	}
	return when.Duration(end.Sub(start))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func shortSHA(sha string) string {
	if len(sha) > 8 {
		return sha[:8]
	}
	return sha
}

// buildsSection is the list of a project's builds, newest first, a page at
// a time (?before=N), optionally of one branch (?branch=).
func (h *Handler) buildsSection(r *http.Request, p store.Project) (views.BuildsView, error) {
	branch := strings.TrimSpace(r.URL.Query().Get("branch"))
	before, _ := strconv.Atoi(r.URL.Query().Get("before"))
	q := store.BuildQuery{Before: before, Limit: buildsPerPage + 1}
	if branch != "" {
		q.Ref = branch
		if !strings.HasPrefix(branch, "refs/") {
			q.Ref = "refs/heads/" + branch
		}
	}
	bs, err := h.db.Builds(r.Context(), p.ID, q)
	if err != nil {
		return views.BuildsView{}, err
	}
	v := views.BuildsView{ProjectID: p.ID, Branch: branch,
		BadgeMD: fmt.Sprintf("[![build](%s/badges/%s.svg)](%s/projects/%d)", h.baseURL, p.FullName, h.baseURL, p.ID)}
	if len(bs) > buildsPerPage {
		bs = bs[:buildsPerPage]
		v.NextBefore = bs[len(bs)-1].Number
	}
	for _, b := range bs {
		row := views.BuildRow{Number: b.Number, Status: buildStatus(b.Status), Branch: b.Branch(), ShortSHA: shortSHA(b.SHA),
			Message: firstLine(b.Message), Author: b.Author, Age: ago(b.CreatedAt)}
		if !b.StartedAt.IsZero() {
			row.Duration = took(b.StartedAt, b.FinishedAt)
		}
		v.Builds = append(v.Builds, row)
	}
	return v, nil
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
	v := views.BuildView{User: user(r).Login(), ProjectID: p.ID, FullName: p.FullName, Number: b.Number, Status: buildStatus(b.Status),
		Ref: b.Ref, SHA: b.SHA, Message: b.Message, Author: b.Author, Created: ago(b.CreatedAt), Finished: b.Status.Finished(),
		CanConfigure: role >= store.RoleManager}
	if r.URL.Query().Has("existing") {
		v.Flash = "This commit was built before: here is that build. Restart a job or re-run the failed ones to build it again."
	}
	if p.Source == store.SourceGitHub {
		v.CommitURL = fmt.Sprintf("%s/%s/commit/%s", h.githubURL, p.FullName, b.SHA)
	}
	if !b.StartedAt.IsZero() {
		v.Duration = took(b.StartedAt, b.FinishedAt)
	}
	waiting := h.jobs.Waiting()
	for _, j := range latestAttempts(jobs) {
		row := views.JobRow{ID: j.ID, Title: j.HookTitle, Attempt: j.Attempt, Status: jobStatus(j.Status), Duration: took(j.StartedAt, j.FinishedAt)}
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
	h.render(w, r, http.StatusOK, views.BuildPage(v))
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
		_, err = h.jobs.RerunFailed(r.Context(), b.ID)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/projects/%d/builds/%d", p.ID, b.Number), http.StatusSeeOther)
}

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

func (h *Handler) jobPath(p store.Project, b store.Build, j store.Job) string {
	return fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, b.Number, j.ID)
}

func (h *Handler) showJob(w http.ResponseWriter, r *http.Request) {
	p, role, b, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.jobView(r, p, role, b, j)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, views.JobPage(v))
}

// jobView is what a job's page shows, also sent again when its log ends.
func (h *Handler) jobView(r *http.Request, p store.Project, role store.Role, b store.Build, j store.Job) (views.JobView, error) {
	all, err := h.db.Jobs(r.Context(), b.ID)
	if err != nil {
		return views.JobView{}, err
	}
	path := h.jobPath(p, b, j)
	v := views.JobView{User: user(r).Login(), ProjectID: p.ID, FullName: p.FullName, BuildNumber: b.Number, ID: j.ID,
		Title: j.HookTitle, Attempt: j.Attempt, Status: jobStatus(j.Status), Duration: took(j.StartedAt, j.FinishedAt),
		Error: j.Error, CanConfigure: role >= store.RoleManager, CanCancel: !j.Status.Finished(), Finished: j.Status.Finished(),
		StreamURL: path + "/log/stream", PageURL: path + "/log", RawURL: path + "/log.txt"}
	latest := true
	for _, a := range all {
		if a.HookCallID != j.HookCallID {
			continue
		}
		v.Attempts = append(v.Attempts, views.AttemptLink{ID: a.ID, Attempt: a.Attempt, Status: jobStatus(a.Status), Current: a.ID == j.ID})
		latest = a.Attempt <= j.Attempt
	}
	v.CanRestart = j.Status.Finished() && latest && j.HookID != 0
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

func (h *Handler) cancelJob(w http.ResponseWriter, r *http.Request) {
	p, _, b, j, err := h.projectJob(r, store.RoleManager)
	if err == nil {
		err = h.jobs.Cancel(r.Context(), j.ID, user(r).Login())
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, h.jobPath(p, b, j), http.StatusSeeOther)
}

func (h *Handler) restartJob(w http.ResponseWriter, r *http.Request) {
	p, _, b, j, err := h.projectJob(r, store.RoleManager)
	if err == nil {
		j, err = h.jobs.Restart(r.Context(), j.ID)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, h.jobPath(p, b, j), http.StatusSeeOther)
}

// rawLog sends the stored log as it is, ANSI codes and all.
func (h *Handler) rawLog(w http.ResponseWriter, r *http.Request) {
	_, _, _, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="job-%d.log"`, j.ID))
	for pos := int64(0); ; {
		data, err := h.db.ReadLog(r.Context(), j.ID, pos, 1<<20)
		if err != nil {
			h.log.ErrorContext(r.Context(), "read log", "job", j.ID, "err", err)
			return
		}
		if len(data) == 0 {
			return
		}
		if _, err := w.Write(data); err != nil {
			return
		}
		pos += int64(len(data))
	}
}

// logPageLines is how many lines of a finished log one page holds: enough
// to fill a screen many times over, few enough that a browser renders them at
// once however long the whole log is.
const logPageLines = 1000

// logPage answers GET .../log?at=OFFSET:LINE with the next page of a job's
// log as numbered HTML lines, followed, if the log goes on, by a placeholder
// that loads the page after it when it scrolls into view. A job still
// running keeps its unfinished last line for a later page.
func (h *Handler) logPage(w http.ResponseWriter, r *http.Request) {
	p, _, b, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	from, line := parseEventID(r.URL.Query().Get("at"))
	lines := &lineRenderer{next: line, pos: from}
	var out strings.Builder
	read, eof := from, false
	for lines.next-line < logPageLines {
		data, err := h.db.ReadLog(r.Context(), j.ID, read, 64<<10)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if len(data) == 0 {
			eof = true
			break
		}
		data = upToLines(data, logPageLines-(lines.next-line))
		read += int64(len(data))
		out.WriteString(lines.write(data))
	}
	if eof && j.Status.Finished() {
		out.WriteString(lines.flush())
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Each page is a block of its own, so that the browser can skip laying
	// out the pages that are off screen.
	io.WriteString(w, `<div class="log-page">`+out.String()+`</div>`)
	if !eof {
		next := fmt.Sprintf("%s/log?at=%d:%d", h.jobPath(p, b, j), lines.pos, lines.next)
		views.LogMore(next, "intersect once").Render(r.Context(), w)
	}
}

// upToLines cuts p after its nth newline, if it has that many.
func upToLines(p []byte, n int) []byte {
	for i, c := range p {
		if c == '\n' {
			if n--; n == 0 {
				return p[:i+1]
			}
		}
	}
	return p
}

// heartbeat is how often an idle log stream says it is alive, so that
// proxies keep it open.
const heartbeat = 15 * time.Second

// logStream sends a job's log as server-sent events: the stored log, then
// new output as it comes, as numbered HTML lines (ANSI colours rendered on
// the server; a line is sent when it is complete, so \r progress bars show
// their last state). Each event's id is "offset:line" of the next line, so a
// reconnect with Last-Event-ID continues with no gap and no repeat. When the
// job ends a final "end" event carries its status.
func (h *Handler) logStream(w http.ResponseWriter, r *http.Request) {
	p, role, b, j, err := h.projectJob(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	from, line := parseEventID(r.Header.Get("Last-Event-ID"))
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)

	var mu sync.Mutex // the heartbeat and the log write to w in turn
	send := func(s string) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := io.WriteString(w, s); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(": log of job " + strconv.FormatInt(j.ID, 10) + "\n\n"); err != nil {
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	var beats sync.WaitGroup
	defer beats.Wait() // after cancel: nothing may write to w once the handler returns
	defer cancel()
	beats.Go(func() {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if send(": heartbeat\n\n") != nil {
					cancel()
				}
			}
		}
	})

	lines := &lineRenderer{next: line, pos: from}
	err = h.jobs.Follow(ctx, j.ID, from, func(c runner.Chunk) error {
		if out := lines.write(c.Data); out != "" {
			return send(lines.event(out))
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			h.log.WarnContext(r.Context(), "log stream", "job", j.ID, "err", err)
		}
		return
	}
	if out := lines.flush(); out != "" {
		if send(lines.event(out)) != nil {
			return
		}
	}
	done, err := h.db.JobByID(ctx, j.ID)
	if err != nil {
		return
	}
	v, err := h.jobView(r, p, role, b, done)
	if err != nil {
		return
	}
	var head bytes.Buffer
	views.JobHead(v).Render(ctx, &head)
	send("event: end\ndata: " + strings.ReplaceAll(head.String(), "\n", "") + "\n\n")
}

// parseEventID reads "offset:line"; anything else starts at the beginning.
func parseEventID(id string) (int64, int) {
	off, ln, ok := strings.Cut(id, ":")
	o, err1 := strconv.ParseInt(off, 10, 64)
	l, err2 := strconv.Atoi(ln)
	if !ok || err1 != nil || err2 != nil || o < 0 || l < 1 {
		return 0, 1
	}
	return o, l
}

// lineRenderer turns terminal output into numbered HTML lines, holding an
// unfinished line back until its newline comes.
type lineRenderer struct {
	pending []byte
	next    int   // number of the next line
	pos     int64 // byte offset where pending starts
}

// write takes more output and returns the HTML of the lines it completed.
func (l *lineRenderer) write(p []byte) string {
	l.pending = append(l.pending, p...)
	var b strings.Builder
	for {
		i := bytes.IndexByte(l.pending, '\n')
		if i < 0 {
			return b.String()
		}
		l.line(&b, l.pending[:i])
		l.pos += int64(i + 1)
		l.pending = l.pending[i+1:]
	}
}

// flush renders what is left at the end of the log as a last line.
func (l *lineRenderer) flush() string {
	if len(l.pending) == 0 {
		return ""
	}
	var b strings.Builder
	l.line(&b, l.pending)
	l.pos += int64(len(l.pending))
	l.pending = nil
	return b.String()
}

func (l *lineRenderer) line(b *strings.Builder, raw []byte) {
	raw = bytes.TrimSuffix(raw, []byte("\r"))
	n := strconv.Itoa(l.next)
	fmt.Fprintf(b, `<div class="line" id="L%s"><a href="#L%s">%s</a><span>%s</span></div>`, n, n, n,
		strings.ReplaceAll(terminal.Render(raw), "\n", ""))
	l.next++
}

// event wraps rendered lines as one server-sent event whose id resumes after them.
func (l *lineRenderer) event(htmlLines string) string {
	return fmt.Sprintf("id: %d:%d\nevent: line\ndata: %s\n\n", l.pos, l.next, htmlLines)
}

// badge answers GET /badges/{owner}/{name}.svg[?ref=BRANCH] with an SVG
// reading passing, failing, error, running or unknown, never cached. It is
// public, as badges are shown in READMEs; a private project's badge reads
// unknown like a missing one, so it tells nothing.
func (h *Handler) badge(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("file"), ".svg")
	word := "unknown"
	if ok {
		if p, err := h.db.ProjectByName(r.Context(), r.PathValue("owner")+"/"+name); err == nil && p.IsPublic {
			ref := r.URL.Query().Get("ref")
			if ref != "" && !strings.HasPrefix(ref, "refs/") {
				ref = "refs/heads/" + ref
			}
			if b, err := h.db.LatestBuild(r.Context(), p.ID, ref); err == nil {
				word = map[store.BuildStatus]string{store.BuildSuccess: "passing", store.BuildFailure: "failing",
					store.BuildError: "error", store.BuildPending: "running", store.BuildEnqueued: "running"}[b.Status]
			}
		}
	}
	colour := map[string]string{"passing": "#1a7f37", "failing": "#cf222e", "error": "#9a6700", "running": "#8250df", "unknown": "#6e7781"}[word]
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0")
	fmt.Fprintf(w, badgeSVG, word, word, colour, html.EscapeString(word))
}

const badgeSVG = `<svg xmlns="http://www.w3.org/2000/svg" width="98" height="20" role="img" aria-label="build: %s">` +
	`<title>build: %s</title><rect width="40" height="20" fill="#555"/><rect x="40" width="58" height="20" fill="%s"/>` +
	`<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">` +
	`<text x="20" y="14">build</text><text x="69" y="14">%s</text></g></svg>`
