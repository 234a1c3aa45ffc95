package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/syncbuf"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

func TestStalledJobIsKilled(t *testing.T) {
	// Long enough that starting the container under load does not count as a stall.
	h := newHarness(t, Config{StallTimeout: 5 * time.Second})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "stall", BuildScript: "#!/bin/sh\necho started\nsleep 60\necho never\n"})
	start := time.Now()
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	j := h.waitJob(jobs[0].ID, finished)
	if j.Status != store.JobFailure || j.Error != StalledMessage {
		t.Errorf("job = %s %q; want failure, stalled", j.Status, j.Error)
	}
	log := h.logOf(j.ID)
	if !strings.Contains(log, "started") || !strings.Contains(log, StalledMessage) || strings.Contains(log, "never") {
		t.Errorf("log:\n%s", log)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the stalled job took %s to end", d)
	}
}

func TestJobTimeout(t *testing.T) {
	h := newHarness(t, Config{JobTimeout: 5 * time.Second})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	// Busy, never stalling, never ending. The timeout leaves a loaded
	// machine time to start the container and print.
	p, _ := h.project(rp, store.Hook{Title: "long", BuildScript: "#!/bin/sh\nwhile true; do echo tick; sleep 0.2; done\n"})
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	j := h.waitJob(jobs[0].ID, finished)
	if j.Status != store.JobFailure || !strings.Contains(j.Error, "ran longer than 5s") {
		t.Errorf("job = %s %q; want failure, timed out", j.Status, j.Error)
	}
	if log := h.logOf(j.ID); !strings.Contains(log, "tick") || !strings.Contains(log, "ran longer than 5s") {
		t.Errorf("log:\n%s", log)
	}
}

func TestCancelRunningAndEnqueuedJobs(t *testing.T) {
	h := newHarness(t, Config{Workers: 1})
	ctx := context.Background()
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "slow", BuildScript: "#!/bin/sh\necho working\nsleep 60\n"})
	_, first := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	_, second := h.build(p, "refs/heads/main", rp.Commit(map[string]string{"README": "y"}, nil))

	h.waitJob(first[0].ID, func(j store.Job) bool { return strings.Contains(h.logOf(j.ID), "working") })
	if got := h.r.Waiting(); got != "waiting for a free worker: 1 of 1 busy" {
		t.Errorf("Waiting() = %q", got)
	}
	if err := h.r.Cancel(ctx, second[0].ID, "bob"); err != nil {
		t.Fatal(err)
	}
	queued, _ := h.db.JobByID(ctx, second[0].ID)
	if queued.Status != store.JobError || queued.Error != "canceled by bob" || !queued.StartedAt.IsZero() {
		t.Errorf("canceled enqueued job = %+v", queued)
	}
	if err := h.r.Cancel(ctx, first[0].ID, "alice"); err != nil {
		t.Fatal(err)
	}
	running := h.waitJob(first[0].ID, finished)
	if running.Status != store.JobError || running.Error != "canceled by alice" {
		t.Errorf("canceled running job = %s %q", running.Status, running.Error)
	}
	if log := h.logOf(running.ID); !strings.Contains(log, "canceled by alice") {
		t.Errorf("log:\n%s", log)
	}
	if h.logOf(queued.ID) != "" {
		t.Error("the canceled enqueued job ran")
	}
	if err := h.r.Cancel(ctx, first[0].ID, "alice"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("canceling a finished job: err = %v, want ErrConflict", err)
	}
	if h.r.Waiting() != "" {
		t.Errorf("Waiting() = %q with an idle worker", h.r.Waiting())
	}
}

func TestRestartKeepsEarlierAttempts(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "flaky", BuildScript: "#!/bin/sh\necho attempt for $KOZMIC_JOB_ID\nexit 1\n"})
	b, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	h.waitBuild(b)
	second, err := h.r.Restart(ctx, jobs[0].ID, store.User{})
	if err != nil {
		t.Fatal(err)
	}
	h.waitJob(second.ID, finished)
	re, err := h.r.RerunFailed(ctx, b.ID, store.User{})
	if err != nil || len(re) != 1 || re[0].Attempt != 3 {
		t.Fatalf("re-run failed = %+v, %v; want attempt 3", re, err)
	}
	h.waitJob(re[0].ID, finished)

	all, err := h.db.Jobs(ctx, b.ID)
	if err != nil || len(all) != 3 {
		t.Fatalf("attempts = %d, %v", len(all), err)
	}
	for i, j := range all {
		if j.Attempt != i+1 || j.Status != store.JobFailure {
			t.Errorf("attempt %d = %+v", i+1, j)
		}
		if log := h.logOf(j.ID); !strings.Contains(log, "attempt for "+itoa(j.ID)) {
			t.Errorf("attempt %d lost its log:\n%s", j.Attempt, log)
		}
	}
}

func TestLogTruncation(t *testing.T) {
	const limit = 8 << 10
	h := newHarness(t, Config{MaxLogBytes: limit})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	// 100 KiB of output, then a marker after the cut; the job still succeeds.
	p, _ := h.project(rp, store.Hook{Title: "chatty", BuildScript: "#!/bin/sh\nyes 0123456789abcdef0123456789abcdef | head -n 3200\necho finished-after-cut\n"})
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	j := h.waitJob(jobs[0].ID, finished)
	if j.Status != store.JobSuccess {
		t.Fatalf("job %s; truncation must not change the result", j.Status)
	}
	info, err := h.db.LogInfoOf(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	log := h.logOf(j.ID)
	notice := "[log truncated at 8192 bytes]"
	if !info.Truncated || !strings.Contains(log, notice) || strings.Contains(log, "finished-after-cut") {
		t.Errorf("truncated=%v, log ends %q", info.Truncated, log[max(0, len(log)-200):])
	}
	if i := strings.Index(log, notice); i < limit || info.Size > limit+100 {
		t.Errorf("notice at %d, size %d; want the cut at %d", i, info.Size, limit)
	}
}

func TestPoolNeverRunsMoreThanWorkers(t *testing.T) {
	h := newHarness(t, Config{Workers: 2})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	var hooks []store.Hook
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		hooks = append(hooks, store.Hook{Title: name, BuildScript: "#!/bin/sh\nsleep 0.5\n"})
	}
	p, _ := h.project(rp, hooks...)
	b, _ := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	if got := h.waitBuild(b); got.Status != store.BuildSuccess {
		t.Fatalf("build = %s", got.Status)
	}
	running, peak := map[int64]bool{}, 0
	for _, ch := range h.notes.all() {
		running[ch.Job.ID] = ch.Job.Status == store.JobRunning
		n := 0
		for _, r := range running {
			if r {
				n++
			}
		}
		peak = max(peak, n)
	}
	if peak != 2 {
		t.Errorf("peak concurrent jobs = %d, want 2", peak)
	}
}

func TestExecRunsAWorkingTree(t *testing.T) {
	h := newHarness(t, Config{})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "deps.txt"), []byte("uncommitted"), 0o644)
	var out syncbuf.Buffer
	status, code := h.r.Exec(context.Background(), ExecSpec{Dir: dir, Image: testImage,
		InstallScript: "#!/bin/sh\necho install sees $(cat deps.txt)\n", TrackedFiles: []string{"deps.txt"},
		BuildScript: "#!/bin/sh\necho build sees $(cat deps.txt)\nexit 5\n", KeepCache: true}, &out)
	if status != store.JobFailure || code != 5 {
		t.Errorf("exec = %s, %d; want failure, 5", status, code)
	}
	for _, want := range []string{"install sees uncommitted", "build sees uncommitted"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	var again syncbuf.Buffer
	h.r.Exec(context.Background(), ExecSpec{Dir: dir, Image: testImage, InstallScript: "#!/bin/sh\necho install sees $(cat deps.txt)\n",
		TrackedFiles: []string{"deps.txt"}, BuildScript: "#!/bin/sh\ntrue\n"}, &again)
	if !strings.Contains(again.String(), SkippedInstall) {
		t.Errorf("second exec did not reuse the install image:\n%s", again.String())
	}
	removeCacheImages(t, h, 0)
}

func TestContainersAreConfinedAndLimited(t *testing.T) {
	h := newHarness(t, Config{Memory: 64 << 20, CPUs: 0.5, PidsLimit: 100})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "inspect-me", BuildScript: "#!/bin/sh\necho up\nsleep 30\n"})
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	h.waitJob(jobs[0].ID, func(j store.Job) bool { return strings.Contains(h.logOf(j.ID), "up") })
	// Job ids restart in every test's database: the instance tells this
	// test's job from those of other packages testing on the same engine.
	cs, err := h.dc.ListContainers(docker.ListContainersOptions{Filters: map[string][]string{
		"label": {LabelJob + "=" + itoa(jobs[0].ID), LabelInstance + "=" + h.db.InstanceID()}}})
	if err != nil || len(cs) != 1 {
		t.Fatalf("containers of the job = %d, %v", len(cs), err)
	}
	c, err := h.dc.InspectContainerWithOptions(docker.InspectContainerOptions{ID: cs[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	hc := c.HostConfig
	if hc.Privileged || len(hc.Binds) != 0 || hc.NetworkMode != "none" || hc.Memory != 64<<20 ||
		hc.NanoCPUs != 5e8 || hc.PidsLimit == nil || *hc.PidsLimit != 100 || len(hc.CapAdd) != 0 {
		t.Errorf("host config = privileged %v, binds %v, network %q, memory %d, cpus %d, pids %v, cap-add %v",
			hc.Privileged, hc.Binds, hc.NetworkMode, hc.Memory, hc.NanoCPUs, hc.PidsLimit, hc.CapAdd)
	}
	if len(c.Mounts) != 1 {
		t.Errorf("mounts = %+v, want only /kozmic", c.Mounts)
	}
	for _, m := range c.Mounts {
		if m.Name == "" || m.Destination != "/kozmic" || strings.Contains(m.Source, "docker.sock") { // a bind has no volume name
			t.Errorf("mount %+v: only the /kozmic volume is allowed", m)
		}
	}
	if c.Config.Labels[LabelProject] != itoa(p.ID) || c.Config.Tty || !slices.Equal(c.Config.Entrypoint, mergedEntrypoint) ||
		c.Config.WorkingDir != "/kozmic/src" {
		t.Errorf("config: labels %v, tty %v, entrypoint %q, workdir %q", c.Config.Labels, c.Config.Tty, c.Config.Entrypoint, c.Config.WorkingDir)
	}
	if err := h.r.Cancel(context.Background(), jobs[0].ID, "test"); err != nil {
		t.Fatal(err)
	}
	h.waitJob(jobs[0].ID, finished)
}
