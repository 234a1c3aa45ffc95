package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
	kind kind
	// dir is the repository the command works in; "" for a command outside
	// any repository (ls-remote), which runs in its empty home directory.
	dir            string
	env            []string // added to the environment run gives git
	stdin          io.Reader
	stdout, stderr io.Writer
	args           []string
}

// run runs c.args with git within the bound: it waits for a free slot (a
// command of ResolveRef waits Limits.Wait at most and then fails with
// ErrBusy; others wait as long as ctx lasts), then lets the process run for
// its kind's timeout. git runs in a process group of its own, and the whole
// group is killed when the time is up or ctx ends, so that no ssh or
// git-remote-https it started outlives it. It runs with the environment of
// gitEnv and c.env, and with no credential helper. The error is ctx's when
// ctx ended, a timeoutError that says "no answer within" the timeout, the
// *exec.ExitError of a git that failed, or one that says the home directory
// could not be made.
func run(ctx context.Context, c cmd) error {
	b := current.Load()
	timeout := map[kind]time.Duration{resolving: b.ResolveTimeout, fetching: b.FetchTimeout, local: localTimeout}[c.kind]
	if err := b.acquire(ctx, c.kind == resolving); err != nil {
		return err
	}
	defer func() { <-b.slots }()

	home, err := os.MkdirTemp("", "kozmic-git-home-*") // mode 0700
	if err != nil {
		return fmt.Errorf("git home directory: %w", err)
	}
	defer os.RemoveAll(home)
	dir := home
	if c.dir != "" {
		if dir, err = filepath.Abs(c.dir); err != nil {
			return fmt.Errorf("git directory: %w", err)
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// An empty value empties the list of credential helpers, wherever one
	// was configured.
	p := exec.CommandContext(runCtx, "git", append([]string{"-c", "credential.helper="}, c.args...)...)
	p.Dir, p.Env = dir, append(gitEnv(home, dir), c.env...)
	p.Stdin, p.Stdout, p.Stderr = c.stdin, c.stdout, c.stderr
	p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p.Cancel = func() error { return syscall.Kill(-p.Process.Pid, syscall.SIGKILL) }
	// A process of the group that escaped the kill must not keep Wait
	// waiting for the pipes it holds.
	p.WaitDelay = time.Second
	err = p.Run()
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

// keptEnv are the variables of Kozmic's own environment that git commands
// keep: where programs and temporary files are, and the proxy and
// certificate authority settings that reaching HTTPS servers may take on
// the operator's network. No other variable reaches git: not HOME, the ssh
// agent's socket, askpass programs or any GIT_* setting of the account
// Kozmic runs as, which would lend a project that account's configuration
// and credentials.
var keptEnv = []string{"PATH", "TMPDIR",
	"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
	"SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH"}

// gitEnv is the whole environment of a git command that works in dir: the
// variables of keptEnv that are set, and home (empty, the command's own) as
// HOME and XDG_CONFIG_HOME. git reads no system or global configuration or
// attributes, never prompts (a server that wants a password fails the
// command), uses only the protocols of allowedProtocols, and looks for a
// repository in dir alone, never in a directory above it.
func gitEnv(home, dir string) []string {
	var env []string
	for _, k := range keptEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return append(env, "HOME="+home, "XDG_CONFIG_HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_ATTR_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0", "GIT_ALLOW_PROTOCOL="+allowedProtocols,
		"GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
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
