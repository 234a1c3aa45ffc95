package runner

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testengine"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

// twoEngines starts a second, throwaway Docker daemon and a runner whose
// jobs run on two engines with slots each: "one", the main engine, and
// "two", the second daemon. Both are checked for leftovers at the end.
func twoEngines(t testing.TB, slots int) (*harness, *testengine.Engine) {
	t.Helper()
	needDocker(t)
	testengine.Skip(t)
	second := testengine.Start(t) // first: its cleanup stops it after the runner's
	h := openHarness(t)
	var err error
	if h.dc, err = NewDockerClient(testimage.Host()); err != nil {
		t.Fatal(err)
	}
	h.others = []*docker.Client{second.Client}
	h.startEngines(slots, testimage.Host(), second.Host)
	return h, second
}

// startEngines starts a runner on two engines with slots each, "one" at
// host one and "two" at host two.
func (h *harness) startEngines(slots int, one, two string) {
	h.t.Helper()
	engines := []EngineConfig{{Name: "one", Slots: slots}, {Name: "two", Slots: slots}}
	for i, host := range []string{one, two} {
		var err error
		if engines[i].Client, err = NewDockerClient(host); err != nil {
			h.t.Fatal(err)
		}
	}
	h.start(Config{Engines: engines, PingInterval: testPingInterval})
}

// heldOnTwo makes, on a runner with one slot on each engine, a job that
// runs testimage.HeldScript on engine "two": a first job holds "one", so
// that the second goes to "two", and is let end once the second holds.
// It returns the second job's build and the job.
func (h *harness) heldOnTwo() (store.Build, store.Job) {
	h.t.Helper()
	rp := testrepo.New(h.t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "t", BuildScript: testimage.HeldScript})
	sha := rp.Git("rev-parse", "HEAD")
	_, busy := h.build(p, "refs/heads/busy", sha)
	if e := h.engineOf(busy[0].ID); e != "one" {
		h.t.Fatalf("the first job went to %q, want one", e)
	}
	b, jobs := h.build(p, "refs/heads/main", sha)
	if e := h.engineOf(jobs[0].ID); e != "two" {
		h.t.Fatalf("the second job went to %q, want two", e)
	}
	h.waitLogOf(jobs[0].ID, "holding") // its script runs on two
	h.releaseOn(h.dc, busy[0].ID)
	h.waitJob(busy[0].ID, finished)
	return b, jobs[0]
}

// engineOf waits until job id runs, placed on an engine, and returns it.
func (h *harness) engineOf(id int64) string {
	h.t.Helper()
	return h.waitJob(id, func(j store.Job) bool { return j.Status == store.JobRunning && j.Engine != "" }).Engine
}

// Jobs go to the engine with the most free slots: two jobs, with two free
// slots on each engine, run one on each.
func TestJobsSpreadOverBothEnginesWhenBothHaveFreeSlots(t *testing.T) {
	h, second := twoEngines(t, 2)
	if got := h.r.Engines(); len(got) != 2 || !got[0].Ready || !got[1].Ready || got[0].Slots != 2 {
		t.Fatalf("engines %+v, want two ready ones with 2 slots", got)
	}
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "a", BuildScript: testimage.HeldScript}, store.Hook{Title: "b", BuildScript: testimage.HeldScript})
	b, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	on := map[string]int64{}
	for _, j := range jobs {
		on[h.engineOf(j.ID)] = j.ID
	}
	if len(on) != 2 || on["one"] == 0 || on["two"] == 0 {
		t.Fatalf("jobs ran on %v, want one on each engine", on)
	}
	if st := h.r.Engines(); st[0].Busy != 1 || st[1].Busy != 1 {
		t.Errorf("engines %+v while each runs a job, want 1 busy on each", st)
	}
	h.releaseOn(h.dc, on["one"])
	h.releaseOn(second.Client, on["two"])
	if got := h.waitBuild(b); got.Status != store.BuildSuccess {
		t.Fatalf("build %s", got.Status)
	}
	if log := h.logOf(on["two"]); !strings.Contains(log, "Running on the Docker engine two") {
		t.Errorf("the log does not say where the job ran:\n%s", log)
	}
	if st := h.r.Engines(); st[0].Started != 1 || st[1].Started != 1 || st[0].Busy+st[1].Busy != 0 {
		t.Errorf("engines %+v after the build, want one job started on each, none busy", st)
	}
}

// A build whose install cache image one engine holds goes to that engine
// and skips its install script, though the other engine comes first: the
// project's first build was made to run on the second engine, by keeping
// the first busy, and the second build, with its tracked files unchanged,
// follows its cache there.
func TestSecondBuildGoesToTheEngineHoldingItsInstallCache(t *testing.T) {
	h, second := twoEngines(t, 1)
	rp := testrepo.New(t, map[string]string{"README": "x", "deps": "a\n"})
	hold, _ := h.project(rp, store.Hook{Title: "hold", BuildScript: testimage.HeldScript})
	p, _ := h.project(rp, store.Hook{Title: "t", InstallScript: "#!/bin/sh\necho installing\ntouch /installed\n",
		TrackedFiles: []string{"deps"}, BuildScript: "#!/bin/sh\ntest -e /installed && echo built\n"})

	_, held := h.build(hold, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	if e := h.engineOf(held[0].ID); e != "one" {
		t.Fatalf("the first job went to %q, want the first engine, both being idle", e)
	}
	_, first := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	j1 := h.waitJob(first[0].ID, finished)
	if j1.Status != store.JobSuccess || j1.Engine != "two" || j1.Cache != store.CacheMiss {
		t.Fatalf("first build: %s on %q, cache %q; want success on two, a miss; log:\n%s", j1.Status, j1.Engine, j1.Cache, h.logOf(j1.ID))
	}
	h.releaseOn(h.dc, held[0].ID)
	h.waitJob(held[0].ID, finished)

	rp.Commit(map[string]string{"README": "y"}, nil) // the tracked file is unchanged
	_, again := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	j2 := h.waitJob(again[0].ID, finished)
	if j2.Status != store.JobSuccess || j2.Engine != "two" || j2.Cache != store.CacheHit {
		t.Fatalf("second build: %s on %q, cache %q; want success on two, a hit; log:\n%s", j2.Status, j2.Engine, j2.Cache, h.logOf(j2.ID))
	}
	log := h.logOf(j2.ID)
	if !strings.Contains(log, "Running on the Docker engine two, which holds this job's install cache") ||
		!strings.Contains(log, SkippedInstall) {
		t.Errorf("the second build's log does not say why it ran on two, or that it skipped the install:\n%s", log)
	}
	// Each engine keeps its own cache: the first has none of the project's.
	for name, dc := range map[string]*docker.Client{"one": h.dc, "two": second.Client} {
		imgs, err := dc.ListImages(docker.ListImagesOptions{Filters: map[string][]string{
			"label": {LabelCache, LabelProject + "=" + strconv.FormatInt(p.ID, 10), LabelInstance + "=" + h.db.InstanceID()}}})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int{"one": 0, "two": 1}[name]; len(imgs) != want {
			t.Errorf("engine %s holds %d cache images of the project, want %d", name, len(imgs), want)
		}
	}
	if n, err := h.r.ClearCache(context.Background(), p.ID); n != 1 || err != nil {
		t.Errorf("ClearCache = %d, %v; want the one image, of engine two", n, err)
	}
}

// A job whose engine dies under it is interrupted and runs again, as a new
// attempt, on the engine that is left, where it finishes; the attempt starts
// only once the first was recorded as interrupted, and the dead engine gets
// no more jobs.
func TestJobOnAKilledEngineRunsAgainOnTheOther(t *testing.T) {
	h, second := twoEngines(t, 1)
	b, job := h.heldOnTwo()

	if err := second.Kill(); err != nil {
		t.Fatal(err)
	}
	lost := h.waitJob(job.ID, finished)
	if lost.Status != store.JobError || lost.Error != "The Docker engine two stopped answering while this job ran." {
		t.Fatalf("the job on the killed engine: %s %q", lost.Status, lost.Error)
	}
	all, err := h.db.Jobs(context.Background(), b.ID)
	if err != nil || len(all) != 2 || all[1].Attempt != 2 {
		t.Fatalf("jobs of the build %+v, %v; want the interrupted one and a second attempt", all, err)
	}
	if e := h.engineOf(all[1].ID); e != "one" {
		t.Fatalf("the second attempt went to %q, want one", e)
	}
	retry := h.waitJob(all[1].ID, func(j store.Job) bool { return j.StartedAt.After(time.Time{}) })
	if retry.StartedAt.Before(lost.FinishedAt) {
		t.Errorf("the second attempt started at %v, before the first was recorded as ended at %v", retry.StartedAt, lost.FinishedAt)
	}
	h.waitLogOf(all[1].ID, "holding")
	h.releaseOn(h.dc, all[1].ID)
	if got := h.waitBuild(b); got.Status != store.BuildSuccess {
		t.Fatalf("build %s after the second attempt; log:\n%s", got.Status, h.logOf(all[1].ID))
	}
	st := h.r.Engines()
	if st[1].Ready || !st[1].Down || st[1].Busy != 0 || st[1].Failed != 1 {
		t.Errorf("engine two after its death: %+v; want down, not ready, idle, one failed job", st[1])
	}
	if msg := h.r.Unreachable(); msg != "Docker engines not reachable: two — jobs run on the others" {
		t.Errorf("Unreachable() = %q", msg)
	}
	h.others = nil // dead: nothing can be asked of it
}

// waitLogOf waits until the stored log of job id holds want.
func (h *harness) waitLogOf(id int64, want string) {
	h.t.Helper()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(h.logOf(id), want); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("job %d never logged %q; log:\n%s", id, want, h.logOf(id))
		}
	}
}

// An engine that goes silent, keeping its connections open but answering
// nothing, as behind a network that drops packets, is found out by its
// ping: its running job is interrupted, not left waiting for an answer,
// and runs again on the other engine. The container it left running there
// is removed once the engine answers again, before it takes a job. Both
// engines are the main one, "two" reached through a proxy.
func TestJobOnASilentEngineRunsAgainAndItsContainerGoesWhenItAnswers(t *testing.T) {
	needDocker(t)
	px := newSwitchProxy(t, testimage.Host()) // before the harness: it must outlive the runner's shutdown
	px.forward(true)
	h := openHarness(t)
	var err error
	if h.dc, err = NewDockerClient(testimage.Host()); err != nil {
		t.Fatal(err)
	}
	h.startEngines(1, testimage.Host(), "tcp://"+px.addr())
	b, job := h.heldOnTwo()

	px.silence(true)
	t.Cleanup(func() { px.silence(false) }) // before the harness's end, should the test fail while it is silent
	lost := h.waitJob(job.ID, finished)
	if lost.Status != store.JobError || lost.Error != "The Docker engine two stopped answering while this job ran." {
		t.Fatalf("the job on the silent engine: %s %q", lost.Status, lost.Error)
	}
	all, err := h.db.Jobs(context.Background(), b.ID)
	if err != nil || len(all) != 2 {
		t.Fatalf("jobs of the build %+v, %v; want a second attempt", all, err)
	}
	if e := h.engineOf(all[1].ID); e != "one" {
		t.Fatalf("the second attempt went to %q, want one", e)
	}
	h.waitLogOf(all[1].ID, "holding")
	h.releaseOn(h.dc, all[1].ID)
	if got := h.waitBuild(b); got.Status != store.BuildSuccess {
		t.Fatalf("build %s after the second attempt", got.Status)
	}
	first := map[string][]string{"label": {LabelJob + "=" + strconv.FormatInt(lost.ID, 10), LabelInstance + "=" + h.db.InstanceID()}}
	if cs, err := h.dc.ListContainers(docker.ListContainersOptions{Filters: first}); err != nil || len(cs) != 1 {
		t.Fatalf("the first attempt's containers while its engine is silent: %d, %v; want it running on", len(cs), err)
	}

	px.silence(false)
	waitFor(t, "engine two to take jobs again", func() bool { return h.r.Engines()[1].Ready })
	waitFor(t, "the first attempt's container to go", func() bool {
		cs, err := h.dc.ListContainers(docker.ListContainersOptions{All: true, Filters: first})
		return err == nil && len(cs) == 0
	})
}

// BenchmarkTwoEngines runs batches of jobs the whole way (claim, clone,
// placement, container, log, result) on one engine with 2 slots and on two
// engines with 2 slots each, the second a throwaway daemon on the same
// machine, and reports each one's throughput in jobs/s and their ratio:
// for trivial jobs (`exit 0`), and for jobs that wait half a second (as
// jobs that wait for a network or a disk do). On one machine the two
// daemons share its cores, so for trivial jobs, whose cost is the CPU time
// of Kozmic, git and the engines, the ratio says what the pool costs, not
// what a second machine would give; the waiting jobs show the pool running
// twice as many at once.
func BenchmarkTwoEngines(b *testing.B) {
	const batch = 16
	one := newHarness(b, Config{Workers: 2})
	two, _ := twoEngines(b, 2)
	rp := testrepo.New(b, map[string]string{"README": "x"})
	sha := rp.Git("rev-parse", "HEAD")
	for _, arm := range []struct{ name, script string }{
		{"trivial", "#!/bin/sh\nexit 0\n"},
		{"wait-0.5s", "#!/bin/sh\nsleep 0.5\n"},
	} {
		b.Run(arm.name, func(b *testing.B) {
			run := func(h *harness, p store.Project) time.Duration {
				began := time.Now()
				var builds []store.Build
				for i := range batch {
					bd, _ := h.build(p, fmt.Sprintf("refs/heads/b%d-%d", i, shaSeq.Add(1)), sha)
					builds = append(builds, bd)
				}
				for _, bd := range builds {
					if got := h.waitBuild(bd); got.Status != store.BuildSuccess {
						b.Fatalf("build %s", got.Status)
					}
				}
				return time.Since(began)
			}
			p1, _ := one.project(rp, store.Hook{Title: "t", BuildScript: arm.script})
			p2, _ := two.project(rp, store.Hook{Title: "t", BuildScript: arm.script})
			run(one, p1) // warm: the image checks, the first starts
			run(two, p2)
			var d1, d2 time.Duration
			for b.Loop() {
				d1 += run(one, p1)
				d2 += run(two, p2)
			}
			jobs := float64(b.N * batch)
			b.ReportMetric(jobs/d1.Seconds(), "jobs/s-1x2")
			b.ReportMetric(jobs/d2.Seconds(), "jobs/s-2x2")
			b.ReportMetric(d1.Seconds()/d2.Seconds(), "ratio")
		})
	}
	if st := two.r.Engines(); st[0].Started == 0 || st[1].Started == 0 {
		b.Errorf("engines %+v: want jobs on both", st)
	}
}

// Cancel stops a job on the second engine as on the first, and a sweep
// removes this instance's leftovers from every engine.
func TestCancelAndSweepReachTheSecondEngine(t *testing.T) {
	h, second := twoEngines(t, 1)
	ctx := context.Background()
	_, job := h.heldOnTwo()
	if err := h.r.Cancel(ctx, job.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if j := h.waitJob(job.ID, finished); j.Status != store.JobError || j.Error != "canceled by alice" || j.Engine != "two" {
		t.Fatalf("canceled job: %s %q on %q", j.Status, j.Error, j.Engine)
	}
	left, err := second.Client.CreateContainer(docker.CreateContainerOptions{Config: &docker.Config{Image: testImage, Cmd: []string{"true"},
		Labels: map[string]string{LabelJob: "999999", LabelInstance: h.db.InstanceID()}}})
	if err != nil {
		t.Fatal(err)
	}
	swept, err := h.r.Sweep(ctx)
	if err != nil || swept.Containers < 1 {
		t.Fatalf("Sweep = %+v, %v; want the leftover on two removed", swept, err)
	}
	if _, err := second.Client.InspectContainerWithOptions(docker.InspectContainerOptions{ID: left.ID}); err == nil {
		t.Errorf("the leftover container %.12s is still on engine two", left.ID)
	}
}
