package handlers

import (
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
	v, err := h.jobView(r, p, role, b, j)
	if err == nil {
		v.Tools, err = h.logTools(r, p, b, j)
	}
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
	path := paths.Job(p.ID, b.Number, j.ID)
	// Ended, but the store does not have the result yet: nothing is left to cancel.
	recording := !j.Status.Finished() && h.jobs.Recording(j.ID)
	fork, _ := b.ScopeName(j.CacheScope)
	v := views.JobView{User: user(r).Login(), ProjectID: p.ID, FullName: p.FullName, BuildNumber: b.Number, ID: j.ID,
		Title: j.HookTitle, Attempt: j.Attempt, Status: views.JobStatus(j.Status), Duration: took(j.StartedAt, j.FinishedAt),
		Error: j.Error, Cache: j.Cache, CacheFork: fork, CanConfigure: role >= store.RoleManager,
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
