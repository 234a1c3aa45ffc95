// Package runner runs jobs in Docker: a bounded pool of workers takes
// enqueued jobs from the store (the jobs table is the queue), checks out the
// commit, places the job on one of its Docker engines (pool.go: a free slot,
// the engine holding the job's install cache first), runs the hook's install
// script (or reuses its cached image) and build script there, streams the
// output into the store and to live followers, and records the result. An
// engine that stops answering gets no jobs, and its running jobs run again
// elsewhere.
package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
	InterruptJob(ctx context.Context, jobID int64, message string) ([]store.JobChanged, error)
	PlaceJob(ctx context.Context, jobID int64, engine string) error
	SetBuildCommit(ctx context.Context, buildID int64, author, subject string) error
}

// Notifier hears of every change to a job and its build: GitHub statuses and
// e-mail plug in here. It must not block for long. A nil Notifier is allowed.
type Notifier interface {
	JobChanged(ctx context.Context, ch store.JobChanged)
}

// Config tunes the runner; zero values take the defaults noted.
type Config struct {
	Workers           int           // jobs at once on the one engine of New's client; default 2
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
	// Engines are the Docker engines jobs run on, each with its slots;
	// without them, New's client is the one engine, named "local", with
	// Workers slots. With them, Workers becomes the sum of their slots.
	Engines []EngineConfig
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
	notify Notifier
	log    *slog.Logger
	logs   *Broker
	// pool is the engines jobs run on: Config.Engines, or New's client.
	pool *pool

	wake chan struct{} // a job was enqueued, a slot freed, or an engine answers again
	busy atomic.Int32
	// slots holds, for each worker, the id of the job it runs (0: none):
	// atomics, so that Slots never waits for a claim's database write.
	slots []atomic.Int64

	// mu guards active, and makes a claim and the job's registration one
	// step as Cancel sees it (see claim).
	mu     sync.Mutex
	active map[int64]context.CancelCauseFunc // running jobs

	// recMu guards recording: jobs that ended and whose log and result are
	// being stored (see Recording). Apart from mu, which a claim holds
	// through a database write, so that pages asking never wait for one.
	recMu     sync.Mutex
	recording map[int64]bool

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

// New returns a runner; Start sets it going. Its jobs run on
// Config.Engines, or without them on the one engine dc (which may be nil
// for a runner that is never started).
func New(cfg Config, st Store, dc *docker.Client, n Notifier, log *slog.Logger) *Runner {
	cfg.defaults()
	pullCtx, stopPulls := context.WithCancel(context.Background())
	r := &Runner{store: st, notify: n, log: log, logs: NewBroker(),
		wake: make(chan struct{}, 1), active: map[int64]context.CancelCauseFunc{}, recording: map[int64]bool{},
		pullCtx: pullCtx, stopPulls: stopPulls}
	engines := cfg.Engines
	if len(engines) == 0 {
		engines = []EngineConfig{{Name: "local", Client: dc, Slots: cfg.Workers}}
	}
	ms := make([]*member, len(engines))
	for i, e := range engines {
		ms[i] = &member{engine: newDockerEngine(r, e.Name, e.Client), slots: max(e.Slots, 1), jobs: map[int64]context.CancelCauseFunc{}}
	}
	r.pool = newPool(ms)
	cfg.Workers = r.pool.capacity()
	r.cfg, r.slots = cfg, make([]atomic.Int64, cfg.Workers)
	return r
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

// pingTimeout is how long a Docker engine has to answer a ping.
const pingTimeout = 3 * time.Second

// Start pings every engine and removes the containers an earlier process
// left on those that answer, records its interrupted jobs (re-enqueuing
// each once) and starts the workers; from then on it pings each engine
// every Config.PingInterval until Shutdown (see Unreachable). An engine
// takes jobs once it answered and its leftovers are gone; one that stops
// answering takes none, and its running jobs run again elsewhere. If no
// engine answers the first ping within a few seconds, Start returns and
// jobs wait in the queue until one does.
func (r *Runner) Start(ctx context.Context) {
	base := context.WithoutCancel(ctx)
	claimCtx, stopClaiming := context.WithCancel(base)
	r.jobsCtx, r.stopJobs = context.WithCancelCause(base)
	r.stopClaiming = stopClaiming
	var wg sync.WaitGroup
	for _, m := range r.pool.members {
		wg.Go(func() { r.check(claimCtx, m) })
	}
	wg.Wait()
	if !r.startUp(claimCtx, slog.LevelWarn) {
		r.workers.Go(func() { // the database failed: try again
			tick := time.NewTicker(r.cfg.PingInterval)
			defer tick.Stop()
			for !r.startUp(claimCtx, slog.LevelDebug) { // the first failure is worth a warning, the retries are not
				select {
				case <-claimCtx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	for _, m := range r.pool.members {
		r.workers.Go(func() { r.watch(claimCtx, m) })
	}
}

// startUp settles the jobs an earlier process left running and starts the
// workers; it says whether it could, and logs why not at level.
func (r *Runner) startUp(ctx context.Context, level slog.Level) bool {
	changes, err := r.store.RecoverInterruptedJobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Log(ctx, level, "the runner cannot start yet: jobs wait", "err", fmt.Errorf("recover interrupted jobs: %w", err))
		}
		return false
	}
	for _, ch := range changes {
		if ch.Job.Status == store.JobError {
			r.log.Warn("job was interrupted by a stop of the server", "job", ch.Job.ID)
			r.logs.end(ch.Job.ID)
		}
		r.changed(ctx, ch)
	}
	r.startWorkers(ctx)
	return true
}

// watch checks engine m every Config.PingInterval until ctx ends.
func (r *Runner) watch(ctx context.Context, m *member) {
	tick := time.NewTicker(r.cfg.PingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.check(ctx, m)
	}
}

// check pings engine m and records what it found for Unreachable and the
// pool, logging each change. An engine that stopped answering takes no
// jobs, and the jobs running on it are canceled to run again elsewhere
// (see interrupt). One that answers again first has this instance's
// containers of jobs not running on it removed, as at the start; then it
// takes jobs, and the workers are woken.
func (r *Runner) check(ctx context.Context, m *member) {
	err := m.ping(ctx)
	if ctx.Err() != nil {
		return // stopping: that says nothing of the engine
	}
	if err != nil {
		r.lose(m, err)
		return
	}
	if m.down.Swap(false) {
		r.log.Info("the Docker engine is reachable again: waiting jobs start", "engine", m.name(), "endpoint", m.endpoint())
	}
	r.pool.mu.Lock()
	ready := m.ready
	r.pool.mu.Unlock()
	if ready {
		return
	}
	if err := m.recover(ctx, func(jobID int64) bool { return r.pool.runs(m, jobID) }); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("the Docker engine answers, but its leftovers cannot be listed: it takes no jobs yet",
				"engine", m.name(), "endpoint", m.endpoint(), "err", err)
		}
		return
	}
	r.pool.setReady(m, true, nil)
	r.Enqueued()
}

// lose records that engine m did not answer (err says how): it takes no
// more jobs, and its running jobs are canceled with an engineLost cause.
func (r *Runner) lose(m *member, err error) {
	if !m.down.Swap(true) {
		r.log.Warn("the Docker engine is not reachable: it takes no jobs until it answers",
			"engine", m.name(), "endpoint", m.endpoint(), "err", err)
	}
	r.pool.setReady(m, false, engineLost{name: m.name(), endpoint: m.endpoint()})
}

func (r *Runner) startWorkers(ctx context.Context) {
	for slot := range r.cfg.Workers {
		r.workers.Go(func() { r.work(ctx, slot) })
	}
	r.workers.Go(func() { r.sweepEvery(ctx, r.cfg.SweepInterval) })
	r.Enqueued()
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
// jobs will wait" while the one Docker engine does not answer, and "" while
// it does. With several engines it names those that do not answer, by name
// alone (the admin page has their addresses), and says whether jobs wait
// (none answers) or run on the others. It reads what the last pings found,
// so it is cheap; a runner that was never started has not pinged and
// returns "".
func (r *Runner) Unreachable() string {
	var down []string
	for _, m := range r.pool.members {
		if m.down.Load() {
			down = append(down, m.name())
		}
	}
	switch {
	case len(down) == 0:
		return ""
	case len(r.pool.members) == 1:
		return fmt.Sprintf("Docker is not reachable at %s — jobs will wait", r.pool.members[0].endpoint())
	case len(down) == len(r.pool.members):
		return fmt.Sprintf("No Docker engine is reachable (%s) — jobs will wait", strings.Join(down, ", "))
	}
	return fmt.Sprintf("Docker engines not reachable: %s — jobs run on the others", strings.Join(down, ", "))
}

// Waiting describes why an enqueued job has not started, such as "waiting
// for a free worker: 2 of 2 busy" or "waiting for Docker: not reachable at
// unix:///var/run/docker.sock"; empty when a worker is free.
func (r *Runner) Waiting() string {
	busy, slots, up := r.pool.load()
	if !up {
		if len(r.pool.members) == 1 {
			return "waiting for Docker: not reachable at " + r.pool.members[0].endpoint()
		}
		return "waiting for Docker: no engine is reachable"
	}
	if busy < slots {
		return ""
	}
	return fmt.Sprintf("waiting for a free worker: %d of %d busy", busy, slots)
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
		// A job is claimed only with a slot to run on: without one, such as
		// while no engine answers, it waits enqueued. A freed slot, and an
		// engine that answers again, wake a worker.
		seat := r.pool.admit()
		if seat == nil {
			select {
			case <-r.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		ch, jobCtx, ok, err := r.claim(ctx, slot)
		if err != nil || !ok {
			seat.release(0)
		}
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
		r.runJob(jobCtx, ch.Job, seat)
		r.slots[slot].Store(0)
		r.busy.Add(-1)
		seat.release(ch.Job.ID)
		r.Enqueued() // its slot is free
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
// unregisters the job; ctx is the one claim registered. A job whose engine
// was lost while it ran is interrupted instead: it runs again elsewhere.
func (r *Runner) runJob(ctx context.Context, job store.Job, seat *seat) {
	defer func() {
		r.mu.Lock()
		r.active[job.ID](nil) // release the job's context
		delete(r.active, job.ID)
		r.mu.Unlock()
		r.setRecording(job.ID, false)
	}()
	res := r.runLoaded(ctx, job.ID, seat)
	if errors.Is(context.Cause(ctx), errShutdown) {
		r.logs.end(job.ID)
		return // left running in the store: the next start recovers it
	}
	if seat.m != nil && res.status != store.JobSuccess {
		seat.m.failed.Add(1)
	}
	r.setRecording(job.ID, true) // also for a job that ended before it had a log
	if lost, ok := lostEngine(context.Cause(ctx)); ok {
		r.interrupt(job.ID, lost)
		return
	}
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
func (r *Runner) runLoaded(ctx context.Context, jobID int64, seat *seat) result {
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
	res := r.runCheckedOut(ctx, run, out, seat)
	// The job has ended; storing the rest of its log may take long on a
	// database that refuses writes, and its page says so meanwhile.
	r.setRecording(jobID, true)
	out.endStep(res.status)
	out.Close()
	return res
}

// runCheckedOut clones the commit into a temporary directory, places the
// job on an engine (on the seat's) and executes the job there, marking in
// out where each step begins.
func (r *Runner) runCheckedOut(ctx context.Context, run store.JobRun, out *jobLog, seat *seat) result {
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
	// A job with an install script is placed once its checkout tells its
	// cache id, to go where its cache image is. One without is placed
	// now: its image check and build container need no checkout, and,
	// made meanwhile, they are off the job's path.
	var m *member
	install := strings.TrimSpace(s.install) != ""
	if !install {
		if m, err = r.place(ctx, seat, s, out); err != nil {
			return result{status: store.JobError, message: err.Error()}
		}
		s.early = m.prepare(ctx, s)
	}
	c := git.CloneSpec{Remote: remote, Ref: run.Build.Ref, SHA: run.Build.SHA}
	if err := git.Clone(ctx, c, dir, out); err != nil {
		if s.early != nil {
			s.early.discard()
		}
		if cause := context.Cause(ctx); cause != nil {
			return result{status: store.JobError, message: cause.Error()}
		}
		msg := fmt.Sprintf("The commit could not be checked out: %v", err)
		fmt.Fprintf(out, "\x1b[1;31m==> %s\x1b[0m\r\n", msg)
		return result{status: store.JobError, message: msg}
	}
	r.recordCommit(ctx, run, dir)
	if install {
		if m, err = r.place(ctx, seat, s, out); err != nil {
			return result{status: store.JobError, message: err.Error()}
		}
	}
	res := r.execute(ctx, m, s, out)
	if res.status == store.JobError && ctx.Err() == nil {
		// A Docker call failed: if the engine went with it, the job runs
		// again elsewhere (lose cancels ctx with its cause).
		if err := m.ping(ctx); err != nil && ctx.Err() == nil {
			r.lose(m, err)
		}
	}
	return res
}

// place puts the job of s, holding seat, on an engine: one that holds its
// install cache image if one with a free slot does, else the least loaded
// (see seat.place); only with several engines are they asked. With the
// engines of Config.Engines, it records the engine and says it in out;
// with New's one engine, which has no name of the operator's, there is
// nothing to tell. It fails only when ctx ends first.
func (r *Runner) place(ctx context.Context, seat *seat, s spec, out io.Writer) (*member, error) {
	var prefer []*member
	if len(r.pool.members) > 1 && strings.TrimSpace(s.install) != "" {
		// An error leaves the job without a preference: its install step
		// reports it.
		if ids, err := s.src.objectIDs(s.tracked); err == nil {
			for _, m := range r.pool.members {
				if !m.down.Load() && m.holds(ctx, s, ids) {
					prefer = append(prefer, m)
				}
			}
		}
	}
	r.mu.Lock()
	cancel := r.active[s.jobID]
	r.mu.Unlock()
	m, err := seat.place(ctx, s.jobID, prefer, cancel)
	if err != nil || len(r.cfg.Engines) == 0 {
		return m, err
	}
	if err := r.store.PlaceJob(ctx, s.jobID, m.name()); err != nil {
		r.log.Warn("record the job's engine", "job", s.jobID, "engine", m.name(), "err", err)
	}
	if slices.Contains(prefer, m) {
		say(out, "Running on the Docker engine %s, which holds this job's install cache", m.name())
	} else {
		say(out, "Running on the Docker engine %s", m.name())
	}
	return m, nil
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

// interrupt records that a job's engine was lost while it ran: the job
// ends as an interrupted error and, as after a crash of the server, runs
// again as a new attempt once (store.InterruptJob). Like finish, it tries
// a refused write again until it lands or the server stops.
func (r *Runner) interrupt(jobID int64, lost engineLost) {
	ctx := context.WithoutCancel(r.jobsCtx)
	msg := fmt.Sprintf("The Docker engine %s stopped answering while this job ran.", lost.name)
	var changes []store.JobChanged
	err := retryWrite(r.jobsCtx, r.log, "record an interrupted job", jobID, func() (err error) {
		changes, err = r.store.InterruptJob(ctx, jobID, msg)
		return err
	})
	r.logs.end(jobID)
	if err != nil {
		r.log.Error("record an interrupted job", "job", jobID, "engine", lost.name, "err", err)
		return
	}
	r.log.Warn("job interrupted: its Docker engine stopped answering", "job", jobID, "engine", lost.name,
		"again", len(changes) > 1)
	for _, ch := range changes {
		if ch.Job.ID == jobID {
			r.jobFinished(ch.Job)
		}
		r.changed(ctx, ch)
	}
	r.Enqueued()
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
	e := r.local()
	res := r.execute(ctx, r.pool.members[0], spec{image: s.Image, install: s.InstallScript, build: s.BuildScript,
		tracked: s.TrackedFiles, scope: store.CacheScopeProject, src: dirSource{path: s.Dir}, env: env}, w)
	r.cleanup.Wait()
	if res.cache == store.CacheMiss && !s.KeepCache {
		// A failed install step committed nothing: then there is no image.
		img := r.cacheImage(res.cacheID, 0, res.scope)
		err := e.docker.RemoveImageExtended(img, docker.RemoveImageOptions{Context: context.WithoutCancel(ctx)})
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

// local is the engine `kozmic exec` runs on: New's client.
func (r *Runner) local() *dockerEngine {
	return r.pool.members[0].engine.(*dockerEngine)
}

// Follow calls fn with a job's stored log from byte offset from on and then
// with its new output as it is stored, until the job has ended and all of
// its log was passed; see Broker.Follow.
func (r *Runner) Follow(ctx context.Context, jobID, from int64, fn func(Chunk) error) error {
	return r.logs.Follow(ctx, r.store, jobID, from, fn)
}
