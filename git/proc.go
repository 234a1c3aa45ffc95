package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits bound the git processes this package runs, across the whole
// program: a git server that never answers holds a process only until its
// timeout, and never more than Procs processes at once.
type Limits struct {
	// Procs is how many git processes may run at once; a command waits for
	// one of them to end. Default 8.
	Procs int
	// Wait is how long a command a person waits on (those of ResolveRef)
	// waits for a free slot before it fails with ErrBusy; the commands of a
	// job wait as long as the job's context lasts. Default 10s.
	Wait time.Duration
	// ResolveTimeout is how long each git command of ResolveRef may run.
	// Default 30s.
	ResolveTimeout time.Duration
	// FetchTimeout is how long each git fetch of Clone may run. Default 10m.
	FetchTimeout time.Duration
}

// defaultLimits fill in the zero fields of the Limits given to SetLimits.
var defaultLimits = Limits{Procs: 8, Wait: 10 * time.Second, ResolveTimeout: 30 * time.Second, FetchTimeout: 10 * time.Minute}

// localTimeout bounds a git command that works on this machine's disk only
// (init, switch, cat-file, rev-parse of a local repository): a large
// checkout takes time, but no such command waits on anyone.
const localTimeout = 5 * time.Minute

// ErrBusy is the error of a command a person waits on that found every git
// slot taken for as long as it may wait (Limits.Wait).
var ErrBusy = errors.New("too many git commands are running; try again in a moment")

// timeoutError is the error of a git command that ran out of time.
type timeoutError struct{ after time.Duration }

func (e timeoutError) Error() string { return fmt.Sprintf("no answer within %s", e.after) }

// bound is Limits with the slots they allow.
type bound struct {
	Limits
	slots chan struct{} // one element per running git process
}

var current atomic.Pointer[bound]

func init() { SetLimits(Limits{}) }

// SetLimits sets the limits of the git commands that start from now on; zero
// fields take the defaults noted in Limits. Commands already running count
// against the limits they started under until they end.
func SetLimits(l Limits) {
	if l.Procs <= 0 {
		l.Procs = defaultLimits.Procs
	}
	if l.Wait <= 0 {
		l.Wait = defaultLimits.Wait
	}
	if l.ResolveTimeout <= 0 {
		l.ResolveTimeout = defaultLimits.ResolveTimeout
	}
	if l.FetchTimeout <= 0 {
		l.FetchTimeout = defaultLimits.FetchTimeout
	}
	current.Store(&bound{Limits: l, slots: make(chan struct{}, l.Procs)})
}

// kind is what a git command waits on, which sets its timeout and how long
// it waits for a slot.
type kind int

const (
	resolving kind = iota // a command of ResolveRef: a person waits
	fetching              // a job's fetch from the git server
	local                 // a job's command on this machine's disk
)

// cmd is one git process to run.
type cmd struct {
	kind           kind
	env            []string
	stdin          io.Reader
	stdout, stderr io.Writer
	args           []string
}

// run runs c.args with git within the bound: it waits for a free slot (a
// command of ResolveRef waits Limits.Wait at most and then fails with
// ErrBusy; others wait as long as ctx lasts), then lets the process run for
// its kind's timeout. git runs in a process group of its own, and the whole
// group is killed when the time is up or ctx ends, so that no ssh or
// git-remote-https it started outlives it. The error is ctx's when ctx
// ended, a timeoutError that says "no answer within" the timeout, or the
// *exec.ExitError of a git that failed.
func run(ctx context.Context, c cmd) error {
	b := current.Load()
	timeout := map[kind]time.Duration{resolving: b.ResolveTimeout, fetching: b.FetchTimeout, local: localTimeout}[c.kind]
	if err := b.acquire(ctx, c.kind == resolving); err != nil {
		return err
	}
	defer func() { <-b.slots }()

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := exec.CommandContext(runCtx, "git", c.args...)
	p.Env, p.Stdin, p.Stdout, p.Stderr = c.env, c.stdin, c.stdout, c.stderr
	p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.Cancel = func() error { return syscall.Kill(-p.Process.Pid, syscall.SIGKILL) }
	// A process of the group that escaped the kill must not keep Wait
	// waiting for the pipes it holds.
	p.WaitDelay = time.Second
	err := p.Run()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		return timeoutError{timeout}
	}
	return err
}

// acquire takes a slot for one git process. With short, it waits b.Wait at
// most and then returns ErrBusy; otherwise it waits as long as ctx lasts.
func (b *bound) acquire(ctx context.Context, short bool) error {
	var expired <-chan time.Time
	if short {
		t := time.NewTimer(b.Wait)
		defer t.Stop()
		expired = t.C
	}
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-expired:
		return ErrBusy
	}
}
