package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"kozmic/store"
)

func TestMaskerMasksSecretsSplitAnywhere(t *testing.T) {
	secrets := []string{"hunter2-long-secret", "tok", "abcd", "abcdef-longer"}
	stream := "start hunter2-long-secret mid abcdef-longer abcd end abc tok hunter2-lo"
	want := "start ******** mid ******** ******** end abc tok hunter2-lo"
	// Every way of cutting the stream into two writes, and byte by byte.
	for cut := 0; cut <= len(stream); cut++ {
		m := newMasker(secrets)
		got := string(m.write([]byte(stream[:cut]))) + string(m.write([]byte(stream[cut:]))) + string(m.flush())
		if got != want {
			t.Fatalf("cut at %d: %q, want %q", cut, got, want)
		}
	}
	m := newMasker(secrets)
	var got []byte
	for i := range len(stream) {
		got = append(got, m.write([]byte{stream[i]})...)
	}
	if got = append(got, m.flush()...); string(got) != want {
		t.Errorf("byte by byte: %q", got)
	}
	// Nothing to mask: the stream passes untouched and nothing is held.
	if out := newMasker(nil).write([]byte("plain")); string(out) != "plain" {
		t.Errorf("no secrets: %q", out)
	}
}

func newTestStore(t testing.TB) (*store.DB, store.Job) {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), "k.db"))
	ctx := context.Background()
	u, err := db.CreateLocalUser(ctx, "u", "x", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.CreateProject(ctx, store.NewProject{OwnerID: u.ID, Source: store.SourceGit, FullName: "a/b", GitURL: "/x", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "t", DockerImage: "i", BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	_, jobs, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	return db, jobs[0]
}

// A secret printed in two pieces, with a flush between them, is masked in
// the stored log.
func TestJobLogMasksAcrossFlushes(t *testing.T) {
	db, job := newTestStore(t)
	l := newJobLog(db, NewBroker(), job.ID, 1<<20, []string{"s3cr3t-value"}, slog.New(slog.DiscardHandler))
	l.Write([]byte("token=s3cr"))
	time.Sleep(2 * flushInterval) // the ticker flushes what is safe
	l.Write([]byte("3t-value done\r\n"))
	l.Close()
	got, _ := db.ReadLog(context.Background(), job.ID, 0, 1<<20)
	if string(got) != "token=******** done\r\n" {
		t.Errorf("stored log = %q", got)
	}
}

// A follower that reads slowly is dropped by the broker and resumes from the
// store: it sees every byte once and in order, live and after the end.
func TestFollowSurvivesBeingDropped(t *testing.T) {
	db, job := newTestStore(t)
	ctx := context.Background()
	b := NewBroker()
	l := newJobLog(db, b, job.ID, 1<<30, nil, slog.New(slog.DiscardHandler))

	var want bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&want, "line %06d of the log\r\n", i)
	}
	type result struct {
		data    []byte
		offsets []int64
		err     error
	}
	follow := func(from int64, slow bool) chan result {
		ch := make(chan result, 1)
		go func() {
			var r result
			r.err = b.Follow(ctx, db, job.ID, from, func(c Chunk) error {
				if c.Offset != from+int64(len(r.data)) {
					return fmt.Errorf("chunk at %d after %d bytes", c.Offset, len(r.data))
				}
				r.data = append(r.data, c.Data...)
				r.offsets = append(r.offsets, c.Offset)
				if slow {
					time.Sleep(3 * time.Millisecond)
				}
				return nil
			})
			ch <- r
		}()
		return ch
	}
	fast, slow, late := follow(0, false), follow(0, true), follow(1000, false)
	time.Sleep(50 * time.Millisecond) // let them subscribe
	// Thousands of small chunks through the log writer's own append: far
	// more than the slow follower's buffer holds.
	data := want.Bytes()
	for len(data) > 0 {
		n := min(240, len(data))
		l.append(data[:n], false)
		data = data[n:]
	}
	l.Close()
	finishJob(t, db, job.ID)
	b.end(job.ID) // as Runner.finish does once the job's end is recorded

	for name, ch := range map[string]chan result{"fast": fast, "slow": slow} {
		r := <-ch
		if r.err != nil || !bytes.Equal(r.data, want.Bytes()) {
			t.Errorf("%s follower: %v, %d of %d bytes", name, r.err, len(r.data), want.Len())
		}
	}
	if b.Dropped() == 0 {
		t.Error("the slow follower was never dropped: the test did not test resuming")
	}
	if r := <-late; r.err != nil || !bytes.Equal(r.data, want.Bytes()[1000:]) {
		t.Errorf("follower from offset 1000: %v, %d bytes", r.err, len(r.data))
	}
	// After the end, a new follower gets the stored log and returns.
	if r := <-follow(int64(want.Len()-10), false); r.err != nil || string(r.data) != string(want.Bytes()[want.Len()-10:]) {
		t.Errorf("follower after the end: %v, %q", r.err, r.data)
	}
	// A follower stops when its context ends, even while the job runs.
	db2, job2 := newTestStore(t)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := b.Follow(cctx, db2, job2.ID, 0, func(Chunk) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("follow with an ending context: %v", err)
	}
}

func finishJob(t testing.TB, db *store.DB, id int64) {
	t.Helper()
	ctx := context.Background()
	for _, s := range []store.JobStatus{store.JobRunning, store.JobSuccess} {
		if _, err := db.UpdateJob(ctx, id, store.JobUpdate{Status: s}); err != nil {
			t.Fatal(err)
		}
	}
}
