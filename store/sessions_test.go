package store

import (
	"context"
	"testing"
	"time"
)

func TestSessions(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	s := db.Sessions()
	if err := s.CommitCtx(ctx, "live", []byte("data-1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCtx(ctx, "live", []byte("data-2"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.CommitCtx(ctx, "old", []byte("x"), time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if b, found, err := s.FindCtx(ctx, "live"); err != nil || !found || string(b) != "data-2" {
		t.Errorf("live session = %q %v %v", b, found, err)
	}
	if _, found, err := s.FindCtx(ctx, "old"); err != nil || found {
		t.Errorf("expired session found: %v %v", found, err)
	}
	if n, err := s.DeleteExpired(ctx); err != nil || n != 1 {
		t.Errorf("DeleteExpired = %d, %v; want 1", n, err)
	}
	if err := s.DeleteCtx(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.Find("live"); found {
		t.Error("deleted session found")
	}
}
