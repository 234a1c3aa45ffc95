package runner

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

const testPingInterval = 100 * time.Millisecond

// A runner whose Docker engine refuses connections says so, and leaves
// jobs enqueued instead of failing them. No Docker engine is needed.
func TestUnreachableDockerLeavesJobsEnqueued(t *testing.T) {
	h := openHarness(t)
	dc, err := NewDockerClient("tcp://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	h.jobsDC = dc
	if got := New(Config{}, h.db, dc, nil, slog.New(slog.DiscardHandler)).Unreachable(); got != "" {
		t.Errorf("never started: Unreachable() = %q, want \"\"", got)
	}

	h.start(Config{PingInterval: testPingInterval})
	want := "Docker is not reachable at tcp://127.0.0.1:1 — jobs will wait"
	if got := h.r.Unreachable(); got != want {
		t.Errorf("Unreachable() = %q, want %q", got, want)
	}
	if got := h.r.Waiting(); got != "waiting for Docker: not reachable at tcp://127.0.0.1:1" {
		t.Errorf("Waiting() = %q", got)
	}
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "t", BuildScript: "#!/bin/sh\ntrue\n"})
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	time.Sleep(10 * testPingInterval) // pings, and the wake-up of h.build, come and go
	if j, err := h.db.JobByID(context.Background(), jobs[0].ID); err != nil || j.Status != store.JobEnqueued {
		t.Errorf("job = %s %q, %v; want still enqueued", j.Status, j.Error, err)
	}
	if got := h.r.Unreachable(); got != want {
		t.Errorf("later, Unreachable() = %q", got)
	}
	log := h.logs.String()
	if n := strings.Count(log, "level=WARN msg=\"the Docker engine is not reachable"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, log)
	}
	if !strings.Contains(log, "endpoint=tcp://127.0.0.1:1") {
		t.Errorf("the warning does not name the endpoint:\n%s", log)
	}
}

func TestReachableDocker(t *testing.T) {
	h := newHarness(t, Config{PingInterval: testPingInterval})
	time.Sleep(3 * testPingInterval)
	if got := h.r.Unreachable(); got != "" {
		t.Errorf("Unreachable() = %q with a running engine", got)
	}
	if got := h.r.Waiting(); got != "" {
		t.Errorf("Waiting() = %q with idle workers", got)
	}
}

// The engine, reached through a proxy, is away at the start, comes, goes
// and comes back: an enqueued job waits, then runs as soon as it answers.
func TestDockerComesAndGoes(t *testing.T) {
	needDocker(t)
	px := newSwitchProxy(t, testimage.Host()) // before the harness: it must outlive the runner's shutdown
	h := openHarness(t)
	var err error
	if h.dc, err = NewDockerClient(testimage.Host()); err != nil {
		t.Fatal(err)
	}
	if h.jobsDC, err = NewDockerClient("tcp://" + px.addr()); err != nil {
		t.Fatal(err)
	}
	h.start(Config{PingInterval: testPingInterval})
	want := "Docker is not reachable at tcp://" + px.addr() + " — jobs will wait"
	if got := h.r.Unreachable(); got != want {
		t.Fatalf("Unreachable() = %q, want %q", got, want)
	}

	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "t", BuildScript: "#!/bin/sh\necho ran\n"})
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	time.Sleep(5 * testPingInterval)
	if j, _ := h.db.JobByID(context.Background(), jobs[0].ID); j.Status != store.JobEnqueued {
		t.Fatalf("job = %s %q while Docker is away; want enqueued", j.Status, j.Error)
	}

	px.forward(true)
	if j := h.waitJob(jobs[0].ID, finished); j.Status != store.JobSuccess {
		t.Fatalf("job = %s %q once Docker answers; log:\n%s", j.Status, j.Error, h.logOf(j.ID))
	}
	if got := h.r.Unreachable(); got != "" {
		t.Errorf("Unreachable() = %q after a job ran", got)
	}
	// The container is removed in the background, through the proxy.
	waitFor(t, "the job's container to be removed", func() bool { return leftovers(t, h) == 0 })

	px.forward(false)
	waitFor(t, "the runner to notice that Docker went away", func() bool { return h.r.Unreachable() == want })
	px.forward(true)
	waitFor(t, "the runner to notice that Docker is back", func() bool { return h.r.Unreachable() == "" })

	log := h.logs.String()
	if n := strings.Count(log, "level=WARN msg=\"the Docker engine is not reachable"); n != 2 {
		t.Errorf("warned %d times, want 2 (at the start, and when it went away):\n%s", n, log)
	}
	if n := strings.Count(log, "level=INFO msg=\"the Docker engine is reachable again"); n != 2 {
		t.Errorf("told %d times that Docker is back, want 2:\n%s", n, log)
	}
}

// leftovers counts the containers of the harness's instance.
func leftovers(t testing.TB, h *harness) int {
	t.Helper()
	cs, err := h.dc.ListContainers(docker.ListContainersOptions{All: true,
		Filters: map[string][]string{"label": {LabelJob, LabelInstance + "=" + h.db.InstanceID()}}})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

// waitFor polls ok until it holds, for at most 30 s.
func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// switchProxy listens on 127.0.0.1 and either forwards connections to a
// Docker engine or closes them at once, as an engine that is down would.
// Turning forwarding off also cuts the connections it carries, so kept-alive
// ones do not hide the change.
type switchProxy struct {
	t       testing.TB
	ln      net.Listener
	network string // of the engine
	target  string

	mu    sync.Mutex
	on    bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
	// silent holds every byte, and every new connection, without closing
	// anything, as a network that drops packets does; audible is
	// broadcast when that ends.
	silent  bool
	audible *sync.Cond
}

// newSwitchProxy is a proxy to the engine at host (unix:// or tcp://),
// forwarding nothing yet. It is closed when the test ends.
func newSwitchProxy(t testing.TB, host string) *switchProxy {
	t.Helper()
	network, target, _ := strings.Cut(host, "://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{t: t, ln: ln, network: network, target: target, conns: map[net.Conn]bool{}}
	p.audible = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.silence(false)
		p.forward(false)
		p.wg.Wait()
	})
	return p
}

func (p *switchProxy) addr() string { return p.ln.Addr().String() }

// forward turns forwarding on or off.
func (p *switchProxy) forward(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.on = on
	if !on {
		for c := range p.conns {
			c.Close()
		}
	}
}

// silence makes the proxy hold every byte while on, and pass them on again
// when turned off.
func (p *switchProxy) silence(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent = on
	if !on {
		p.audible.Broadcast()
	}
}

// hold waits while the proxy is silent.
func (p *switchProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.silent {
		p.audible.Wait()
	}
}

func (p *switchProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			p.t.Errorf("proxy accept: %v", err)
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// serve copies both ways between a client and the engine until both sides
// are done, passing on each half-close.
func (p *switchProxy) serve(c net.Conn) {
	defer c.Close()
	p.hold()
	p.mu.Lock()
	on := p.on
	p.mu.Unlock()
	if !on {
		return
	}
	up, err := net.Dial(p.network, p.target)
	if err != nil {
		p.t.Errorf("proxy dial: %v", err)
		return
	}
	defer up.Close()
	p.mu.Lock()
	if !p.on { // turned off meanwhile
		p.mu.Unlock()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		delete(p.conns, up)
		p.mu.Unlock()
	}()
	var both sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			p.hold()
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		if hc, ok := dst.(interface{ CloseWrite() error }); ok {
			hc.CloseWrite()
		}
	}
	both.Go(func() { pipe(up, c) })
	pipe(c, up)
	both.Wait()
}
