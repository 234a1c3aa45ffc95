package git

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
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

	_, _, err := ResolveRef(context.Background(), Remote{URL: silent.URL}, "main")
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
	go func() { _, _, err := ResolveRef(ctx, Remote{URL: silent.URL}, "main"); held <- err }()
	<-silent.Accepted // the one slot is taken by a git that waits on the silent server

	if _, _, err := ResolveRef(context.Background(), Remote{URL: rp.Path}, "main"); !errors.Is(err, ErrBusy) {
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
