package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"kozmic/internal/paths"
	"kozmic/internal/syncbuf"
	"kozmic/internal/testdb"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/internal/tmpfs"
	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

// claimGate is a Notifier that, when it hears of the first claimed job,
// passes its id on claimed and holds the worker until released is closed:
// the test does something between the claim and the job's first step.
type claimGate struct {
	once     sync.Once
	claimed  chan int64
	released chan struct{}
}

func (g *claimGate) JobChanged(_ context.Context, ch store.JobChanged) {
	if ch.Job.Status != store.JobRunning {
		return
	}
	g.once.Do(func() {
		g.claimed <- ch.Job.ID
		<-g.released
	})
}

// gatedServer is a test server on db whose runner (one worker, jobs on the
// Docker engine) holds the first job it claims at gate until the test lets
// it go, logging to runnerLog.
func gatedServer(t *testing.T, db *store.DB) (*testServer, *runner.Runner, *claimGate, *syncbuf.Buffer) {
	t.Helper()
	dc, err := runner.NewDockerClient(testimage.Host())
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Ensure(dc); err != nil {
		t.Fatal(err)
	}
	gate := &claimGate{claimed: make(chan int64), released: make(chan struct{})}
	runnerLog := &syncbuf.Buffer{}
	jobs := runner.New(runner.Config{Workers: 1, Network: "none", WorkDir: t.TempDir(), Instance: db.InstanceID()},
		db, dc, gate, slog.New(slog.NewTextHandler(runnerLog, nil)))
	jobs.Start(context.Background())
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		jobs.Shutdown(sctx)
	})
	s := newTestServerWith(t, false, func(d *Deps) { d.DB = db; d.Sessions = db.Sessions(); d.Jobs = jobs })
	s.db = db
	return s, jobs, gate, runnerLog
}

// A real job that runs while the database's disk is full is not lost: its
// log is refused, and the runner tries again, holding the result back
// until the log is in. Meanwhile the job's page (for a signed-in member,
// whose session cannot be refreshed) says the result is being recorded and
// /healthz answers 503 "writes failing"; once there is space, the whole
// log and the success land and /healthz is 200 again. The disk is a real
// 8 MiB tmpfs, filled with a file after the job was claimed.
func TestJobOnFullDiskLandsWholeOnceThereIsSpace(t *testing.T) {
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run jobs on a Docker engine")
	}
	ctx := context.Background()
	dir := tmpfs.Mount(t, 8<<20)
	db := testdb.OpenAt(t, filepath.Join(dir, "kozmic.db"))
	s, jobs, gate, runnerLog := gatedServer(t, db)

	ann, b := signInLocal(t, s, "ann")
	repo := testrepo.New(t, map[string]string{"README": "x"})
	p, err := db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "ann/full",
		GitURL: repo.Path, WebhookSecret: "full-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: testimage.Name,
		BuildScript: "#!/bin/sh\necho first line of the job\necho last line of the job\n"}); err != nil {
		t.Fatal(err)
	}
	build, _, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: repo.Git("rev-parse", "HEAD")})
	if err != nil {
		t.Fatal(err)
	}
	jobs.Enqueued()

	var jobID int64
	select {
	case jobID = <-gate.claimed:
	case <-time.After(90 * time.Second):
		t.Fatalf("no job was claimed; runner log:\n%s", runnerLog)
	}
	unfill := tmpfs.Fill(t, dir)
	close(gate.released)

	jobPath := paths.Job(p.ID, build.Number, jobID)
	var page string
	for deadline := time.Now().Add(90 * time.Second); ; {
		var res *http.Response
		if res, page = b.do("GET", jobPath, nil); res.StatusCode != 200 {
			t.Fatalf("job page on a full disk: %d %.300s", res.StatusCode, page)
		}
		if strings.Contains(page, views.RecordingNote) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job page never said the result is being recorded:\n%.2000s\nrunner log:\n%s", page, runnerLog)
		}
		time.Sleep(50 * time.Millisecond)
	}
	doc := parse(t, page)
	if got := textOf(doc.Find("#" + views.JobStatusID + " .status")); got != "running" {
		t.Errorf("status while recording = %q, want running", got)
	}
	if doc.Find(`form[action$="/cancel"]`).Length() != 0 {
		t.Error("a job that has ended offers Cancel while its result is recorded")
	}
	res, body := get(t, s, "/healthz")
	if hl := healthOf(t, body); res.StatusCode != 503 || hl.Writes != "failing" || hl.Database != "ok" {
		t.Errorf("healthz while the result cannot be written: %d %s", res.StatusCode, body)
	}
	if j, err := db.JobByID(ctx, jobID); err != nil || j.Status != store.JobRunning {
		t.Fatalf("job while the disk is full = %s, %v; want still running", j.Status, err)
	}

	unfill()
	var j store.Job
	for deadline := time.Now().Add(90 * time.Second); ; {
		if j, err = db.JobByID(ctx, jobID); err != nil {
			t.Fatal(err)
		}
		if j.Status.Finished() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the result never landed; runner log:\n%s", runnerLog)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if j.Status != store.JobSuccess {
		t.Fatalf("job = %s %q; runner log:\n%s", j.Status, j.Error, runnerLog)
	}
	log, err := db.ReadLog(ctx, jobID, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{fmt.Sprintf("Job %d of build #%d", jobID, build.Number), "first line of the job", "last line of the job"} {
		if !strings.Contains(string(log), line) {
			t.Errorf("the stored log lacks %q:\n%s", line, log)
		}
	}
	if res, body := get(t, s, "/healthz"); res.StatusCode != 200 || healthOf(t, body).Writes != "ok" {
		t.Errorf("healthz after the result landed: %d %s", res.StatusCode, body)
	}
	if _, page := fetchPage(t, b, jobPath, 200); strings.Contains(page, views.RecordingNote) {
		t.Error("the finished job's page still says its result is being recorded")
	}
	// The first write refused is the job's log or one of its steps, which
	// the job log stores in the same queue.
	if !regexp.MustCompile(`store job (log|step): the database refused it`).MatchString(runnerLog.String()) {
		t.Errorf("the refused write was not logged:\n%s", runnerLog)
	}
}
