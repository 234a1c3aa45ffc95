package runner

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/git"
	"kozmic/internal/heappeak"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

// rawRun is the baseline: create, attach, start, wait and remove one
// container through the same client, without a TTY as the runner's, with
// the output counted and dropped.
func rawRun(b *testing.B, dc *docker.Client, cmd []string, out io.Writer) {
	c, err := dc.CreateContainer(docker.CreateContainerOptions{
		Config:     &docker.Config{Image: testImage, Cmd: cmd},
		HostConfig: &docker.HostConfig{NetworkMode: "none", LogConfig: docker.LogConfig{Type: "none"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	success := make(chan struct{})
	cw, err := dc.AttachToContainerNonBlocking(docker.AttachToContainerOptions{Container: c.ID, OutputStream: out,
		ErrorStream: out, Stream: true, Stdout: true, Stderr: true, Success: success})
	if err != nil {
		b.Fatal(err)
	}
	<-success
	success <- struct{}{}
	if err := dc.StartContainer(c.ID, nil); err != nil {
		b.Fatal(err)
	}
	if code, err := dc.WaitContainer(c.ID); err != nil || code != 0 {
		b.Fatalf("wait: %d, %v", code, err)
	}
	cw.Wait()
	if err := dc.RemoveContainer(docker.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true}); err != nil {
		b.Fatal(err)
	}
}

// runnerJob runs one job of the project through the runner as a worker
// does, without the clone: claim, execute into the job log, record. The
// job's cleanup (container removal, log compression) goes on in the
// background, as in a worker; wait for it with h.r.cleanup.Wait.
func runnerJob(b *testing.B, h *harness, p store.Project, sha string, src source, script string) store.Job {
	ctx := context.Background()
	if _, _, err := h.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: sha}); err != nil {
		b.Fatal(err)
	}
	ch, ok, err := h.db.ClaimJob(ctx)
	if err != nil || !ok {
		b.Fatalf("claim: %v %v", ok, err)
	}
	l := newJobLog(context.Background(), h.db, h.r.Logs(), ch.Job.ID, h.r.cfg.MaxLogBytes, nil, h.r.log)
	res := h.r.execute(ctx, h.r.local(), spec{jobID: ch.Job.ID, projectID: p.ID, image: testImage, build: script, src: src}, l)
	l.Close()
	h.r.finish(ch.Job.ID, res)
	if res.status != store.JobSuccess {
		b.Fatalf("job %s: %s", res.status, res.message)
	}
	return ch.Job
}

// benchHarness is a harness whose own workers stay idle: the benchmark
// drives jobs itself.
func benchHarness(b *testing.B, cfg Config) (*harness, store.Project) {
	h := newHarness(b, cfg)
	h.r.Shutdown(context.Background()) // no workers: the benchmark claims the jobs
	rp := testrepo.New(b, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "bench", BuildScript: "#!/bin/sh\n"})
	return h, p
}

var shaSeq atomic.Int64

func nextSHA() string { return fmt.Sprintf("%040d", shaSeq.Add(1)) }

// BenchmarkTrivialJob compares a job whose script is `exit 0` run end to end
// through the runner (claim, pull check, upload, container, log, result,
// and the cleanup: container removal and log compression; not the clone)
// with raw create/attach/start/wait/remove of the same image and command.
// Both arms have removed their container when an iteration ends.
func BenchmarkTrivialJob(b *testing.B) {
	needDocker(b)
	b.Run("raw", func(b *testing.B) {
		h, _ := benchHarness(b, Config{})
		for b.Loop() {
			rawRun(b, h.dc, []string{"/bin/sh", "-c", "exit 0"}, io.Discard)
		}
	})
	b.Run("runner", func(b *testing.B) {
		h, p := benchHarness(b, Config{})
		src := dirSource{path: b.TempDir()}
		for b.Loop() {
			runnerJob(b, h, p, nextSHA(), src, "#!/bin/sh\nexit 0\n")
			h.r.cleanup.Wait()
		}
	})
}

// BenchmarkTrivialJobPhases runs a job whose script is `exit 0` from
// "enqueued" to "finished" step by step, as a worker does, and reports how
// long each step takes, in ms per job: claim (the store's claim), checkout
// (the job's definition and the clone of its commit, while the image check
// and the build container are made), create (what is left of those after
// the clone), start (the upload of the source and script, the attach and
// the start), wait (until the container has exited and its output is
// read), record (the rest of the log and the result into the store) and
// remove (the container's removal, which a worker leaves to its cleanup,
// off the job's path).
func BenchmarkTrivialJobPhases(b *testing.B) {
	needDocker(b)
	h, _ := benchHarness(b, Config{})
	rp := testrepo.New(b, map[string]string{"README": "x"})
	sha := rp.Git("rev-parse", "HEAD")
	p, _ := h.project(rp, store.Hook{Title: "trivial", BuildScript: "#!/bin/sh\nexit 0\n"})
	ctx := context.Background()
	phases := []string{"claim", "checkout", "create", "start", "wait", "record", "remove"}
	spent := make([]time.Duration, len(phases))
	for b.Loop() {
		b.StopTimer()
		// A new branch each time: a second build of the same push is none.
		if _, _, err := h.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/" + nextSHA(), SHA: sha}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		phase := 0
		last := time.Now()
		step := func() {
			now := time.Now()
			spent[phase] += now.Sub(last)
			phase, last = phase+1, now
		}
		ch, ok, err := h.db.ClaimJob(ctx)
		if err != nil || !ok {
			b.Fatalf("claim: %v %v", ok, err)
		}
		step()
		run, err := h.db.JobRunOf(ctx, ch.Job.ID)
		if err != nil {
			b.Fatal(err)
		}
		l := newJobLog(ctx, h.db, h.r.Logs(), ch.Job.ID, h.r.cfg.MaxLogBytes, nil, h.r.log)
		dir := b.TempDir()
		s := spec{jobID: ch.Job.ID, projectID: p.ID, image: run.Hook.DockerImage, build: run.Hook.BuildScript,
			src: gitSource{path: dir, sha: sha}, env: jobEnv(run)}
		e := h.r.local().prepare(ctx, s).(*early)
		if err := git.Clone(ctx, git.CloneSpec{Remote: git.Remote{URL: run.Project.CloneURL()}, Ref: run.Build.Ref, SHA: sha}, dir, l); err != nil {
			b.Fatal(err)
		}
		step()
		<-e.done
		if e.imgErr != nil || e.createErr != nil {
			b.Fatal(e.imgErr, e.createErr)
		}
		step()
		attached, err := h.r.local().startContainer(ctx, e.container, s.src, s.build, l)
		if err != nil {
			b.Fatal(err)
		}
		step()
		code, err := h.r.local().waitContainer(ctx, e.container, attached)
		attached.Close()
		if err != nil || code != 0 {
			b.Fatalf("wait: %d, %v", code, err)
		}
		step()
		l.Close()
		h.r.finish(ch.Job.ID, result{status: store.JobSuccess, exitCode: &code, containerID: e.container})
		step()
		h.r.local().remove(e.container)
		step()
		b.StopTimer()
		h.r.cleanup.Wait() // the log's compression, which would load the next job
		b.StartTimer()
	}
	for i, name := range phases {
		b.ReportMetric(float64(spent[i].Microseconds())/1000/float64(b.N), name+"-ms/op")
	}
}

// logLines of 500 bytes each make 100 MB.
const logLines = 200000

var logScript = "#!/bin/sh\nyes " + strings.Repeat("x", 499) + " | head -n 200000\n"

// countWriter counts what passes.
type countWriter struct{ n atomic.Int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// BenchmarkLogThroughput streams a job printing 200,000 lines (100 MB)
// through the runner into the store, compressed as it streams, beside raw
// Docker streaming of the same output to nowhere, and reports MB/s while
// streaming (the timed part), the time the job's cleanup (its container's
// removal) takes after it, and the Go heap's peak over both. Each
// iteration's cleanup ends before the next job starts, so neither figure
// mixes two iterations.
func BenchmarkLogThroughput(b *testing.B) {
	needDocker(b)
	b.Run("raw", func(b *testing.B) {
		h, _ := benchHarness(b, Config{})
		var bytes int64
		for b.Loop() {
			var cw countWriter
			rawRun(b, h.dc, []string{"/bin/sh", "-c", logScript[len("#!/bin/sh\n"):]}, &cw)
			bytes += cw.n.Load()
		}
		b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
	})
	b.Run("runner", func(b *testing.B) {
		h, p := benchHarness(b, Config{MaxLogBytes: 1 << 30})
		src := dirSource{path: b.TempDir()}
		peak := heappeak.Watch(b)
		var bytes int64
		var cleanup time.Duration
		for b.Loop() {
			j := runnerJob(b, h, p, nextSHA(), src, logScript)
			b.StopTimer()
			began := time.Now()
			h.r.cleanup.Wait()
			cleanup += time.Since(began)
			info, err := h.db.LogInfoOf(context.Background(), j.ID)
			if err != nil || info.Size < logLines*500 || !info.Compressed {
				b.Fatalf("stored %d bytes, compressed %t, %v", info.Size, info.Compressed, err)
			}
			bytes += info.Size
			b.StartTimer()
		}
		b.ReportMetric(float64(bytes)/1e6/b.Elapsed().Seconds(), "MB/s")
		b.ReportMetric(float64(cleanup.Milliseconds())/float64(b.N), "cleanup-ms/op")
		b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
	})
}
