package runner

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kozmic/internal/syncbuf"
	"kozmic/internal/testrepo"
	"kozmic/internal/tmpfs"
	"kozmic/store"
)

// fullDiskJob is a job claimed by a runner whose database lives on a real
// 8 MiB tmpfs that is then filled up, run by runJob in the background. Its
// hook is deleted before it runs, so the job needs no Docker engine: it
// ends at once with an error result, which the full disk refuses.
type fullDiskJob struct {
	h      *harness
	id     int64
	unfill func()
	ran    sync.WaitGroup
}

func startFullDiskJob(t *testing.T) *fullDiskJob {
	t.Helper()
	dir := tmpfs.Mount(t, 8<<20)
	h := &harness{t: t, dbPath: filepath.Join(dir, "k.db")}
	h.db = openDB(t, h.dbPath)
	dc, err := NewDockerClient("tcp://127.0.0.1:1") // never called
	if err != nil {
		t.Fatal(err)
	}
	h.logs = &syncbuf.Buffer{}
	h.r = New(Config{Workers: 1, WorkDir: t.TempDir()}, h.db, dc, nil, slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	h.r.jobsCtx, h.r.stopJobs = context.WithCancelCause(context.Background())
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, hooks := h.project(rp, store.Hook{Title: "t", BuildScript: "#!/bin/sh\necho ran\n"})
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	if err := h.db.DeleteHook(context.Background(), hooks[0].ID); err != nil {
		t.Fatal(err)
	}
	ch, jobCtx, ok, err := h.r.claim(context.Background(), 0)
	if err != nil || !ok || ch.Job.ID != jobs[0].ID {
		t.Fatalf("claim = %v %v %v", ch.Job.ID, ok, err)
	}
	f := &fullDiskJob{h: h, id: ch.Job.ID, unfill: tmpfs.Fill(t, dir)}
	f.ran.Go(func() { h.r.runJob(jobCtx, ch.Job, &seat{p: h.r.pool}) })
	t.Cleanup(func() {
		h.r.stopJobs(errShutdown)
		f.ran.Wait()
	})
	h.waitLog("record job result: the database refused it")
	return f
}

// waitLog waits until the runner has logged want.
func (h *harness) waitLog(want string) {
	h.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(h.logs.String(), want); {
		if time.Now().After(deadline) {
			h.t.Fatalf("the runner never logged %q:\n%s", want, h.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A job's result that the full disk refuses is tried again, with the job
// shown as Recording and still running in the store, until it lands once
// there is space; then the job is no longer Recording.
func TestResultWriteOnFullDiskIsRetriedUntilItLands(t *testing.T) {
	f := startFullDiskJob(t)
	if !f.h.r.Recording(f.id) {
		t.Error("the job whose result is refused is not Recording")
	}
	if j, err := f.h.db.JobByID(context.Background(), f.id); err != nil || j.Status != store.JobRunning {
		t.Fatalf("job while its result is refused = %s, %v; want running", j.Status, err)
	}

	f.unfill()
	j := f.h.waitJob(f.id, finished)
	if j.Status != store.JobError || j.Error != "The hook of this job was deleted before it ran." {
		t.Errorf("job = %s %q", j.Status, j.Error)
	}
	f.ran.Wait()
	if f.h.r.Recording(f.id) {
		t.Error("the job is still Recording after its result landed")
	}
	f.h.waitLog("record job result: done after the database refused it")
}

// When the server stops while a job's result is refused, the runner stops
// trying and leaves the job running in the store, and the next start's
// recovery settles it as interrupted.
func TestShutdownLeavesARefusedResultToRecovery(t *testing.T) {
	f := startFullDiskJob(t)
	f.h.r.stopJobs(errShutdown)
	f.ran.Wait() // runJob returned: it no longer tries
	f.h.waitLog("the server stopped before the job's result was recorded")
	f.unfill()
	ctx := context.Background()
	if j, err := f.h.db.JobByID(ctx, f.id); err != nil || j.Status != store.JobRunning {
		t.Fatalf("job after the stop = %s, %v; want left running", j.Status, err)
	}
	if _, err := f.h.db.RecoverInterruptedJobs(ctx); err != nil {
		t.Fatal(err)
	}
	if j, err := f.h.db.JobByID(ctx, f.id); err != nil || j.Status != store.JobError || j.Error != store.InterruptedMessage {
		t.Errorf("job after recovery = %s %q, %v", j.Status, j.Error, err)
	}
}
