package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"kozmic/internal/tmpfs"
	"kozmic/migrations"
)

// On a real full filesystem a write fails and WriteFailure says so, also
// after a transaction that changed nothing (which commits on a full disk),
// and after a conflict; the first write that changes something once space
// is free again clears it.
func TestWriteFailureLastsUntilAWriteSucceeds(t *testing.T) {
	ctx := context.Background()
	dir := tmpfs.Mount(t, 8<<20)
	db, err := openAt(t, filepath.Join(dir, "kozmic.db"), testKey, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, db, "acme/full")
	if since, err := db.WriteFailure(); err != nil || !since.IsZero() {
		t.Fatalf("healthy database: WriteFailure = %v, %v", since, err)
	}

	unfill := tmpfs.Fill(t, dir)
	if _, err := db.CreateLocalUser(ctx, "bob", "hash", false); err == nil {
		t.Fatal("a write on a full disk succeeded; the test needs it to fail")
	}
	since, err := db.WriteFailure()
	if err == nil || since.IsZero() {
		t.Fatalf("after a failed write: WriteFailure = %v, %v", since, err)
	}
	if _, ok, err := db.ClaimJob(ctx); ok || err != nil {
		t.Fatalf("claim with nothing enqueued: %v %v", ok, err)
	}
	if _, err := db.CreateLocalUser(ctx, f.owner.Login(), "hash", false); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate user: %v, want ErrConflict", err)
	}
	if again, err := db.WriteFailure(); err == nil || !again.Equal(since) {
		t.Errorf("after a transaction that changed nothing: WriteFailure = %v, %v; want still failing since %v", again, err, since)
	}
	if free, err := db.FreeSpace(); err != nil || free != 0 {
		t.Errorf("full disk: FreeSpace = %d, %v", free, err)
	}

	unfill()
	if _, err := db.CreateLocalUser(ctx, "bob", "hash", false); err != nil {
		t.Fatal(err)
	}
	if since, err := db.WriteFailure(); err != nil || !since.IsZero() {
		t.Errorf("after a successful write: WriteFailure = %v, %v", since, err)
	}
	if free, err := db.FreeSpace(); err != nil || free < 4<<20 || free > 8<<20 {
		t.Errorf("8 MiB tmpfs with a small database: FreeSpace = %d, %v", free, err)
	}
}
