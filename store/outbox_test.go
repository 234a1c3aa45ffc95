package store

import (
	"context"
	"testing"
	"time"
)

func TestStatusOutbox(t *testing.T) {
	ctx := context.Background()
	db, f, _, jobs := newBuildFixture(t)
	st := Status{ProjectID: f.project.ID, JobID: jobs[0].ID, Repo: "acme/widget", SHA: "abc", Context: "kozmic/lint", State: "pending"}
	if err := db.EnqueueStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	st.State = "success" // replaces the unposted pending one
	if err := db.EnqueueStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	st.Context = "kozmic/test"
	if err := db.EnqueueStatus(ctx, st); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueStatuses(ctx, time.Now(), 10)
	if err != nil || len(due) != 2 || due[0].State != "success" || due[0].Context != "kozmic/lint" {
		t.Fatalf("due = %+v, %v", due, err)
	}
	next := time.Now().Add(time.Hour)
	if err := db.StatusFailed(ctx, due[0].ID, next, "HTTP 502"); err != nil {
		t.Fatal(err)
	}
	if err := db.StatusFailed(ctx, due[1].ID, time.Time{}, "HTTP 422"); err != nil {
		t.Fatal(err)
	}
	if later, _ := db.DueStatuses(ctx, time.Now(), 10); len(later) != 0 {
		t.Errorf("due after failures = %+v, want none before the retry time", later)
	}
	at, ok, err := db.NextStatusDue(ctx)
	if err != nil || !ok || at.UnixMilli() != next.UnixMilli() {
		t.Errorf("next due = %v %v %v, want %v", at, ok, err, next)
	}
	retry, _ := db.DueStatuses(ctx, next, 10)
	if len(retry) != 1 || retry[0].Attempts != 1 || retry[0].LastError != "HTTP 502" {
		t.Errorf("retry = %+v", retry)
	}
	if pending, failed, err := db.StatusCounts(ctx); err != nil || pending != 1 || failed != 1 {
		t.Errorf("counts = %d pending, %d failed, %v", pending, failed, err)
	}
	if err := db.StatusPosted(ctx, retry[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.NextStatusDue(ctx); ok {
		t.Error("a status is still due after posting the last one")
	}
}
