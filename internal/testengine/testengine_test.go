package testengine

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"testing"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testimage"
)

// create makes a container of the test image running cmd, without a
// network, on dc, and starts it. Stopped, it is killed after a second, not
// Docker's ten.
func create(t *testing.T, dc *docker.Client, cmd ...string) *docker.Container {
	t.Helper()
	c, err := dc.CreateContainer(docker.CreateContainerOptions{
		Config:     &docker.Config{Image: testimage.Name, Cmd: cmd, StopTimeout: 1},
		HostConfig: &docker.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.StartContainer(c.ID, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// gone checks that nothing of e is left: no process mentioning its
// directory or namespace, nothing mounted below its directory, and no
// directory.
func gone(t *testing.T, e *Engine) {
	t.Helper()
	if ps, err := processesOf(e.root); err != nil || len(ps) > 0 {
		t.Errorf("processes of the stopped engine: %v (%v)", ps, err)
	}
	if ms, err := mountsUnder(e.root); err != nil || len(ms) > 0 {
		t.Errorf("mounts below the stopped engine's %s: %v (%v)", e.root, ms, err)
	}
	if _, err := os.Stat(e.root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stopped engine's %s: %v, want it removed", e.root, err)
	}
}

func TestSecondEngineRunsTheTestImageAndStopsWithoutLeftovers(t *testing.T) {
	Skip(t)
	main, err := docker.NewClient(testimage.Host())
	if err != nil {
		t.Fatal(err)
	}
	var e, other *Engine
	var daemon proc
	t.Run("two engines at once", func(t *testing.T) {
		e, other = Start(t), Start(t)
		if e.root == other.root || e.Host == other.Host {
			t.Fatalf("two engines share %s, %s", e.root, e.Host)
		}
		pid := e.cmd.Process.Pid
		if b, err := os.ReadFile(e.root + "/pid"); err != nil || string(bytes.TrimSpace(b)) != strconv.Itoa(pid) {
			t.Errorf("pid file: %q (%v), want %d", b, err, pid)
		}
		_, _, start, err := stat(pid)
		if err != nil {
			t.Fatal(err)
		}
		daemon = proc{pid, start}
		c := create(t, e.Client, "echo", "hi")
		if code, err := e.Client.WaitContainer(c.ID); err != nil || code != 0 {
			t.Fatalf("echo hi: exit %d, %v", code, err)
		}
		var out bytes.Buffer
		if err := e.Client.Logs(docker.LogsOptions{Container: c.ID, Stdout: true, Stderr: true, OutputStream: &out, ErrorStream: &out}); err != nil {
			t.Fatal(err)
		}
		if out.String() != "hi\n" {
			t.Errorf("output %q, want %q", out.String(), "hi\n")
		}
		for name, dc := range map[string]*docker.Client{"main": main, "other": other.Client} {
			var missing *docker.NoSuchContainer
			if _, err := dc.InspectContainer(c.ID); !errors.As(err, &missing) {
				t.Errorf("the %s engine sees the second engine's container %.12s: %v", name, c.ID, err)
			}
		}
		// Left to the stop: its daemon stops it, the cleanup removes it.
		create(t, e.Client, "sleep", "1000")
	})
	if e == nil {
		return
	}
	if daemon.running() {
		t.Errorf("dockerd %d still runs", daemon.pid)
	}
	gone(t, e)
	gone(t, other)
}

func TestKilledEngineLeavesNoProcessOfItBehind(t *testing.T) {
	Skip(t)
	var e *Engine
	var sockets []string
	t.Run("kill mid-job", func(t *testing.T) {
		e = Start(t)
		c := create(t, e.Client, "sleep", "1000")
		ci, err := e.Client.InspectContainer(c.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, _, start, err := stat(ci.State.Pid)
		if err != nil {
			t.Fatal(err)
		}
		sleep := proc{ci.State.Pid, start}
		ps, err := processesOf(e.root)
		if err != nil {
			t.Fatal(err)
		}
		// The container's process counts as the engine's: it descends
		// from its shim.
		if !slices.Contains(ps, sleep) {
			t.Fatalf("the container's sleep %v is not among the engine's processes %v", sleep, ps)
		}
		for _, p := range ps {
			if s := shimSocket(p.pid); s != "" {
				sockets = append(sockets, s)
			}
		}
		if len(sockets) != 1 {
			t.Fatalf("shim sockets of the engine's processes %v: %v, want one", ps, sockets)
		}
		if _, err := os.Stat(sockets[0]); err != nil {
			t.Fatalf("the shim's socket: %v", err)
		}
		if err := e.Kill(); err != nil {
			t.Fatal(err)
		}
		if sleep.running() {
			t.Errorf("the container's sleep %d still runs after Kill", sleep.pid)
		}
		if ps, err := processesOf(e.root); err != nil || len(ps) > 0 {
			t.Errorf("processes of the killed engine: %v (%v)", ps, err)
		}
		// A crash leaves its mounts behind, which the cleanup must detach.
		if ms, err := mountsUnder(e.root); err != nil || len(ms) == 0 {
			t.Errorf("mounts below the killed engine's %s: %v (%v), want its container's", e.root, ms, err)
		}
		if err := e.Client.Ping(); err == nil {
			t.Error("the killed engine answers a ping")
		}
		if err := e.Kill(); err != nil {
			t.Errorf("a second Kill: %v", err)
		}
	})
	if e != nil {
		gone(t, e)
	}
	for _, s := range sockets {
		if _, err := os.Stat(s); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the killed shim's socket %s: %v, want it removed", s, err)
		}
	}
}

// BenchmarkStart reports how long Start takes: the daemon up and the test
// image loaded into it. Stopping it is not timed.
func BenchmarkStart(b *testing.B) {
	Skip(b)
	for b.Loop() {
		e := Start(b)
		b.StopTimer()
		if err := e.stop(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/start")
}
