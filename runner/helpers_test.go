package runner

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/syncbuf"
	"kozmic/internal/testdb"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

const testImage = testimage.Name

func TestMain(m *testing.M) {
	if path := os.Getenv("KOZMIC_CRASH_HELPER_DB"); path != "" {
		crashHelper(path) // never returns
	}
	if os.Getenv("KOZMIC_TEST_DOCKER") != "" {
		if err := importTestImage(); err != nil {
			fmt.Fprintln(os.Stderr, "import test image:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

func importTestImage() error {
	dc, err := NewDockerClient(testimage.Host())
	if err != nil {
		return err
	}
	return testimage.Ensure(dc)
}

func needDocker(t testing.TB) {
	t.Helper()
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run tests against a Docker engine")
	}
}

// recorder is a Notifier that keeps every change.
type recorder struct {
	mu      sync.Mutex
	changes []store.JobChanged
}

func (r *recorder) JobChanged(_ context.Context, ch store.JobChanged) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, ch)
}

func (r *recorder) all() []store.JobChanged {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.JobChanged(nil), r.changes...)
}

type harness struct {
	t      testing.TB
	db     *store.DB
	dc     *docker.Client // the test's own; nil without Docker
	jobsDC *docker.Client // the runners'; nil: dc
	// others are clients of the test's other engines, checked for leftovers
	// at the end as dc is.
	others  []*docker.Client
	r       *Runner   // the newest runner
	runners []*Runner // every runner started, shut down at the end
	notes   *recorder
	logs    *syncbuf.Buffer
	dbPath  string
}

// newHarness starts a runner with a fresh database. Jobs run with network
// "none"; cfg's zero fields take short test values.
func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	needDocker(t)
	h := openHarness(t)
	var err error
	if h.dc, err = NewDockerClient(testimage.Host()); err != nil {
		t.Fatal(err)
	}
	h.start(cfg)
	return h
}

// openHarness is a harness with a fresh database and no Docker client or
// runner yet.
func openHarness(t testing.TB) *harness {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "k.db")
	h := &harness{t: t, dbPath: dbPath}
	h.db = openDB(t, dbPath)
	t.Cleanup(h.finish)
	return h
}

// finish shuts the harness's runners down, which waits for their cleanup
// (container removals, log compression), and then checks that nothing
// labelled as a job's is left.
func (h *harness) finish() {
	for _, r := range h.runners {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r.Shutdown(ctx)
		cancel()
	}
	for _, dc := range append([]*docker.Client{h.dc}, h.others...) {
		if dc != nil {
			assertNoLeftovers(h.t, dc, h.db.InstanceID())
		}
	}
}

func openDB(t testing.TB, path string) *store.DB {
	t.Helper()
	return testdb.OpenAt(t, path)
}

func (h *harness) start(cfg Config) {
	h.t.Helper()
	if cfg.Network == "" {
		cfg.Network = "none"
	}
	cfg.Instance = h.db.InstanceID()
	if cfg.StallTimeout == 0 {
		cfg.StallTimeout = time.Minute
	}
	cfg.WorkDir = h.t.TempDir()
	h.notes = &recorder{}
	h.logs = &syncbuf.Buffer{}
	dc := h.jobsDC
	if dc == nil {
		dc = h.dc
	}
	h.r = New(cfg, h.db, dc, h.notes, slog.New(slog.NewTextHandler(h.logs, nil)))
	h.r.Start(context.Background())
	h.runners = append(h.runners, h.r)
}

// assertNoLeftovers fails if any container or volume of the instance remains.
// Other instances' are not this test's: packages test in parallel on one engine.
func assertNoLeftovers(t testing.TB, dc *docker.Client, instance string) {
	t.Helper()
	mine := map[string][]string{"label": {LabelJob, LabelInstance + "=" + instance}}
	cs, err := dc.ListContainers(docker.ListContainersOptions{All: true, Filters: mine})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		t.Errorf("container %s (job %s) left behind", c.ID[:12], c.Labels[LabelJob])
		dc.RemoveContainer(docker.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true})
	}
	vs, err := dc.ListVolumes(docker.ListVolumesOptions{Filters: mine})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("volume %s (job %s) left behind", v.Name, v.Labels[LabelJob])
		dc.RemoveVolumeWithOptions(docker.RemoveVolumeOptions{Name: v.Name, Force: true})
	}
}

// project makes a plain-git project for the repo with the given hooks.
func (h *harness) project(rp *testrepo.Repo, hooks ...store.Hook) (store.Project, []store.Hook) {
	h.t.Helper()
	ctx := context.Background()
	owner, err := h.db.CreateLocalUser(ctx, fmt.Sprintf("owner%d", time.Now().UnixNano()), "x", false)
	if err != nil {
		h.t.Fatal(err)
	}
	p, err := h.db.CreateProject(ctx, store.NewProject{OwnerID: owner.ID, Source: store.SourceGit,
		FullName: fmt.Sprintf("acme/p%d", time.Now().UnixNano()), GitURL: rp.Path, WebhookSecret: "whsec"})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []store.Hook
	for _, hk := range hooks {
		hk.ProjectID = p.ID
		if hk.DockerImage == "" {
			hk.DockerImage = testImage
		}
		created, err := h.db.CreateHook(ctx, hk)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, created)
	}
	return p, out
}

// build creates a build of sha and wakes the runner.
func (h *harness) build(p store.Project, ref, sha string) (store.Build, []store.Job) {
	h.t.Helper()
	b, jobs, err := h.db.CreateBuild(context.Background(), store.NewBuild{ProjectID: p.ID, Ref: ref, SHA: sha})
	if err != nil {
		h.t.Fatal(err)
	}
	h.r.Enqueued()
	return b, jobs
}

// runOK builds sha and waits for the project's first job to succeed.
func (h *harness) runOK(p store.Project, sha string) store.Job {
	h.t.Helper()
	_, jobs := h.build(p, "refs/heads/main", sha)
	j := h.waitJob(jobs[0].ID, finished)
	if j.Status != store.JobSuccess {
		h.t.Fatalf("job %s; log:\n%s", j.Status, h.logOf(j.ID))
	}
	return j
}

// waitJob polls until the job's latest state satisfies done, and returns it.
func (h *harness) waitJob(id int64, done func(store.Job) bool) store.Job {
	h.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		j, err := h.db.JobByID(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if done(j) {
			return j
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %d still %s; runner log:\n%s", id, j.Status, h.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func finished(j store.Job) bool { return j.Status.Finished() }

// waitBuild waits until every job of the build has finished and returns the build.
func (h *harness) waitBuild(b store.Build) store.Build {
	h.t.Helper()
	jobs, err := h.db.Jobs(context.Background(), b.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, j := range jobs {
		h.waitJob(j.ID, finished)
	}
	got, err := h.db.BuildByID(context.Background(), b.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	return got
}

func (h *harness) logOf(jobID int64) string {
	h.t.Helper()
	b, err := h.db.ReadLog(context.Background(), jobID, 0, 1<<30)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(b)
}
