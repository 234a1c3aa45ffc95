// Package testengine starts a second, throwaway Docker daemon on this
// machine for tests of Kozmic on several engines: its own data, exec root,
// socket and containerd namespace, the test image loaded from the main
// engine, and nothing of it left (process, mount or directory) once the test
// ends. It needs root and a dockerd binary, which CI has (.ci/run sets
// KOZMIC_TEST_ENGINES).
package testengine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testimage"
)

// Env is the environment variable that turns on the tests that start a
// second Docker daemon.
const Env = "KOZMIC_TEST_ENGINES"

const (
	startLimit = 60 * time.Second // until the daemon answers a ping
	stopLimit  = 20 * time.Second // from SIGTERM until SIGKILL; it stops its containers first
	deathLimit = 20 * time.Second // from SIGKILL until the processes are gone
)

// Engine is a running throwaway Docker daemon.
type Engine struct {
	Host   string         // unix:///tmp/kze-…/docker.sock
	Client *docker.Client // a client of Host

	root  string // holds everything of the daemon: data root, exec root, socket, pid file, log; its base name is its containerd namespace
	cmd   *exec.Cmd
	ended chan struct{} // closed once dockerd has exited and been reaped

	stopOnce sync.Once
	stopErr  error
}

// Skip skips the test unless KOZMIC_TEST_ENGINES is set.
func Skip(t testing.TB) {
	t.Helper()
	if os.Getenv(Env) == "" {
		t.Skip("set " + Env + "=1 (as root, with dockerd installed) to run tests that start a second Docker daemon")
	}
}

// Start starts a throwaway dockerd with the test image (testimage.Name,
// ensured on the main engine, testimage.Host) loaded into it under the same
// image ID, and stops it when the test ends: SIGTERM, SIGKILL after 20 s,
// then whatever process of it is left is killed, its mounts detached and its
// directory removed. It fails the test, never skips it, when the daemon does
// not answer within a minute (with the daemon's log) or the image cannot be
// loaded; call Skip first. Several engines may run at once.
func Start(t testing.TB) *Engine {
	t.Helper()
	return StartWith(t)
}

// StartWith is Start with more flags for dockerd after its own, such as
// another -H and --tlsverify with its certificates: the daemon then also
// listens there, while Host and Client stay its unix socket.
func StartWith(t testing.TB, args ...string) *Engine {
	t.Helper()
	dockerd, err := exec.LookPath("dockerd")
	if err != nil {
		t.Fatalf("no dockerd to start a second engine with (install docker.io; %s is set): %v", Env, err)
	}
	// The exec root holds unix sockets (containerd's, at
	// x/containerd/containerd.sock), whose paths must stay under 108 bytes:
	// a short directory of its own, not t.TempDir's long one.
	root, err := os.MkdirTemp("", "kze-")
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{Host: "unix://" + filepath.Join(root, "docker.sock"), root: root, ended: make(chan struct{})}
	// An empty configuration, so that /etc/docker/daemon.json (hosts, data
	// root, a registry mirror) is not this daemon's too.
	conf := filepath.Join(root, "daemon.json")
	if err := os.WriteFile(conf, []byte("{}\n"), 0o600); err != nil {
		os.RemoveAll(root)
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(root, "dockerd.log"))
	if err != nil {
		os.RemoveAll(root)
		t.Fatal(err)
	}
	defer logFile.Close()
	e.cmd = exec.Command(dockerd, append([]string{
		"--config-file", conf,
		"--data-root", filepath.Join(root, "d"),
		"--exec-root", filepath.Join(root, "x"),
		"-H", e.Host,
		"--pidfile", filepath.Join(root, "pid"),
		// Where containerd runs as a service of its own
		// (/run/containerd/containerd.sock), dockerd uses it rather than
		// starting one under its exec root: namespaces of its own keep the
		// main engine's containers out of its sight, and name its shims.
		// (There the records of a killed engine's containers stay in that
		// containerd, under this namespace.)
		"--containerd-namespace", filepath.Base(root),
		"--containerd-plugins-namespace", filepath.Base(root) + "-plugins",
		"--bridge=none", "--iptables=false", "--ip6tables=false"}, args...)...)
	e.cmd.Env = daemonEnv()
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	if err := e.cmd.Start(); err != nil {
		os.RemoveAll(root)
		t.Fatalf("start dockerd: %v", err)
	}
	go func() {
		e.cmd.Wait()
		close(e.ended)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("second engine %s, its log's end:\n%s", e.Host, e.logTail())
		}
		if err := e.stop(); err != nil {
			t.Errorf("stop the second engine %s: %v", e.Host, err)
		}
	})

	if e.Client, err = docker.NewClient(e.Host); err != nil {
		t.Fatal(err)
	}
	if err := e.waitUp(); err != nil {
		t.Fatalf("second engine %s: %v; its log's end:\n%s", e.Host, err, e.logTail())
	}
	if err := e.loadTestImage(); err != nil {
		t.Fatalf("second engine %s: %v", e.Host, err)
	}
	return e
}

// daemonEnv is this process's environment without what would make the
// daemon share something with the main one (DOCKER_TMPDIR) or notify a
// service manager that did not start it (NOTIFY_SOCKET).
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			env = append(env, kv)
		}
	}
	return env
}

// waitUp waits until the daemon answers a ping, for at most a minute; it
// gives up at once when the daemon exits.
func (e *Engine) waitUp() error {
	deadline := time.Now().Add(startLimit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := e.Client.PingWithContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to a ping within %v: %w", startLimit, err)
		}
		select {
		case <-e.ended:
			return fmt.Errorf("dockerd exited (%v) before it answered a ping", e.cmd.ProcessState)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// loadTestImage streams the test image from the main engine into this one,
// as docker save | docker load does, and checks that it has the same ID on
// both.
func (e *Engine) loadTestImage() error {
	main, err := docker.NewClient(testimage.Host())
	if err != nil {
		return err
	}
	if err := testimage.Ensure(main); err != nil {
		return fmt.Errorf("test image on the main engine %s: %w", testimage.Host(), err)
	}
	want, err := main.InspectImage(testimage.Name)
	if err != nil {
		return fmt.Errorf("inspect %s on the main engine: %w", testimage.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		err := main.ExportImage(docker.ExportImageOptions{Name: testimage.Name, OutputStream: pw, Context: ctx})
		pw.CloseWithError(err)
		exported <- err
	}()
	var out bytes.Buffer // the load's progress messages, small; they hold its error if any
	err = e.Client.LoadImage(docker.LoadImageOptions{InputStream: pr, OutputStream: &out, Context: ctx})
	pr.CloseWithError(errors.New("load ended")) // lets the export end if the load did not read it all
	if xerr := <-exported; xerr != nil {
		return fmt.Errorf("export %s from the main engine: %w", testimage.Name, xerr)
	}
	if err != nil {
		return fmt.Errorf("load %s: %w (%s)", testimage.Name, err, bytes.TrimSpace(out.Bytes()))
	}
	got, err := e.Client.InspectImage(testimage.Name)
	if err != nil {
		return fmt.Errorf("inspect %s after the load (%s): %w", testimage.Name, bytes.TrimSpace(out.Bytes()), err)
	}
	if got.ID != want.ID {
		return fmt.Errorf("%s loaded as %s, the main engine has it as %s", testimage.Name, got.ID, want.ID)
	}
	return nil
}

// Kill kills the daemon now, as a crash would, and with it every process of
// it: its containerd, the shims and so the containers running on it. It
// returns once they are gone. The daemon's directory stays until the test
// ends; killing it again does nothing.
func (e *Engine) Kill() error {
	// Only when it still runs: once reaped, its pid may be another's.
	select {
	case <-e.ended:
	default:
		e.cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-e.ended:
	case <-time.After(deathLimit):
		return fmt.Errorf("dockerd %d still runs %v after SIGKILL", e.cmd.Process.Pid, deathLimit)
	}
	return killAll(e.root)
}

// stop stops the daemon (SIGTERM, so that it stops its containers; SIGKILL
// if it has not exited after 20 s), kills what is left of its processes,
// detaches what is left mounted below its directory and removes it. Later
// calls return the first's result.
func (e *Engine) stop() error {
	e.stopOnce.Do(func() {
		select {
		case <-e.ended:
		default:
			e.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-e.ended:
			case <-time.After(stopLimit):
			}
		}
		if err := e.Kill(); err != nil {
			e.stopErr = err
			return
		}
		if err := unmountUnder(e.root); err != nil {
			e.stopErr = err
			return
		}
		e.stopErr = os.RemoveAll(e.root)
	})
	return e.stopErr
}

// logTail is the end of the daemon's log, at most 4 KiB.
func (e *Engine) logTail() string {
	b, err := os.ReadFile(filepath.Join(e.root, "dockerd.log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > 4<<10 {
		b = b[len(b)-4<<10:]
	}
	return string(b)
}
