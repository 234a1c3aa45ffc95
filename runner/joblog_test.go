package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"kozmic/store"
)

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
	l := newJobLog(context.Background(), db, NewBroker(), job.ID, 1<<20, []string{"s3cr3t-value"}, slog.New(slog.DiscardHandler))
	l.Write([]byte("token=s3cr"))
	time.Sleep(2 * flushInterval) // the ticker flushes what is safe
	l.Write([]byte("3t-value done\r\n"))
	l.Close()
	got, _ := db.ReadLog(context.Background(), job.ID, 0, 1<<20)
	if string(got) != "token=******** done\r\n" {
		t.Errorf("stored log = %q", got)
	}
}

// gatedStore holds every log write until the gate opens, as a database
// that is slow for a while does.
type gatedStore struct {
	*store.DB
	gate chan struct{}
}

func (g gatedStore) AppendLogFrames(ctx context.Context, jobID int64, frames []store.LogFrame) (int64, error) {
	<-g.gate
	return g.DB.AppendLogFrames(ctx, jobID, frames)
}

// Output past the size limit is dropped as it is written: it is neither
// gathered nor queued for the writer, which gets the limit's bytes and the
// notice once.
func TestJobLogDropsOutputPastTheLimitAtTheSource(t *testing.T) {
	db, job := newTestStore(t)
	gs := gatedStore{DB: db, gate: make(chan struct{})}
	const limit = 3*flushBytes + 100
	l := newJobLog(context.Background(), gs, NewBroker(), job.ID, limit, nil, slog.New(slog.DiscardHandler))
	line := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB a write
	var written []byte
	// Past the limit by 32 batches: the writer waits at the gate meanwhile.
	for range 36 {
		l.Write(line)
		written = append(written, line...)
	}
	l.mu.Lock()
	queued, gathered := len(l.batches), len(l.cur.data)
	l.mu.Unlock()
	// The first batch may be at the gate already, out of the queue.
	if queued > 4 || gathered != 0 {
		t.Errorf("after the limit: %d batches queued, %d bytes gathered; want at most 4 and none", queued, gathered)
	}
	close(gs.gate)
	l.Close()
	want := append(written[:limit:limit], fmt.Sprintf("\r\n\x1b[1;33m[log truncated at %d bytes]\x1b[0m\r\n", limit)...)
	got, err := db.ReadLog(context.Background(), job.ID, 0, 1<<30)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("stored log: %d bytes, %v; want the first %d bytes and the notice (%d)", len(got), err, limit, len(want))
	}
	if li, _ := db.LogInfoOf(context.Background(), job.ID); !li.Truncated {
		t.Errorf("log info %+v, want truncated", li)
	}
}

// Each line of a job's log reads back with the time its first byte was
// written, counted from the log's start.
func TestJobLogRecordsEachLinesArrival(t *testing.T) {
	db, job := newTestStore(t)
	began := time.Now() // before the log starts its clock, so that no line comes later than elapsed
	l := newJobLog(context.Background(), db, NewBroker(), job.ID, 1<<20, nil, slog.New(slog.DiscardHandler))
	l.Write([]byte("first\nsecond "))
	time.Sleep(300 * time.Millisecond)
	l.Write([]byte("half\nthird\n"))
	elapsed := time.Since(began)
	l.Close()
	lines, err := db.LogTimes(context.Background(), job.ID, 0, 1<<20)
	if err != nil || len(lines) != 3 {
		t.Fatalf("LogTimes = %v, %v; want 3 lines", lines, err)
	}
	if lines[0].At != lines[1].At || lines[1].At > 300*time.Millisecond {
		t.Errorf("the first two lines came with the first write: %v", lines)
	}
	if d := lines[2].At - lines[1].At; d < 300*time.Millisecond || lines[2].At > elapsed {
		t.Errorf("the third line came %v after the first write, at %v of %v: want at least 300ms later", d, lines[2].At, elapsed)
	}
}
