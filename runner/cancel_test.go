package runner

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"kozmic/internal/syncbuf"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

// cancelOnClaim is a Notifier that cancels each job as it hears that a
// worker claimed it, as a user's click would while the worker is between
// its claim and the job's first step.
type cancelOnClaim struct {
	r    *Runner
	mu   sync.Mutex
	errs []error
}

func (c *cancelOnClaim) JobChanged(ctx context.Context, ch store.JobChanged) {
	if ch.Job.Status != store.JobRunning {
		return
	}
	err := c.r.Cancel(ctx, ch.Job.ID, "alice")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

// A cancel that arrives after a worker claimed a job stops the job: it
// ends "canceled by alice", never fetches its commit, and its result is
// recorded once. No Docker engine is needed: the worker is driven without
// the engine's ping, and a job that ran on would fail at its first Docker
// call (which the log would show) instead of hanging.
func TestCancelRightAfterClaimNeverRunsTheJob(t *testing.T) {
	h := openHarness(t)
	dc, err := NewDockerClient("tcp://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	notes := &cancelOnClaim{}
	h.logs = &syncbuf.Buffer{}
	h.r = New(Config{Workers: 1, WorkDir: t.TempDir()}, h.db, dc, notes, slog.New(slog.NewTextHandler(h.logs, nil)))
	notes.r = h.r
	ctx, stop := context.WithCancel(context.Background())
	h.r.jobsCtx, h.r.stopJobs = context.WithCancelCause(ctx)
	h.r.pool.setReady(h.r.pool.members[0], true, nil) // as if it had answered a ping
	var worker sync.WaitGroup
	worker.Go(func() { h.r.work(ctx, 0) })
	t.Cleanup(func() {
		stop()
		worker.Wait()
		h.r.cleanup.Wait()
	})

	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "t", BuildScript: "#!/bin/sh\necho ran\n"})
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	j := h.waitJob(jobs[0].ID, finished)
	deadline := time.Now().Add(30 * time.Second)
	for h.r.busy.Load() != 0 { // the worker is done with the job, whatever it did
		if time.Now().After(deadline) {
			t.Fatalf("the worker is still busy; runner log:\n%s", h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	notes.mu.Lock()
	errs := notes.errs
	notes.mu.Unlock()
	if len(errs) != 1 || errs[0] != nil {
		t.Errorf("Cancel errors = %v, want one nil", errs)
	}
	if j.Status != store.JobError || j.Error != "canceled by alice" {
		t.Errorf("job = %s %q, want error \"canceled by alice\"", j.Status, j.Error)
	}
	if log := h.logOf(j.ID); strings.Contains(log, "Fetching") {
		t.Errorf("the canceled job ran on; its log:\n%s", log)
	}
	if log := h.logs.String(); strings.Contains(log, "record job result") {
		t.Errorf("the worker recorded a second result; runner log:\n%s", log)
	}
}
