package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/syncbuf"
	"kozmic/store"
)

// Container labels. Every job container carries LabelJob and LabelProject;
// crash recovery removes containers with LabelJob that no process owns.
const (
	LabelJob      = "kozmic.job"
	LabelInstance = "kozmic.instance" // which Kozmic (which database) made it
	LabelProject  = "kozmic.project"
	LabelCache    = "kozmic.cache"
	LabelExec     = "kozmic.exec" // containers of `kozmic exec`, left alone by the server
	// LabelScope is a cache image's store.CacheScope. Images without it were
	// made before scopes existed, when builds from forks wrote the project's
	// cache: they are never read, and Sweep removes them.
	LabelScope = "kozmic.cache-scope"
	// CacheRepository prefixes install-cache images:
	// kozmic-cache/<cache id>:<instance>-<project id>-<scope> (see cacheTag).
	CacheRepository = "kozmic-cache/"
)

// The messages people see in a job's log when Kozmic stops their script.
const (
	StalledMessage  = "Sorry, your script has stalled and been killed."
	TimedOutMessage = "Sorry, your script ran longer than %s and has been killed."
	SkippedInstall  = "Skipping install script as tracked files did not change..."
	// NoShebangMessage follows a script without a #! line that the
	// container runtime refused to start; %s is "build" or "install".
	NoShebangMessage = "The %s script needs a #! line naming its interpreter, such as #!/bin/sh, as its first line: without one it cannot be run (exec format error)."
	// NoShellMessage says that a script runs without its stderr merged into
	// its stdout, because the image has no /bin/sh to merge them.
	NoShellMessage = "The image has no /bin/sh: the script runs on its own, so its output and its errors reach the log apart, and lines written close together may come out of order."
)

var (
	errStalled  = errors.New("stalled")
	errTimedOut = errors.New("timed out")
	errShutdown = errors.New("the server is stopping")
)

// canceled is the cancellation cause of a job someone canceled.
type canceled struct{ by string }

func (c canceled) Error() string { return "canceled by " + c.by }

// spec is one hook definition to execute on one source tree.
type spec struct {
	jobID     int64 // 0 for `kozmic exec`
	projectID int64
	image     string
	install   string
	build     string
	tracked   []string
	scope     store.CacheScope // whose install cache images the job reads and writes
	fork      string           // names the fork whose scope is scope, for the log; "" for the project scope
	src       source
	env       []string // the build step's environment; the install step gets none of it
	early     prepared // what the engine made while the commit was fetched; or nil
	log       *jobLog  // the job's log, to mark where each step begins; nil for `kozmic exec`
}

// prepared is what an engine made of a job before its checkout was done
// (engine.prepare): only that engine reads it, in run.
type prepared interface {
	// discard removes it, for a job that ends before its steps.
	discard()
}

// early is what a Docker engine prepares: the image and build container of
// a job without an install step, made while its commit is fetched: they
// need only the image and the script. Their log lines wait in log until
// the job's log reaches them: a pull the job gave up waiting for may still
// write there.
type early struct {
	e         *dockerEngine
	done      chan struct{} // closed when the fields are set
	log       syncbuf.Buffer
	img       *docker.Image
	imgErr    error
	container string
	createErr error
}

// prepare starts making the image and build container of s in the
// background when s has no install step, and returns them (an *early);
// nil otherwise. The caller hands them to execute in s.early, or discards
// them.
func (e *dockerEngine) prepare(ctx context.Context, s spec) prepared {
	if strings.TrimSpace(s.install) != "" {
		return nil
	}
	pre := &early{e: e, done: make(chan struct{})}
	go func() {
		defer close(pre.done)
		if pre.img, pre.imgErr = e.image(ctx, s.image, &pre.log); pre.imgErr != nil {
			return
		}
		// Not cut short by the job's end, which may come during the clone: the
		// engine might make the container all the same, unknown to discard.
		pre.container, pre.createErr = e.createContainer(context.WithoutCancel(ctx), pre.img.ID, s.build, s.env, e.r.labels(s), e.hasShell(pre.img.ID))
	}()
	return pre
}

// discard removes the container prepare made, once it is made.
func (pre *early) discard() {
	<-pre.done
	if pre.container != "" {
		pre.e.removeLater(pre.container)
	}
}

// result is how an execution ended.
type result struct {
	status      store.JobStatus
	exitCode    *int
	cache       store.CacheResult
	cacheID     string
	scope       store.CacheScope
	containerID string
	message     string // why it errored, for people
}

// activity is an output that remembers when it was last written to, for the
// stall watchdog.
type activity struct {
	w    io.Writer
	last atomic.Int64
}

func (a *activity) Write(p []byte) (int, error) {
	a.last.Store(time.Now().UnixNano())
	return a.w.Write(p)
}

func (a *activity) idle() time.Duration { return time.Since(time.Unix(0, a.last.Load())) }

// startReportBytes is how much of a step's first output is kept to look for
// the container runtime's report of a script it could not start.
const startReportBytes = 512

// outputHead passes a step's output on and keeps its first startReportBytes.
type outputHead struct {
	w    io.Writer
	head []byte
}

func (o *outputHead) Write(p []byte) (int, error) {
	if n := min(len(p), startReportBytes-len(o.head)); n > 0 {
		o.head = append(o.head, p[:n]...)
	}
	return o.w.Write(p)
}

// runStep runs the script of a created container, as runContainer does,
// and says in the log when it failed because the script has no #! line.
// The runtime reports that ("exec /kozmic/script: exec format error") as
// the container's first output and exits non-zero, like a failing script.
func (e *dockerEngine) runStep(ctx context.Context, c string, src source, step, script string, out io.Writer) (int, error) {
	o := &outputHead{w: out}
	code, err := e.runContainer(ctx, c, src, script, o)
	if err == nil && code != 0 && !store.HasShebang(script) &&
		strings.Contains(strings.ToLower(string(o.head)), "exec format error") {
		say(out, NoShebangMessage, step)
	}
	return code, err
}

// errNoShell is a container that could not start because its image has no
// /bin/sh to start the script with (mergedEntrypoint).
var errNoShell = errors.New("the image has no /bin/sh")

// runScript runs the script of container c, made of image (base or an
// install image of it) by createContainer, as runStep does, and returns the
// container it ran in. When c cannot start because the image has no
// /bin/sh, it removes c, notes base as an image without one (hasShell),
// says so in the log, and runs the script in a new container of image made
// with env and labels, the script on its own; the container returned is
// then that one, or "" if it could not be made.
func (e *dockerEngine) runScript(ctx context.Context, c, base, image, script string, env []string, labels map[string]string, src source, step string, out io.Writer) (string, int, error) {
	code, err := e.runStep(ctx, c, src, step, script, out)
	if !errors.Is(err, errNoShell) {
		return c, code, err
	}
	e.removeLater(c)
	e.noShell.Store(base, true)
	say(out, "%s", NoShellMessage)
	if c, err = e.createContainer(ctx, image, script, env, labels, false); err != nil {
		return "", 0, err
	}
	code, err = e.runStep(ctx, c, src, step, script, out)
	return c, code, err
}

// hasShell says whether containers of the base image with this ID (and of
// its install images) can start their script with /bin/sh: unless one of
// them could not (runScript).
func (e *dockerEngine) hasShell(base string) bool {
	_, without := e.noShell.Load(base)
	return !without
}

// say writes a line of Kozmic's own into a job's log, set apart in bold cyan.
func say(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "\x1b[1;36m==> "+format+"\x1b[0m\r\n", args...)
}

// execute runs a hook definition on engine e: image, install step (or its
// cached image), build step. It kills the container when the job stalls,
// times out, or is canceled, and says so in the log.
func (r *Runner) execute(ctx context.Context, e engine, s spec, w io.Writer) result {
	out := &activity{w: w}
	out.last.Store(time.Now().UnixNano())
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, r.cfg.JobTimeout, errTimedOut)
	defer cancelTimeout()
	go r.watchStall(ctx, out, cancel)

	res := e.run(ctx, s, out)
	if res.status != "" {
		return res // ended on its own, even if a timer fired just after
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStalled):
		fmt.Fprintf(out, "\r\n\x1b[1;31m%s\x1b[0m\r\n", StalledMessage)
		res.status, res.message = store.JobFailure, StalledMessage
	case errors.Is(cause, errTimedOut):
		msg := fmt.Sprintf(TimedOutMessage, r.cfg.JobTimeout)
		fmt.Fprintf(out, "\r\n\x1b[1;31m%s\x1b[0m\r\n", msg)
		res.status, res.message = store.JobFailure, msg
	default: // canceled, or the server is stopping
		say(out, "%s", cause)
		res.status, res.message = store.JobError, cause.Error()
	}
	return res
}

func (r *Runner) watchStall(ctx context.Context, out *activity, cancel context.CancelCauseFunc) {
	t := time.NewTicker(min(time.Second, r.cfg.StallTimeout/4))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if out.idle() >= r.cfg.StallTimeout {
				cancel(errStalled)
				return
			}
		}
	}
}

func (e *dockerEngine) run(ctx context.Context, s spec, out io.Writer) result {
	var res result
	// fail ends the job as an error, unless ctx ended: then the step failed
	// because of that, and execute says why from ctx's cause.
	fail := func(format string, args ...any) result {
		if ctx.Err() != nil {
			return res
		}
		res.status, res.message = store.JobError, fmt.Sprintf(format, args...)
		fmt.Fprintf(out, "\x1b[1;31m==> %s\x1b[0m\r\n", res.message)
		return res
	}
	var base *docker.Image
	var err error
	pre, _ := s.early.(*early) // nil unless prepare made one
	s.log.beginStep(store.StepImage, store.StepRunning)
	if pre != nil {
		<-pre.done
		io.WriteString(out, pre.log.String())
		base, err = pre.img, pre.imgErr
	} else {
		base, err = e.image(ctx, s.image, out)
	}
	if err != nil {
		return fail("%s", err)
	}
	runFrom := base.ID
	labels := e.r.labels(s)

	if strings.TrimSpace(s.install) != "" {
		ids, err := s.src.objectIDs(s.tracked)
		if err != nil {
			s.log.beginStep(store.StepInstall, store.StepRunning)
			return fail("Could not read the tracked files: %s", err)
		}
		res.cacheID, res.scope = cacheID(base.ID, s.install, ids), s.scope
		cached := e.r.cacheImage(res.cacheID, s.projectID, s.scope)
		img, err := e.docker.InspectImage(cached)
		if err == nil {
			s.log.beginStep(store.StepInstall, store.StepSkipped)
		} else {
			s.log.beginStep(store.StepInstall, store.StepRunning)
		}
		if s.fork != "" {
			say(out, "Using the install cache of the fork %s, which trusted builds never use", s.fork)
		}
		if err == nil {
			say(out, "%s", SkippedInstall)
			res.cache, runFrom = store.CacheHit, img.ID
		} else {
			res.cache = store.CacheMiss
			say(out, "Running the install script")
			env := []string{"CI=true", "KOZMIC=true"}
			c, err := e.createContainer(ctx, base.ID, s.install, env, labels, e.hasShell(base.ID))
			if err != nil {
				return fail("%s", err)
			}
			c, code, err := e.runScript(ctx, c, base.ID, base.ID, s.install, env, labels, s.src, "install", out)
			if err == nil && code == 0 {
				err = e.commit(ctx, c, res.cacheID, s.projectID, s.scope)
				if err == nil {
					runFrom = cached
				}
			}
			if c != "" {
				e.removeLater(c)
			}
			switch {
			case ctx.Err() != nil:
				return res
			case err != nil:
				return fail("%s", err)
			case code != 0:
				say(out, "The install script exited with %d", code)
				res.status, res.exitCode = store.JobFailure, &code
				return res
			}
			e.pruneCache(ctx, s.projectID, s.scope, res.cacheID, out)
		}
	}

	s.log.beginStep(store.StepBuild, store.StepRunning)
	say(out, "Running the build script")
	var c string
	if pre != nil {
		c, err = pre.container, pre.createErr
	} else {
		c, err = e.createContainer(ctx, runFrom, s.build, s.env, labels, e.hasShell(base.ID))
	}
	if err != nil {
		return fail("%s", err)
	}
	c, code, err := e.runScript(ctx, c, base.ID, runFrom, s.build, s.env, labels, s.src, "build", out)
	if c != "" {
		res.containerID = c
		defer e.removeLater(c)
	}
	if ctx.Err() != nil {
		return res
	}
	if err != nil {
		return fail("%s", err)
	}
	res.exitCode = &code
	if code == 0 {
		res.status = store.JobSuccess
		say(out, "The build script succeeded")
	} else {
		res.status = store.JobFailure
		say(out, "The build script exited with %d", code)
	}
	return res
}

// labels are the labels of a job's containers.
func (r *Runner) labels(s spec) map[string]string {
	labels := map[string]string{LabelProject: strconv.FormatInt(s.projectID, 10)}
	if r.cfg.Instance != "" {
		labels[LabelInstance] = r.cfg.Instance
	}
	if s.jobID != 0 {
		labels[LabelJob] = strconv.FormatInt(s.jobID, 10)
	} else {
		labels[LabelExec] = "1"
	}
	return labels
}

// cacheID is SHA-256 over the base image's ID, the install script, and each
// tracked path (sorted) with its object id; a missing path counts by its
// path alone, so removing a tracked file changes the id.
func cacheID(imageID, install string, ids map[string]string) string {
	h := sha256.New()
	fmt.Fprintf(h, "image %s\ninstall %d\n%s\n", imageID, len(install), install)
	paths := make([]string, 0, len(ids))
	for p := range ids {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		fmt.Fprintf(h, "path %q %s\n", p, ids[p])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// pullState is the last pull of one image reference.
type pullState struct {
	done chan struct{} // closed when the pull ended
	at   time.Time     // when it ended
	err  error
}

// image returns the image ref names, from this Docker engine at once when
// it is there: then, if ref was not pulled within PullInterval, a pull
// refreshes it in the background for later jobs, so that no job waits for
// a registry while a copy is at hand (nor, for an image built or imported
// on this engine and in no registry, for the registry's refusal). An image
// not on the engine is pulled while the job waits; a pull that failed is
// not tried again within PullInterval. Jobs wanting one reference share
// its pull.
func (e *dockerEngine) image(ctx context.Context, ref string, out io.Writer) (*docker.Image, error) {
	if img, err := e.docker.InspectImage(ref); err == nil {
		p, started := e.pull(ref, io.Discard)
		switch {
		case started:
			say(out, "Using %s from this Docker engine; pulling a newer copy, if there is one, for later jobs", ref)
		case pullFailed(p) != nil:
			say(out, "Using %s from this Docker engine (its last pull failed: %v)", ref, p.err)
		default:
			say(out, "Using %s from this Docker engine", ref)
		}
		return img, nil
	}
	p, started := e.pull(ref, out)
	if started {
		say(out, "Pulling %s", ref)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	img, err := e.docker.InspectImage(ref)
	if err != nil {
		if p.err != nil {
			return nil, fmt.Errorf("The image %s could not be pulled and is not on this Docker engine: %v", ref, p.err)
		}
		return nil, fmt.Errorf("The image %s is not on this Docker engine: %v", ref, err)
	}
	return img, nil
}

// pull starts a pull of ref, with its progress in out, unless one is under
// way or ended within PullInterval, and returns the one started or that
// one, which ended when done is closed. The pull outlives the job that
// asked for it, as other jobs may wait for it, and ends with the runner.
func (e *dockerEngine) pull(ref string, out io.Writer) (p *pullState, started bool) {
	e.pullMu.Lock()
	defer e.pullMu.Unlock()
	if p := e.pulls[ref]; p != nil {
		select {
		case <-p.done:
			if time.Since(p.at) < e.r.cfg.PullInterval {
				return p, false
			}
		default: // under way
			return p, false
		}
	}
	p = &pullState{done: make(chan struct{})}
	e.pulls[ref] = p
	e.r.cleanup.Go(func() {
		repo, tag := splitRef(ref)
		err := e.docker.PullImage(docker.PullImageOptions{Repository: repo, Tag: tag, OutputStream: out, Context: e.r.pullCtx}, docker.AuthConfiguration{})
		if err != nil {
			e.r.log.Warn("pull image", "image", ref, "err", err)
		}
		e.pullMu.Lock()
		p.err, p.at = err, time.Now()
		e.pullMu.Unlock()
		close(p.done)
	})
	return p, true
}

// pullFailed is the error of a pull that has ended, and nil for one that
// succeeded or is under way.
func pullFailed(p *pullState) error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// splitRef splits an image reference into repository and tag; no tag means
// latest, and a digest reference is pulled as it is.
func splitRef(ref string) (repo, tag string) {
	if strings.Contains(ref, "@") {
		return ref, ""
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}
