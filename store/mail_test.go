package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMailOutboxRetriesRemovesAndFollowsItsProject(t *testing.T) {
	ctx := context.Background()
	db, f, _, _ := newBuildFixture(t)
	if err := db.EnqueueMail(ctx, f.project.ID, []string{"ann@example.com", ""}, "s", "b"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an empty recipient: %v, want ErrInvalid", err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM mail_outbox`); n != 0 {
		t.Fatalf("a refused enqueue left %d rows", n)
	}
	if err := db.EnqueueMail(ctx, f.project.ID, []string{"ann@example.com", "bob@example.com"}, "[failure] acme/widget#1", "body"); err != nil {
		t.Fatal(err)
	}
	due, err := db.DueMail(ctx, time.Now(), 10)
	if err != nil || len(due) != 2 || due[0].To != "ann@example.com" || due[1].To != "bob@example.com" ||
		due[0].Subject != "[failure] acme/widget#1" || due[0].Body != "body" || due[0].CreatedAt.IsZero() {
		t.Fatalf("due = %+v, %v", due, err)
	}
	next := time.Now().Add(time.Hour)
	if err := db.MailFailed(ctx, due[0].ID, next, "451 try again later"); err != nil {
		t.Fatal(err)
	}
	if err := db.MailDone(ctx, due[1].ID); err != nil {
		t.Fatal(err)
	}
	if later, _ := db.DueMail(ctx, time.Now(), 10); len(later) != 0 {
		t.Errorf("due before the retry time: %+v", later)
	}
	if at, ok, err := db.NextMailDue(ctx); err != nil || !ok || at.UnixMilli() != next.UnixMilli() {
		t.Errorf("next due = %v %v %v, want %v", at, ok, err, next)
	}
	retry, _ := db.DueMail(ctx, next, 10)
	if len(retry) != 1 || retry[0].Attempts != 1 || retry[0].LastError != "451 try again later" {
		t.Errorf("retry = %+v", retry)
	}
	// The mail of a deleted project goes with it.
	if err := db.DeleteProject(ctx, f.project.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := db.NextMailDue(ctx); ok {
		t.Error("mail of a deleted project is still due")
	}
	if err := db.MailFailed(ctx, retry[0].ID, next, "late"); err != nil {
		t.Errorf("a failure recorded for removed mail: %v", err)
	}
}
