package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	docker "github.com/fsouza/go-dockerclient"
)

// EngineConfig is one Docker engine the runner runs jobs on.
type EngineConfig struct {
	Name   string // names it in logs, pages and metrics; unique
	Client *docker.Client
	Slots  int // jobs at once on it; at least 1
}

// engine is one place where jobs' containers run. The runner around it
// claims jobs from the queue, checks out their commits, keeps their logs,
// enforces their stall and job timeouts and records their results; its
// pool places each job on an engine with a free slot and watches the
// engines' health. dockerEngine, a Docker engine reached over its API, is
// the one implementation; docs/scale-out.md shows how a Kubernetes cluster
// would be another.
type engine interface {
	name() string
	endpoint() string
	// ping says whether the engine answers, within ctx.
	ping(ctx context.Context) error
	// recover removes the containers this instance's jobs left on the
	// engine, but those of the jobs keep says are running.
	recover(ctx context.Context, keep func(jobID int64) bool) error
	// holds says whether the engine has the install cache image the job
	// of s would start from, its tracked files having the object ids ids,
	// so that placing it there skips its install script. A job without an
	// install script is held nowhere.
	holds(ctx context.Context, s spec, ids map[string]string) bool
	// prepare starts making, in the background, what the job of s needs
	// before its checkout is done, and returns it for run (in s.early) or
	// to be discarded; nil when there is nothing to make early.
	prepare(ctx context.Context, s spec) prepared
	// run runs the job's steps on the engine, its image, install script
	// (or its cache image) and build script, writing their output to out.
	// When ctx ends, it kills what runs and returns at once.
	run(ctx context.Context, s spec, out io.Writer) result
	sweep(ctx context.Context) (Swept, error)
	clearCache(ctx context.Context, projectID int64) (int, error)
	info(ctx context.Context, e *EngineInfo) error
}

// member is an engine of the pool with its slots and health.
type member struct {
	engine
	slots int
	// busy is how many jobs are placed on it; guarded by pool.mu.
	busy int
	// ready: it answered its last ping and what an earlier process or a
	// lost connection left on it was removed since; guarded by pool.mu.
	ready bool
	// down: it did not answer the last ping. A member that was never
	// pinged is neither ready nor down.
	down atomic.Bool
	// jobs are the running jobs placed on it, to cancel when it is lost;
	// guarded by pool.mu.
	jobs map[int64]context.CancelCauseFunc
	// Counted for the metrics.
	started, failed atomic.Int64
}

// pool is the runner's engines and the job slots they have. A worker takes
// a seat (admit) before it claims a job, which holds a slot on some ready
// engine; once the job's cache id is known, place picks the engine.
type pool struct {
	mu      sync.Mutex
	members []*member
	// seated counts seats taken but not yet placed on an engine. Admission
	// keeps it within the ready engines' free slots, so that place always
	// finds one unless an engine was lost meanwhile.
	seated int
	// changed is closed, and replaced, whenever a slot frees or an engine
	// turns ready: place waits on it.
	changed chan struct{}
}

func newPool(ms []*member) *pool {
	return &pool{members: ms, changed: make(chan struct{})}
}

// load is the slots of the engines that answered their last ping (or
// were never pinged), and how many of them jobs hold: those placed on
// them, and the seats not yet placed. up is false when every engine
// failed its last ping.
func (p *pool) load() (busy, slots int, up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.members {
		if !m.down.Load() {
			busy, slots, up = busy+m.busy, slots+m.slots, true
		}
	}
	return min(busy+p.seated, slots), slots, up
}

// capacity is the number of slots of all engines, ready or not.
func (p *pool) capacity() int {
	n := 0
	for _, m := range p.members {
		n += m.slots
	}
	return n
}

// broadcast wakes the places waiting; p.mu is held.
func (p *pool) broadcast() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// seat is a job's hold on a slot: taken before its claim, placed on an
// engine before its containers run, released when it ends.
type seat struct {
	p *pool
	m *member // nil until placed
}

// admit takes a seat when a ready engine has a slot that no other seat
// holds; nil when none has.
func (p *pool) admit() *seat {
	p.mu.Lock()
	defer p.mu.Unlock()
	free := 0
	for _, m := range p.members {
		if m.ready {
			free += m.slots - m.busy
		}
	}
	if free <= p.seated {
		return nil
	}
	p.seated++
	return &seat{p: p}
}

// place puts the seat's job on a ready engine with a free slot: the first
// of prefer (in order) that has one, else the one with the most free
// slots. It registers cancel as the job's, to be called with an
// engineLost cause if the engine is lost while the job runs. While no
// ready engine has a free slot (one was lost since the seat was taken), it
// waits; it fails when ctx ends first.
func (s *seat) place(ctx context.Context, jobID int64, prefer []*member, cancel context.CancelCauseFunc) (*member, error) {
	p := s.p
	for {
		p.mu.Lock()
		m := p.pick(prefer)
		if m != nil {
			p.seated--
			m.busy++
			m.jobs[jobID] = cancel
			s.m = m
			p.mu.Unlock()
			m.started.Add(1)
			return m, nil
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// pick is the engine place chooses, or nil; p.mu is held.
func (p *pool) pick(prefer []*member) *member {
	free := func(m *member) bool { return m.ready && m.busy < m.slots }
	for _, m := range prefer {
		if free(m) {
			return m
		}
	}
	var best *member
	for _, m := range p.members {
		// The most free slots, then the fewest jobs: spread the load.
		if free(m) && (best == nil || m.slots-m.busy > best.slots-best.busy ||
			m.slots-m.busy == best.slots-best.busy && m.busy < best.busy) {
			best = m
		}
	}
	return best
}

// release gives the seat's slot back, and unregisters jobID from its engine.
func (s *seat) release(jobID int64) {
	p := s.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.m == nil {
		p.seated--
	} else {
		s.m.busy--
		delete(s.m.jobs, jobID)
	}
	p.broadcast()
}

// setReady records whether a member is ready, and when it is not, cancels
// the jobs running on it with cause: their containers are out of reach.
func (p *pool) setReady(m *member, ready bool, cause error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m.ready == ready {
		return
	}
	m.ready = ready
	if ready {
		p.broadcast()
		return
	}
	for _, cancel := range m.jobs {
		cancel(cause)
	}
}

// runs says whether a job is placed on member m.
func (p *pool) runs(m *member, jobID int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := m.jobs[jobID]
	return ok
}

// engineLost is the cancellation cause of the jobs of an engine that
// stopped answering: they run again elsewhere.
type engineLost struct{ name, endpoint string }

func (e engineLost) Error() string {
	return fmt.Sprintf("the Docker engine %s (%s) stopped answering", e.name, e.endpoint)
}

// lostEngine returns the engineLost cause of err, if it is one.
func lostEngine(err error) (engineLost, bool) {
	var l engineLost
	return l, errors.As(err, &l)
}

// EngineState is what the runner last found of one of its engines; cheap
// to ask for.
type EngineState struct {
	Name     string
	Endpoint string
	Slots    int  // jobs at once
	Busy     int  // jobs placed on it now
	Ready    bool // it answers, and takes jobs
	Down     bool // it did not answer the last ping
	// Started and Failed count the jobs placed on it since the server
	// started, and those of them that did not succeed.
	Started, Failed int64
}

// Engines reports each engine's slots, load and health, in the configured
// order.
func (r *Runner) Engines() []EngineState {
	p := r.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]EngineState, len(p.members))
	for i, m := range p.members {
		out[i] = EngineState{Name: m.name(), Endpoint: m.endpoint(), Slots: m.slots, Busy: m.busy, Ready: m.ready,
			Down: m.down.Load(), Started: m.started.Load(), Failed: m.failed.Load()}
	}
	return out
}
