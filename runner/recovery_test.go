package runner

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testdb"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/migrations"
	"kozmic/store"
)

// crashHelper runs jobs from the database at path until the process is
// killed; TestCrashRecovery starts the test binary in this mode.
func crashHelper(path string) {
	db, err := store.Open(context.Background(), path, store.Options{SecretKey: testdb.Key, Migrations: migrations.FS})
	if err != nil {
		panic(err)
	}
	dc, err := NewDockerClient(testimage.Host())
	if err != nil {
		panic(err)
	}
	r := New(Config{Network: "none", WorkDir: os.Getenv("KOZMIC_CRASH_HELPER_WORKDIR"), Instance: db.InstanceID()}, db, dc, &recorder{}, slog.New(slog.DiscardHandler))
	r.Start(context.Background())
	select {} // until SIGKILL
}

func TestCrashRecovery(t *testing.T) {
	needDocker(t)
	ctx := context.Background()
	h := &harness{t: t}
	h.dbPath = t.TempDir() + "/k.db"
	h.db = openDB(t, h.dbPath)
	var err error
	if h.dc, err = NewDockerClient(testimage.Host()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.finish)
	rp := testrepo.New(t, map[string]string{"README": "x"})
	// The first attempt (job 1 of this fresh database) hangs; the re-run,
	// attempt 2, finishes at once.
	p, _ := h.project(rp, store.Hook{Title: "crashy", BuildScript: `#!/bin/sh
echo "attempt for job $KOZMIC_JOB_ID"
if [ "$KOZMIC_JOB_ID" = 1 ]; then sleep 120; fi
echo done
`})
	b, jobs, err := h.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: rp.Git("rev-parse", "HEAD")})
	if err != nil || jobs[0].ID != 1 {
		t.Fatalf("first job = %d, %v; the script expects job 1", jobs[0].ID, err)
	}

	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), "KOZMIC_CRASH_HELPER_DB="+h.dbPath, "KOZMIC_CRASH_HELPER_WORKDIR="+t.TempDir())
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	// Wait until the job's container runs, then kill the process outright.
	deadline := time.Now().Add(60 * time.Second)
	var orphan string
	for orphan == "" {
		cs, err := h.dc.ListContainers(docker.ListContainersOptions{Filters: map[string][]string{
			"label": {LabelJob + "=" + strconv.FormatInt(jobs[0].ID, 10)}, "status": {"running"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 1 && strings.Contains(h.logOfNoFail(jobs[0].ID), "attempt for job") {
			orphan = cs[0].ID
		}
		if time.Now().After(deadline) {
			t.Fatal("the helper never started the job")
		}
		time.Sleep(50 * time.Millisecond)
	}
	helper.Process.Signal(syscall.SIGKILL)
	helper.Wait()
	if j, _ := h.db.JobByID(ctx, jobs[0].ID); j.Status != store.JobRunning {
		t.Fatalf("after the crash the job is %s, want still running", j.Status)
	}

	h.start(Config{})
	if _, err := h.dc.InspectContainerWithOptions(docker.InspectContainerOptions{ID: orphan}); err == nil {
		t.Error("the crashed run's container is still there")
	}
	interrupted := h.waitJob(jobs[0].ID, finished)
	if interrupted.Status != store.JobError || interrupted.Error != store.InterruptedMessage {
		t.Errorf("interrupted job = %s %q", interrupted.Status, interrupted.Error)
	}
	if got := h.waitBuild(b); got.Status != store.BuildSuccess {
		t.Errorf("build after the re-run = %s, want success", got.Status)
	}
	all, _ := h.db.Jobs(ctx, b.ID)
	if len(all) != 2 || all[1].Attempt != 2 || all[1].Status != store.JobSuccess {
		t.Errorf("attempts after recovery = %+v", all)
	}
}

func (h *harness) logOfNoFail(jobID int64) string {
	b, _ := h.db.ReadLog(context.Background(), jobID, 0, 1<<20)
	return string(b)
}
