package git

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"kozmic/internal/testrepo"
)

// setLimits sets l for the rest of the test, and the defaults after it.
func setLimits(t *testing.T, l Limits) {
	SetLimits(l)
	t.Cleanup(func() { SetLimits(Limits{}) })
}

// checkClosed checks that the other end closed c: every process git started
// for the command, git-remote-http included, is gone.
func checkClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a guard against hanging, not a measure
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Errorf("the connection is still open after git returned (%v): a process it started outlived it", err)
	}
}

// A git server that accepts the connection and never answers holds a git
// command only until its timeout, with a clear error; the whole process
// group ends with it, and a fetch that timed out is not tried again.
func TestGitCommandAgainstSilentServerTimesOut(t *testing.T) {
	setLimits(t, Limits{ResolveTimeout: time.Second, FetchTimeout: time.Second})
	silent := testrepo.NewSilent(t)

	_, _, _, err := ResolveRef(context.Background(), Remote{URL: silent.URL}, "main")
	if err == nil || err.Error() != "could not reach "+silent.URL+": no answer within 1s" {
		t.Errorf("ResolveRef: %v", err)
	}
	checkClosed(t, <-silent.Accepted)

	sha := strings.Repeat("a", 40)
	err = Clone(context.Background(), CloneSpec{Remote: Remote{URL: silent.URL}, Ref: "refs/heads/main", SHA: sha}, t.TempDir(), io.Discard)
	if err == nil || err.Error() != "could not fetch "+sha+" from "+silent.URL+": no answer within 1s" {
		t.Errorf("Clone: %v", err)
	}
	checkClosed(t, <-silent.Accepted)
	select {
	case <-silent.Accepted:
		t.Error("Clone tried a second fetch after the first timed out")
	default:
	}
}

// With every git slot taken, a command a person waits on (ResolveRef) fails
// with ErrBusy, while a job's Clone waits for a slot and then succeeds.
func TestJobFetchWaitsForAGitSlotWherePersonGetsErrBusy(t *testing.T) {
	setLimits(t, Limits{Procs: 1, Wait: 100 * time.Millisecond, ResolveTimeout: time.Minute})
	silent := testrepo.NewSilent(t)
	rp := testrepo.New(t, map[string]string{"README": "one"})
	sha := rp.Git("rev-parse", "HEAD")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan error, 1)
	go func() { _, _, _, err := ResolveRef(ctx, Remote{URL: silent.URL}, "main"); held <- err }()
	<-silent.Accepted // the one slot is taken by a git that waits on the silent server

	if _, _, _, err := ResolveRef(context.Background(), Remote{URL: rp.Path}, "main"); !errors.Is(err, ErrBusy) {
		t.Errorf("ResolveRef with no slot free: %v, want ErrBusy", err)
	}
	cloned := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		cloned <- Clone(context.Background(), CloneSpec{Remote: Remote{URL: rp.Path}, Ref: "refs/heads/main", SHA: sha}, t.TempDir(), &out)
	}()
	// Longer than a person's wait for a slot: a Clone that gave up as
	// ResolveRef does would have failed by now.
	time.Sleep(5 * 100 * time.Millisecond)
	select {
	case err := <-cloned:
		t.Fatalf("Clone ended while every slot was taken: %v", err)
	default:
	}
	cancel() // frees the slot
	if err := <-held; !errors.Is(err, context.Canceled) {
		t.Errorf("the held ResolveRef: %v", err)
	}
	if err := <-cloned; err != nil {
		t.Errorf("Clone waiting for a slot: %v\n%s", err, out.String())
	}
}

// The configuration of the account Kozmic runs as, wherever git would find
// it (HOME, GIT_CONFIG_GLOBAL, GIT_CONFIG_SYSTEM, GIT_CONFIG_COUNT), never
// applies to a project's fetch: a url.insteadOf rule does not turn a
// project's URL into a repository on this machine, and a credential helper
// is not asked for, nor sends, the account's credentials.
func TestGitIgnoresTheOperatorsGitConfig(t *testing.T) {
	private := testrepo.New(t, map[string]string{"README": "the operator's private repository"})
	sha := private.Git("rev-parse", "HEAD")
	// Nothing listens on port 1: only the rule could make this URL work.
	rewritten := "http://127.0.0.1:1/corp/private.git"

	var sentAuth atomic.Bool
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			sentAuth.Store(true)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="corp"`)
		http.Error(w, "who are you?", http.StatusUnauthorized)
	}))
	defer guarded.Close()
	asked := filepath.Join(t.TempDir(), "asked")
	helper := "!f() { echo \"$1\" >> " + asked + "; echo username=operator; echo password=hunter2; }; f"
	config := fmt.Sprintf("[url %q]\n\tinsteadOf = %s\n[credential]\n\thelper = %q\n", private.Path, rewritten, helper)

	// Each way of configuring git alone; the first shows the test can fail.
	for _, source := range []string{"none, by hand", "HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_COUNT"} {
		t.Run(source, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, ".gitconfig")
			if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(asked)
			sentAuth.Store(false)
			switch source {
			case "none, by hand":
				out, err := exec.Command("git", "-c", "include.path="+file, "ls-remote", rewritten, "HEAD").Output()
				if err != nil || !strings.HasPrefix(string(out), sha) {
					t.Fatalf("git itself does not follow the rule (%v, %q): this test shows nothing", err, out)
				}
				exec.Command("git", "-c", "include.path="+file, "ls-remote", guarded.URL+"/corp/secret.git").Run()
				if called, _ := os.ReadFile(asked); len(called) == 0 || !sentAuth.Load() {
					t.Fatalf("git itself does not use the helper (asked %q): this test shows nothing", called)
				}
				return
			case "HOME":
				t.Setenv("HOME", dir)
			case "GIT_CONFIG_COUNT":
				t.Setenv("GIT_CONFIG_COUNT", "2")
				t.Setenv("GIT_CONFIG_KEY_0", "url."+private.Path+".insteadOf")
				t.Setenv("GIT_CONFIG_VALUE_0", rewritten)
				t.Setenv("GIT_CONFIG_KEY_1", "credential.helper")
				t.Setenv("GIT_CONFIG_VALUE_1", helper)
			default:
				t.Setenv(source, file)
			}

			if _, got, _, err := ResolveRef(context.Background(), Remote{URL: rewritten}, "main"); err == nil || got == sha {
				t.Errorf("ResolveRef followed the rule to the local repository: %.12s, %v", got, err)
			}
			var out bytes.Buffer
			err := Clone(context.Background(), CloneSpec{Remote: Remote{URL: rewritten}, Ref: "refs/heads/main", SHA: sha}, t.TempDir(), &out)
			if err == nil {
				t.Errorf("Clone followed the rule to the local repository:\n%s", out.String())
			}
			_, _, _, err = ResolveRef(context.Background(), Remote{URL: guarded.URL + "/corp/secret.git"}, "main")
			if called, _ := os.ReadFile(asked); len(called) > 0 || sentAuth.Load() || err == nil {
				t.Errorf("against a server that wants a password, the credential helper was asked %q, credentials sent: %v; err = %v",
					called, sentAuth.Load(), err)
			}
		})
	}
}
