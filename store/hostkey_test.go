package store

import (
	"context"
	"errors"
	"testing"
)

// PinHostKey pins a key only where none is pinned: the same key again
// changes nothing, another is ErrConflict and leaves the first; ResetHostKey
// forgets it, so that the next pin takes.
func TestPinHostKeyPinsOnlyWhereNoneIs(t *testing.T) {
	db := newTestDB(t)
	p := newFixture(t, db, "acme/widget").project
	ctx := context.Background()
	pinned := func() string {
		t.Helper()
		got, err := db.ProjectByID(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.SSHHostKey
	}
	const a, b = "ssh-ed25519 AAAA-key-a", "ssh-ed25519 AAAA-key-b"
	if pinned() != "" {
		t.Fatalf("a new project has the host key %q", pinned())
	}
	if err := db.PinHostKey(ctx, p.ID, a); err != nil || pinned() != a {
		t.Fatalf("pin a: %v, pinned %q", err, pinned())
	}
	if err := db.PinHostKey(ctx, p.ID, a); err != nil {
		t.Errorf("pin a again: %v", err)
	}
	if err := db.PinHostKey(ctx, p.ID, b); !errors.Is(err, ErrConflict) || pinned() != a {
		t.Errorf("pin b over a: %v, pinned %q", err, pinned())
	}
	if err := db.PinHostKey(ctx, p.ID, ""); !errors.Is(err, ErrInvalid) || pinned() != a {
		t.Errorf("pin nothing: %v, pinned %q", err, pinned())
	}
	if err := db.ResetHostKey(ctx, p.ID); err != nil || pinned() != "" {
		t.Fatalf("reset: %v, pinned %q", err, pinned())
	}
	if err := db.PinHostKey(ctx, p.ID, b); err != nil || pinned() != b {
		t.Errorf("pin b after the reset: %v, pinned %q", err, pinned())
	}
	if err := db.PinHostKey(ctx, p.ID+1, a); !errors.Is(err, ErrNotFound) {
		t.Errorf("pin for a missing project: %v", err)
	}
	if err := db.ResetHostKey(ctx, p.ID+1); !errors.Is(err, ErrNotFound) {
		t.Errorf("reset for a missing project: %v", err)
	}
}
