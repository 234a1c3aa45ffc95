package runner

import (
	"context"
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
