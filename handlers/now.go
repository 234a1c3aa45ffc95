package handlers

import (
	"context"
	"net/http"
	"time"

	"kozmic/store"
	"kozmic/views"
)

// nowPanel answers the now panel's poll with the panel alone; anything
// but an htmx request is sent to the dashboard, which holds it.
func (h *Handler) nowPanel(w http.ResponseWriter, r *http.Request) {
	// The two answers differ, so a cache must not give one for the other.
	w.Header().Add("Vary", "HX-Request")
	if r.Header.Get("HX-Request") != "true" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	v, err := h.nowView(r.Context(), user(r).ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, views.NowPanel(v))
}

// nowView is what runs and waits now as user userID may see it (see
// store.DB.Activity), with the worker each running job holds, which only
// the runner knows, what each waiting job waits for, and, when there are
// several Docker engines, each one's load.
func (h *Handler) nowView(ctx context.Context, userID int64) (views.NowView, error) {
	a, err := h.db.Activity(ctx, userID)
	if err != nil {
		return views.NowView{}, err
	}
	slots := h.jobs.Slots()
	slotOf := make(map[int64]int, len(slots))
	for i, id := range slots {
		if id != 0 {
			slotOf[id] = i + 1
		}
	}
	v := views.NowView{Busy: len(slotOf), Workers: len(slots),
		UnlistedRunning: a.RunningAll - len(a.Running), UnlistedQueued: a.QueuedAll - len(a.Queued)}
	for _, j := range a.Running {
		nj := nowJob(j, j.StartedAt)
		nj.Slot = slotOf[j.ID]
		v.Running = append(v.Running, nj)
	}
	// A waiting job starts at once while an engine that answers has a
	// free slot: those of engines that do not answer are no use.
	engines := h.jobs.Engines()
	free, down := 0, true
	for _, e := range engines {
		if !e.Down {
			free, down = free+max(e.Slots-e.Busy, 0), false
		}
		if len(engines) > 1 {
			v.Engines = append(v.Engines, views.NowEngine{Name: e.Name, Busy: e.Busy, Slots: e.Slots, Down: e.Down})
		}
	}
	free = min(free, len(slots)-len(slotOf))
	for _, j := range a.Queued {
		nj := nowJob(j, j.CreatedAt)
		nj.Position = j.Position
		switch {
		case down:
			nj.Wait = views.WaitDocker
		case j.Position <= free:
			nj.Wait = views.WaitStart
		default:
			nj.Wait = views.WaitWorker
		}
		v.Queued = append(v.Queued, nj)
	}
	return v, nil
}

// nowJob shows a job of the now panel, ticking from since.
func nowJob(j store.ActiveJob, since time.Time) views.NowJob {
	return views.NowJob{ProjectID: j.ProjectID, Project: j.Project, BuildNumber: j.BuildNumber, JobID: j.ID, Hook: j.Hook,
		Status: views.JobStatus(j.Status), Elapsed: took(since, time.Time{})}
}

// trend is a dashboard project's default branch build and recent results.
func trend(p store.ProjectSummary) views.Trend {
	t := views.Trend{ProjectID: p.ID, DefaultBranch: p.DefaultBranch}
	if b := p.Default; b != nil {
		t.HasDefault, t.DefaultAge = true, ago(b.CreatedAt)
		t.Default = views.Mark{Number: b.Number, Status: views.BuildStatus(b.Status), Branch: b.Branch()}
	}
	for _, m := range p.Recent {
		t.Recent = append(t.Recent, views.Mark{Number: m.Number, Status: views.BuildStatus(m.Status), Branch: m.Branch()})
	}
	return t
}
