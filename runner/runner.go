// Package runner runs jobs in Docker: a bounded pool of workers takes
// enqueued jobs from the store (the jobs table is the queue), checks out the
// commit, runs the hook's install script (or reuses its cached image) and
// build script, streams the output into the store and to live followers, and
// records the result.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/git"
	"kozmic/store"
)

// Store is what the runner needs of the database.
type Store interface {
	ClaimJob(ctx context.Context) (store.JobChanged, bool, error)
	JobRunOf(ctx context.Context, jobID int64) (store.JobRun, error)
	JobByID(ctx context.Context, id int64) (store.Job, error)
	UpdateJob(ctx context.Context, id int64, u store.JobUpdate) (store.JobChanged, error)
	RestartJob(ctx context.Context, jobID int64, by store.User) (store.JobChanged, error)
	RerunFailedJobs(ctx context.Context, buildID int64, by store.User) ([]store.JobChanged, error)
	RecoverInterruptedJobs(ctx context.Context) ([]store.JobChanged, error)
	AppendLogFrames(ctx context.Context, jobID int64, frames []store.LogFrame) (int64, error)
	AddAnnotations(ctx context.Context, jobID int64, notes []store.Annotation, seen store.AnnotationCounts) error
	ReadLogMarks(ctx context.Context, jobID, from int64, max int) ([]byte, []store.LogMark, error)
	BeginJobStep(ctx context.Context, jobID int64, s store.JobStep) ([]store.JobStep, error)
	EndJobStep(ctx context.Context, jobID int64, status store.StepStatus, at time.Time) ([]store.JobStep, error)
	JobSteps(ctx context.Context, jobID int64) ([]store.JobStep, error)
	CacheLastUsed(ctx context.Context, projectID int64) (map[store.CacheUse]time.Time, error)
	ProjectByID(ctx context.Context, id int64) (store.Project, error)
	PinHostKey(ctx context.Context, projectID int64, key string) error
	SetBuildCommit(ctx context.Context, buildID int64, author, subject string) error
}

// Notifier hears of every change to a job and its build: GitHub statuses and
// e-mail plug in here. It must not block for long. A nil Notifier is allowed.
type Notifier interface {
	JobChanged(ctx context.Context, ch store.JobChanged)
}

// Config tunes the runner; zero values take the defaults noted.
type Config struct {
	Workers           int           // jobs at once; default 2
	StallTimeout      time.Duration // kill after this long without output; default 15m
	JobTimeout        time.Duration // kill after this long; default 1h
	CachedImagesLimit int           // install-cache images per project, and as many again for its forks; default 3
	MaxLogBytes       int64         // stored per job; default 32 MiB
	Network           string        // Docker network mode of jobs; default bridge
	Memory            int64         // bytes per container; 0: no limit
	CPUs              float64       // per container; 0: no limit
	PidsLimit         int64         // processes per container; default 4096
	PullInterval      time.Duration // pull an image at most this often; default 5m
	WorkDir           string        // where checkouts go; default the system's temporary directory
	PingInterval      time.Duration // how often the Docker engine is checked; default 5s
	SweepInterval     time.Duration // how often leftovers are swept (Sweep); default 1h
	// Instance labels this Kozmic's containers (store.DB.InstanceID): the
	// start-up recovery removes only leftovers of the same instance, so
	// several Kozmic servers can share one Docker engine.
	Instance string
	// Metrics hears of started and finished jobs and stored log bytes; nil: none.
	Metrics Metrics
	// DeployKeys is asked for the deploy key of each job before its fetch;
	// nil: the stored one.
	DeployKeys DeployKeys
}

// DeployKeys gives the private deploy key a job of project p fetches
// with, stored being the one the database holds; gh.Projects re-creates
// a key that went missing on GitHub. It never fails: when it cannot do
// better, it returns stored.
type DeployKeys interface {
	JobDeployKey(ctx context.Context, p store.Project, stored string) string
}

// deployKeyCheckTimeout bounds the check of a job's deploy key, so that a
// GitHub that does not answer delays the job this much at most.
const deployKeyCheckTimeout = 30 * time.Second

func (c *Config) defaults() {
	set := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.CachedImagesLimit <= 0 {
		c.CachedImagesLimit = 3
	}
	set((*int64)(&c.StallTimeout), int64(15*time.Minute))
	set((*int64)(&c.JobTimeout), int64(time.Hour))
	set((*int64)(&c.PullInterval), int64(5*time.Minute))
	set((*int64)(&c.PingInterval), int64(5*time.Second))
	set((*int64)(&c.SweepInterval), int64(time.Hour))
	set(&c.MaxLogBytes, 32<<20)
	set(&c.PidsLimit, 4096)
	if c.Network == "" {
		c.Network = "bridge"
	}
}

// Runner is the worker pool.
type Runner struct {
	cfg    Config
	store  Store
	docker *docker.Client
	notify Notifier
	log    *slog.Logger
	logs   *Broker

	wake chan struct{} // a job was enqueued, or the Docker engine answers again
	busy atomic.Int32
	// slots holds, for each worker, the id of the job it runs (0: none):
	// atomics, so that Slots never waits for a claim's database write.
	slots []atomic.Int64
	down  atomic.Bool // the Docker engine did not answer the last ping

	// mu guards active, and makes a claim and the job's registration one
	// step as Cancel sees it (see claim).
	mu     sync.Mutex
	active map[int64]context.CancelCauseFunc // running jobs

	// recMu guards recording: jobs that ended and whose log and result are
	// being stored (see Recording). Apart from mu, which a claim holds
	// through a database write, so that pages asking never wait for one.
	recMu     sync.Mutex
	recording map[int64]bool

	// firstStart makes a container start wait for one that is running
	// until one has succeeded: the Docker client notes the engine's API
	// version at its first start, unguarded, so two first starts would race.
	firstStart sync.Mutex
	started    atomic.Bool
	// noShell holds the IDs of base images found to have no /bin/sh (see
	// hasShell).
	noShell   sync.Map
	pullMu    sync.Mutex
	pulls     map[string]*pullState
	pullCtx   context.Context // the pulls' context: Shutdown ends it
	stopPulls context.CancelFunc

	stopClaiming context.CancelFunc
	stopJobs     context.CancelCauseFunc
	jobsCtx      context.Context
	workers      sync.WaitGroup
	// cleanup is what a job leaves to be done off the worker's path: removing
	// its containers, and the image pulls. Shutdown and Exec wait for it.
	cleanup sync.WaitGroup
}

// New returns a runner; Start sets it going.
func New(cfg Config, st Store, dc *docker.Client, n Notifier, log *slog.Logger) *Runner {
	cfg.defaults()
	pullCtx, stopPulls := context.WithCancel(context.Background())
	return &Runner{cfg: cfg, store: st, docker: dc, notify: n, log: log, logs: NewBroker(),
		wake: make(chan struct{}, 1), slots: make([]atomic.Int64, cfg.Workers),
		active: map[int64]context.CancelCauseFunc{}, recording: map[int64]bool{},
		pulls: map[string]*pullState{}, pullCtx: pullCtx, stopPulls: stopPulls}
}

// NewDockerClient connects to the Docker engine at host (a unix:// or
// tcp:// address). It does not check that the engine answers.
func NewDockerClient(host string) (*docker.Client, error) {
	return NewDockerTLSClient(host, "")
}

// NewDockerTLSClient is NewDockerClient for an engine that wants TLS with
// client certificates: certDir holds ca.pem, cert.pem and key.pem, as
// DOCKER_CERT_PATH does for the docker command. An empty certDir means
// no TLS.
func NewDockerTLSClient(host, certDir string) (*docker.Client, error) {
	var c *docker.Client
	var err error
	if certDir == "" {
		c, err = docker.NewClient(host)
	} else {
		c, err = docker.NewTLSClient(host, filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem"), filepath.Join(certDir, "ca.pem"))
	}
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", host, err)
	}
	c.SkipServerVersionCheck = true // one round trip fewer per attach
	return c, nil
}

// Logs is the broker live log followers subscribe to.
func (r *Runner) Logs() *Broker { return r.logs }

// pingTimeout is how long the Docker engine has to answer a ping.
const pingTimeout = 3 * time.Second

// Start removes containers an earlier process left behind, records its
// interrupted jobs (re-enqueuing each once) and starts the workers, and
// from then on pings the Docker engine every Config.PingInterval until
// Shutdown (see Unreachable). If the engine does not answer the first ping
// within a few seconds, Start returns and the monitor does the rest once it
// answers; until then jobs wait in the queue.
func (r *Runner) Start(ctx context.Context) {
	base := context.WithoutCancel(ctx)
	claimCtx, stopClaiming := context.WithCancel(base)
	r.jobsCtx, r.stopJobs = context.WithCancelCause(base)
	r.stopClaiming = stopClaiming
	started, level := false, slog.LevelWarn // the first failure is worth a warning, the retries are not
	startUp := func() {
		if err := r.recoverLeftovers(claimCtx); err != nil {
			if claimCtx.Err() == nil {
				r.log.Log(claimCtx, level, "the runner cannot start yet: jobs wait", "err", err)
			}
			level = slog.LevelDebug
			return
		}
		r.startWorkers(claimCtx)
		started = true
	}
	if r.ping(claimCtx) {
		startUp()
	}
	r.workers.Go(func() { // the monitor; it alone calls startUp from now on
		tick := time.NewTicker(r.cfg.PingInterval)
		defer tick.Stop()
		for {
			select {
			case <-claimCtx.Done():
				return
			case <-tick.C:
			}
			if r.ping(claimCtx) && !started {
				startUp()
			}
		}
	})
}

// ping asks the Docker engine whether it answers, records that for
// Unreachable and the workers, and logs each change. When the engine comes
// back, it wakes the workers.
func (r *Runner) ping(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	err := r.docker.PingWithContext(pctx)
	cancel()
	if ctx.Err() != nil {
		return false // stopping: that says nothing of the engine
	}
	if err != nil {
		if !r.down.Swap(true) {
			r.log.Warn("the Docker engine is not reachable: jobs wait until it answers",
				"endpoint", r.docker.Endpoint(), "err", err)
		}
		return false
	}
	if r.down.Swap(false) {
		r.log.Info("the Docker engine is reachable again: waiting jobs start", "endpoint", r.docker.Endpoint())
		r.Enqueued()
	}
	return true
}

func (r *Runner) startWorkers(ctx context.Context) {
	for slot := range r.cfg.Workers {
		r.workers.Go(func() { r.work(ctx, slot) })
	}
	r.workers.Go(func() { r.sweepEvery(ctx, r.cfg.SweepInterval) })
	r.Enqueued()
}

func (r *Runner) recoverLeftovers(ctx context.Context) error {
	labels := []string{LabelJob}
	if r.cfg.Instance != "" {
		labels = append(labels, LabelInstance+"="+r.cfg.Instance)
	}
	left, err := r.docker.ListContainers(docker.ListContainersOptions{All: true, Context: ctx,
		Filters: map[string][]string{"label": labels}})
	if err != nil {
		return fmt.Errorf("list leftover containers: %w", err)
	}
	for _, c := range left {
		r.log.Info("removing a container left by an earlier run", "container", c.ID[:12], "job", c.Labels[LabelJob])
		r.remove(c.ID)
	}
	changes, err := r.store.RecoverInterruptedJobs(ctx)
	if err != nil {
		return fmt.Errorf("recover interrupted jobs: %w", err)
	}
	for _, ch := range changes {
		if ch.Job.Status == store.JobError {
			r.log.Warn("job was interrupted by a stop of the server", "job", ch.Job.ID)
			r.logs.end(ch.Job.ID)
		}
		r.changed(ctx, ch)
	}
	return nil
}

// changed tells the notifier, if there is one.
func (r *Runner) changed(ctx context.Context, ch store.JobChanged) {
	if r.notify != nil {
		r.notify.JobChanged(ctx, ch)
	}
}

// Enqueued wakes an idle worker: call it after jobs were enqueued.
func (r *Runner) Enqueued() {
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// Unreachable is the sentence "Docker is not reachable at <endpoint> —
// jobs will wait" while the Docker engine does not answer, and "" while it
// does. It reads what the last ping found, so it is cheap; a runner that
// was never started has not pinged and returns "".
func (r *Runner) Unreachable() string {
	if !r.down.Load() {
		return ""
	}
	return fmt.Sprintf("Docker is not reachable at %s — jobs will wait", r.docker.Endpoint())
}

// Waiting describes why an enqueued job has not started, such as "waiting
// for a free worker: 2 of 2 busy" or "waiting for Docker: not reachable at
// unix:///var/run/docker.sock"; empty when a worker is free.
func (r *Runner) Waiting() string {
	if r.down.Load() {
		return "waiting for Docker: not reachable at " + r.docker.Endpoint()
	}
	busy := int(r.busy.Load())
	if busy < r.cfg.Workers {
		return ""
	}
	return fmt.Sprintf("waiting for a free worker: %d of %d busy", busy, r.cfg.Workers)
}

// Slots says which job each worker runs: element i is the id of the job
// worker i+1 runs, 0 while it has none; there are Config.Workers of them.
// A job holds its slot from its claim until its result is recorded (or the
// server stopped it). It is cheap: it reads what the workers noted.
func (r *Runner) Slots() []int64 {
	ids := make([]int64, len(r.slots))
	for i := range r.slots {
		ids[i] = r.slots[i].Load()
	}
	return ids
}

// work is worker slot's loop (0-based): it claims jobs and runs them until
// ctx ends.
func (r *Runner) work(ctx context.Context, slot int) {
	for {
		if r.down.Load() {
			// A job claimed now would fail on every Docker call: leave it
			// enqueued. ping wakes a worker when the engine answers again.
			select {
			case <-r.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		ch, jobCtx, ok, err := r.claim(ctx, slot)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Error("claim job", "err", err)
			select { // the store failed: try again in a moment
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		if !ok {
			select {
			case <-r.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		r.Enqueued() // more may wait: pass the wake-up on to another idle worker
		r.busy.Add(1)
		r.changed(r.jobsCtx, ch)
		r.jobStarted(ch.Job)
		r.runJob(jobCtx, ch.Job)
		r.slots[slot].Store(0)
		r.busy.Add(-1)
	}
}

// claim takes the oldest enqueued job from the store and registers it as
// active, with the context Cancel cancels, in one step under r.mu: Cancel
// finds a job either active or not yet claimed, never claimed but unknown
// to it, which it would mark canceled in the store while the job runs on.
// It notes the job as worker slot's (see Slots). ok is false when no job
// waits.
func (r *Runner) claim(ctx context.Context, slot int) (store.JobChanged, context.Context, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch, ok, err := r.store.ClaimJob(ctx)
	if err != nil || !ok {
		return ch, nil, false, err
	}
	jobCtx, cancel := context.WithCancelCause(r.jobsCtx)
	r.active[ch.Job.ID] = cancel
	r.slots[slot].Store(ch.Job.ID)
	return ch, jobCtx, true, nil
}

// runJob runs one claimed job to its end, records the result and
// unregisters the job; ctx is the one claim registered.
func (r *Runner) runJob(ctx context.Context, job store.Job) {
	defer func() {
		r.mu.Lock()
		r.active[job.ID](nil) // release the job's context
		delete(r.active, job.ID)
		r.mu.Unlock()
		r.setRecording(job.ID, false)
	}()
	res := r.runLoaded(ctx, job.ID)
	if errors.Is(context.Cause(ctx), errShutdown) {
		r.logs.end(job.ID)
		return // left running in the store: the next start recovers it
	}
	r.setRecording(job.ID, true) // also for a job that ended before it had a log
	r.finish(job.ID, res)
}

// setRecording marks a job as ended with its log and result being stored,
// or no longer.
func (r *Runner) setRecording(jobID int64, on bool) {
	r.recMu.Lock()
	defer r.recMu.Unlock()
	if on {
		r.recording[jobID] = true
	} else {
		delete(r.recording, jobID)
	}
}

// Recording says whether a job has ended and this runner is storing its
// log and result: the store still shows the job running until they land,
// which a database that refuses writes (a full disk) delays while the
// runner tries again. It is cheap: it reads what the worker noted.
func (r *Runner) Recording(jobID int64) bool {
	r.recMu.Lock()
	defer r.recMu.Unlock()
	return r.recording[jobID]
}

// runLoaded loads a claimed job's definition and runs it. A job canceled
// before it was loaded (while the notifier heard of its claim, say) ends
// with the cancellation as its message and runs nothing.
func (r *Runner) runLoaded(ctx context.Context, jobID int64) result {
	run, err := r.store.JobRunOf(ctx, jobID)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return result{status: store.JobError, message: cause.Error()}
		}
		r.log.Error("load job", "job", jobID, "err", err)
		return result{status: store.JobError, message: "Kozmic could not load this job's definition."}
	}
	if run.Hook.ID == 0 {
		return result{status: store.JobError, message: "The hook of this job was deleted before it ran."}
	}
	secrets := make([]string, len(run.Secrets))
	for i, s := range run.Secrets {
		secrets[i] = s.Value
	}
	out := newJobLog(r.jobsCtx, r.logStore(), r.logs, jobID, r.cfg.MaxLogBytes, secrets, r.log)
	res := r.runCheckedOut(ctx, run, out)
	// The job has ended; storing the rest of its log may take long on a
	// database that refuses writes, and its page says so meanwhile.
	r.setRecording(jobID, true)
	out.endStep(res.status)
	out.Close()
	return res
}

// runCheckedOut clones the commit into a temporary directory and executes
// the job there, marking in out where each step begins.
func (r *Runner) runCheckedOut(ctx context.Context, run store.JobRun, out *jobLog) result {
	out.beginStep(store.StepFetch, store.StepRunning)
	say(out, "Job %d of build #%d of %s, attempt %d: %s at %.12s", run.Job.ID, run.Build.Number,
		run.Project.FullName, run.Job.Attempt, run.Build.Branch(), run.Build.SHA)
	dir, err := os.MkdirTemp(r.cfg.WorkDir, "kozmic-job-*")
	if err != nil {
		r.log.Error("make checkout directory", "job", run.Job.ID, "err", err)
		return result{status: store.JobError, message: "Kozmic could not make a directory for the checkout."}
	}
	defer os.RemoveAll(dir)
	key := run.DeployKey
	if r.cfg.DeployKeys != nil {
		kctx, cancel := context.WithTimeout(ctx, deployKeyCheckTimeout)
		key = r.cfg.DeployKeys.JobDeployKey(kctx, run.Project, run.DeployKey)
		cancel()
		if key != run.DeployKey {
			say(out, "The project's deploy key was missing on GitHub; Kozmic made a new one and added it there")
		}
	}
	say(out, "Fetching %.12s from %s", run.Build.SHA, run.Project.CloneURL())
	remote := git.Remote{URL: run.Project.CloneURL(), DeployKey: key, HostKey: run.Project.SSHHostKey,
		Pin: func(key string) error {
			if err := r.store.PinHostKey(ctx, run.Project.ID, key); err != nil {
				return err
			}
			fp, _ := git.Fingerprint(key) // git made key
			r.log.Info("pinned the SSH host key of a git server", "project", run.Project.ID, "job", run.Job.ID, "fingerprint", fp)
			return nil
		}}
	scope := run.Build.CacheScope()
	fork, _ := run.Build.ScopeName(scope)
	s := spec{
		jobID: run.Job.ID, projectID: run.Project.ID, image: run.Hook.DockerImage,
		install: run.Hook.InstallScript, build: run.Hook.BuildScript, tracked: run.Hook.TrackedFiles,
		scope: scope, fork: fork, src: gitSource{path: dir, sha: run.Build.SHA}, env: jobEnv(run), log: out,
	}
	// The image check and the build container need no checkout: made
	// meanwhile, they are off the job's path.
	s.early = r.prepare(ctx, s)
	c := git.CloneSpec{Remote: remote, Ref: run.Build.Ref, SHA: run.Build.SHA}
	if err := git.Clone(ctx, c, dir, out); err != nil {
		r.discard(s.early)
		if cause := context.Cause(ctx); cause != nil {
			return result{status: store.JobError, message: cause.Error()}
		}
		msg := fmt.Sprintf("The commit could not be checked out: %v", err)
		fmt.Fprintf(out, "\x1b[1;31m==> %s\x1b[0m\r\n", msg)
		return result{status: store.JobError, message: msg}
	}
	r.recordCommit(ctx, run, dir)
	return r.execute(ctx, s, out)
}

// recordCommit reads the author and subject of a build's commit from the
// checkout in dir when the build does not know them yet: ls-remote told
// Run build nothing of a commit of a repository on another machine. Failing
// costs the build only its description, so it is logged and the job goes on.
func (r *Runner) recordCommit(ctx context.Context, run store.JobRun, dir string) {
	if run.Build.Author != "" || run.Build.Message != "" || run.Build.Trigger.Kind != store.TriggerManual {
		return
	}
	c, err := git.CommitOf(ctx, dir, run.Build.SHA)
	if err == nil {
		err = r.store.SetBuildCommit(ctx, run.Build.ID, c.Author, c.Subject)
	}
	if err != nil {
		r.log.Warn("could not record the author and subject of a build's commit", "job", run.Job.ID, "build", run.Build.ID, "err", err)
	}
}

// jobEnv is the build step's environment: what Kozmic tells every build,
// and the project's secrets unless the build comes from a fork.
func jobEnv(run store.JobRun) []string {
	env := []string{
		"CI=true",
		"KOZMIC=true",
		"KOZMIC_PROJECT=" + run.Project.FullName,
		"KOZMIC_BUILD_NUMBER=" + strconv.Itoa(run.Build.Number),
		"KOZMIC_BUILD_ID=" + strconv.FormatInt(run.Build.ID, 10),
		"KOZMIC_JOB_ID=" + strconv.FormatInt(run.Job.ID, 10),
		"KOZMIC_COMMIT_SHA=" + run.Build.SHA,
		"KOZMIC_REF=" + run.Build.Ref,
		"KOZMIC_BRANCH=" + run.Build.Branch(),
	}
	if n, ok := strings.CutPrefix(run.Build.Ref, "refs/pull/"); ok {
		env = append(env, "KOZMIC_PULL_REQUEST="+strings.TrimSuffix(n, "/head"))
	}
	for _, s := range run.Secrets {
		env = append(env, s.Name+"="+s.Value)
	}
	return env
}

// finish records a job's result, tells the notifier and ends live
// followers. A result the database refuses (on a full disk, say) is tried
// again until it lands, or until the server stops: then the job stays
// running in the store, and the next start's recovery settles it.
func (r *Runner) finish(jobID int64, res result) {
	ctx := context.WithoutCancel(r.jobsCtx)
	var ch store.JobChanged
	err := retryWrite(r.jobsCtx, r.log, "record job result", jobID, func() (err error) {
		ch, err = r.store.UpdateJob(ctx, jobID, store.JobUpdate{Status: res.status, ExitCode: res.exitCode,
			Error: res.message, ContainerID: res.containerID, CacheID: res.cacheID, Cache: res.cache, CacheScope: res.scope})
		return err
	})
	r.logs.end(jobID) // after the store has the result: followers read it when they stop
	if err != nil {
		if r.jobsCtx.Err() != nil {
			r.log.Warn("the server stopped before the job's result was recorded: the next start settles the job",
				"job", jobID, "status", res.status, "err", err)
			return
		}
		r.log.Error("record job result", "job", jobID, "status", res.status, "err", err)
		return
	}
	r.log.Info("job finished", "job", jobID, "status", res.status, "build", ch.Build.ID, "build_status", ch.Build.Status)
	r.jobFinished(ch.Job)
	r.changed(ctx, ch)
}

// Cancel stops a job: an enqueued one never runs, a running one is killed.
// Either way it ends as an error "canceled by <by>". A finished job is
// store.ErrConflict.
func (r *Runner) Cancel(ctx context.Context, jobID int64, by string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cancel := r.active[jobID]; cancel != nil {
		cancel(canceled{by})
		return nil
	}
	// Not active: enqueued, finished, or left running by an earlier
	// process; claim holds r.mu, so no worker takes it meanwhile.
	ch, err := r.store.UpdateJob(ctx, jobID, store.JobUpdate{Status: store.JobError, Error: canceled{by}.Error()})
	if err != nil {
		return err
	}
	r.logs.end(jobID)
	r.changed(ctx, ch)
	return nil
}

// Restart enqueues a new attempt of a finished job; earlier attempts and
// their logs are kept, and by is recorded as who re-ran the build's jobs.
func (r *Runner) Restart(ctx context.Context, jobID int64, by store.User) (store.Job, error) {
	ch, err := r.store.RestartJob(ctx, jobID, by)
	if err != nil {
		return store.Job{}, err
	}
	r.changed(ctx, ch)
	r.Enqueued()
	return ch.Job, nil
}

// RerunFailed enqueues a new attempt of every failed or errored job of a
// build, recording by as who re-ran them.
func (r *Runner) RerunFailed(ctx context.Context, buildID int64, by store.User) ([]store.Job, error) {
	changes, err := r.store.RerunFailedJobs(ctx, buildID, by)
	if err != nil {
		return nil, err
	}
	jobs := make([]store.Job, len(changes))
	for i, ch := range changes {
		jobs[i] = ch.Job
		r.changed(ctx, ch)
	}
	r.Enqueued()
	return jobs, nil
}

// Shutdown stops taking jobs and waits for the running ones until ctx ends;
// then it kills those still running and leaves them to the next start's
// recovery, which re-runs them.
func (r *Runner) Shutdown(ctx context.Context) {
	r.stopClaiming()
	done := make(chan struct{})
	go func() {
		r.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.stopJobs(errShutdown)
		<-done
	}
	r.stopPulls() // a refresh for later jobs has no later jobs to serve
	r.cleanup.Wait()
}

// ExecSpec is a hook definition run by `kozmic exec` on a local tree.
type ExecSpec struct {
	Dir           string
	Image         string
	InstallScript string
	BuildScript   string
	TrackedFiles  []string
	// Project, Ref and SHA are what the working tree has checked out; the
	// build step gets the job variables of a job of that commit, with
	// build and job numbers 0. Without SHA it gets CI and KOZMIC only.
	Project string
	Ref     string
	SHA     string
	// KeepCache keeps the install cache image this run made, for the next
	// run to start from; without it the image is removed at the end.
	KeepCache bool
}

// Exec runs a hook definition on a working tree (uncommitted changes
// included) through the same steps as a job, writing the log to w. Its
// install cache is the project scope of project 0; an image it made there
// is removed at the end unless s.KeepCache, also when ctx ended, while one
// it found is left alone. The returned exit code is the build script's, or
// 1 when it never ran.
func (r *Runner) Exec(ctx context.Context, s ExecSpec, w io.Writer) (store.JobStatus, int) {
	env := []string{"CI=true", "KOZMIC=true"}
	if s.SHA != "" {
		env = jobEnv(store.JobRun{Project: store.Project{FullName: s.Project}, Build: store.Build{Ref: s.Ref, SHA: s.SHA}})
	}
	res := r.execute(ctx, spec{image: s.Image, install: s.InstallScript, build: s.BuildScript,
		tracked: s.TrackedFiles, scope: store.CacheScopeProject, src: dirSource{path: s.Dir}, env: env}, w)
	r.cleanup.Wait()
	if res.cache == store.CacheMiss && !s.KeepCache {
		// A failed install step committed nothing: then there is no image.
		img := r.cacheImage(res.cacheID, 0, res.scope)
		err := r.docker.RemoveImageExtended(img, docker.RemoveImageOptions{Context: context.WithoutCancel(ctx)})
		switch {
		case err == nil:
			say(w, "Removed the install cache image %.12s (-keep-cache keeps it for the next run)", res.cacheID)
		case !errors.Is(err, docker.ErrNoSuchImage):
			say(w, "Could not remove the install cache image %s: %v", img, err)
		}
	}
	if res.exitCode != nil {
		return res.status, *res.exitCode
	}
	return res.status, 1
}

// Follow calls fn with a job's stored log from byte offset from on and then
// with its new output as it is stored, until the job has ended and all of
// its log was passed; see Broker.Follow.
func (r *Runner) Follow(ctx context.Context, jobID, from int64, fn func(Chunk) error) error {
	return r.logs.Follow(ctx, r.store, jobID, from, fn)
}
