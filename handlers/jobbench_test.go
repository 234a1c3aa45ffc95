package handlers

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"kozmic/gh"
	"kozmic/internal/heappeak"
	"kozmic/internal/syncbuf"
	"kozmic/internal/testdb"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/runner"
	"kozmic/store"
)

// finishedJobs is a Notifier that passes on each job as it finishes, so
// that a benchmark learns of the end at once rather than by polling.
type finishedJobs chan store.Job

func (f finishedJobs) JobChanged(_ context.Context, ch store.JobChanged) {
	if ch.Job.Status.Finished() {
		f <- ch.Job
	}
}

// jobBench is the whole server on 127.0.0.1 with a started runner on the
// Docker engine, and a project of the local git repository whose one hook
// runs script in the test image.
type jobBench struct {
	url      string
	db       *store.DB
	project  store.Project
	sha      string
	finished finishedJobs
	logs     *syncbuf.Buffer
	delivery atomic.Int64
}

func newJobBench(b *testing.B, cfg runner.Config, script string) *jobBench {
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		b.Skip("set KOZMIC_TEST_DOCKER=1 to run jobs on a Docker engine")
	}
	ctx := context.Background()
	db := testdb.Open(b)
	dc, err := runner.NewDockerClient(testimage.Host())
	if err != nil {
		b.Fatal(err)
	}
	if err := testimage.Ensure(dc); err != nil {
		b.Fatal(err)
	}
	jb := &jobBench{db: db, finished: make(finishedJobs, 16), logs: &syncbuf.Buffer{}}
	log := slog.New(slog.NewTextHandler(jb.logs, nil))
	cfg.Network, cfg.WorkDir, cfg.Instance = "none", b.TempDir(), db.InstanceID()
	jobs := runner.New(cfg, db, dc, jb.finished, log)
	jobs.Start(ctx)
	b.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		jobs.Shutdown(sctx)
	})
	base, _ := url.Parse("http://kozmic.test")
	srv := httptest.NewServer(New(Deps{DB: db, Jobs: jobs, GitHub: gh.New(gh.Config{WebURL: base, BaseURL: base}), Sessions: db.Sessions(), BaseURL: base, GitHubURL: base, Log: log}))
	b.Cleanup(srv.Close)
	jb.url = srv.URL
	repo := testrepo.New(b, map[string]string{"README": "x"})
	jb.sha = repo.Git("rev-parse", "HEAD")
	ann, err := db.CreateLocalUser(ctx, "ann", "-", false)
	if err != nil {
		b.Fatal(err)
	}
	if jb.project, err = db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "ann/bench",
		GitURL: repo.Path, WebhookSecret: testSecret}); err != nil {
		b.Fatal(err)
	}
	if _, err := db.CreateHook(ctx, store.Hook{ProjectID: jb.project.ID, Title: "bench", DockerImage: testimage.Name, BuildScript: script}); err != nil {
		b.Fatal(err)
	}
	return jb
}

// run sends a signed push webhook over HTTP, waits until its job has
// finished (its log stored and its result recorded), and returns the job.
// Each push names a new branch, so that no two builds are the same push.
func (jb *jobBench) run(b *testing.B) store.Job {
	n := jb.delivery.Add(1)
	body := fmt.Appendf(nil, `{"ref":"refs/heads/b%d","after":%q,"head_commit":{"message":"Bump","author":{"name":"Ann"}}}`, n, jb.sha)
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/webhooks/%d", jb.url, jb.project.ID), bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("bench-%d", n))
	req.Header.Set("X-Hub-Signature-256", gh.Sign([]byte(testSecret), body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		b.Fatalf("webhook: %d", res.StatusCode)
	}
	select {
	case j := <-jb.finished:
		if j.Status != store.JobSuccess {
			b.Fatalf("job %d: %s; server log:\n%s", j.ID, j.Status, jb.logs)
		}
		return j
	case <-time.After(5 * time.Minute):
		b.Fatalf("the job never finished; server log:\n%s", jb.logs)
	}
	return store.Job{}
}

// dockerRun runs the Docker CLI on the test image with args before the
// image and cmd after it, its output to /dev/null, and returns the CPU time
// the CLI process used.
func dockerRun(b *testing.B, args []string, cmd ...string) time.Duration {
	all := append(append(append([]string{"run"}, args...), "--network", "none", testimage.Name), cmd...)
	c := exec.Command("docker", all...)
	c.Env = append(os.Environ(), "DOCKER_HOST="+testimage.Host())
	var stderr bytes.Buffer
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		b.Fatalf("docker %s: %v: %s", strings.Join(all, " "), err, stderr.String())
	}
	return c.ProcessState.UserTime() + c.ProcessState.SystemTime()
}

// median of ds, which it sorts.
func median(ds []float64) float64 {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// BenchmarkTrivialJobThroughServer compares a job whose script is `exit 0`,
// from a signed push webhook sent over HTTP to the job recorded as
// finished (clone, container, log, result), with `docker run --rm` (the
// CLI, exec'd) of the same image and command. It times 20 pairs, kozmic and
// raw alternating, and reports the median of the per-pair ratios and each
// arm's median. One iteration is the 20 pairs.
func BenchmarkTrivialJobThroughServer(b *testing.B) {
	jb := newJobBench(b, runner.Config{}, "#!/bin/sh\nexit 0\n")
	jb.run(b)                                                 // the first job warms the clone and the image
	dockerRun(b, []string{"--rm"}, "/bin/sh", "-c", "exit 0") // and the CLI's first start
	var ratios, kozmic, raw []float64
	for b.Loop() {
		for range 20 {
			began := time.Now()
			jb.run(b)
			k := time.Since(began)
			began = time.Now()
			dockerRun(b, []string{"--rm"}, "/bin/sh", "-c", "exit 0")
			r := time.Since(began)
			ratios = append(ratios, k.Seconds()/r.Seconds())
			kozmic = append(kozmic, float64(k.Microseconds())/1000)
			raw = append(raw, float64(r.Microseconds())/1000)
		}
	}
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(kozmic), "kozmic-ms")
	b.ReportMetric(median(raw), "raw-ms")
}

// logScript prints 200,000 lines of 500 bytes: 100 MB.
var logScript = "yes " + strings.Repeat("x", 499) + " | head -n 200000"

// BenchmarkLogThroughServer compares a job printing 100 MB, from a signed
// push webhook to the job finished with its whole log stored, with
// `docker run … > /dev/null` (the CLI) of the same command, pair by pair.
// It reports the median ratio of the times, the median ratio of the CPU
// the whole test process used over a pair (getrusage of the process, minus
// nothing: the HTTP client, the clone, what the job leaves to the runner's
// background cleanup while the raw arm runs, the exec of the CLI and the
// benchmark itself count) to the CPU of the CLI process in the raw arm, and
// the peak of the Go heap's objects sampled every 10 ms throughout.
func BenchmarkLogThroughServer(b *testing.B) {
	jb := newJobBench(b, runner.Config{MaxLogBytes: 1 << 30}, "#!/bin/sh\n"+logScript+"\n")
	peak := heappeak.Watch(b)
	var ratios, cpuRatios, kozmic, raw []float64
	for b.Loop() {
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		began := time.Now()
		j := jb.run(b)
		k := time.Since(began)
		info, err := jb.db.LogInfoOf(context.Background(), j.ID)
		if err != nil || info.Size < 100e6 {
			b.Fatalf("stored %d bytes of the log, %v", info.Size, err)
		}
		began = time.Now()
		rawCPU := dockerRun(b, []string{"--rm"}, "/bin/sh", "-c", logScript)
		r := time.Since(began)
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		ratios = append(ratios, k.Seconds()/r.Seconds())
		cpuRatios = append(cpuRatios, cpu.Seconds()/rawCPU.Seconds())
		kozmic = append(kozmic, float64(k.Milliseconds()))
		raw = append(raw, float64(r.Milliseconds()))
	}
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(cpuRatios), "cpu-ratio")
	b.ReportMetric(median(kozmic), "kozmic-ms")
	b.ReportMetric(median(raw), "raw-ms")
	b.ReportMetric(float64(peak())/(1<<20), "heap-MiB")
}
