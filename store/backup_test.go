package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"kozmic/migrations"
)

func TestBackupCopiesAndChecks(t *testing.T) {
	ctx := context.Background()
	db, f, b, jobs := newBuildFixture(t)
	if _, err := db.AppendLog(ctx, jobs[0].ID, []byte("hello\n"), false); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := db.Backup(ctx, path); err != nil {
		t.Fatal(err)
	}
	if err := CheckIntegrity(ctx, path); err != nil {
		t.Errorf("backup: %v", err)
	}
	// A standalone file: no -wal to go with it.
	if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("the backup has a -wal file (%v)", err)
	}
	cp, err := openAt(t, path, testKey, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	got, err := cp.BuildByNumber(ctx, f.project.ID, b.Number)
	if err != nil || got.SHA != b.SHA {
		t.Errorf("build in the backup = %+v, %v", got, err)
	}
	if log, err := cp.ReadLog(ctx, jobs[0].ID, 0, 100); err != nil || string(log) != "hello\n" {
		t.Errorf("log in the backup = %q, %v", log, err)
	}
	// A restored backup gives deleted logs' pages back too.
	if n := count(t, cp, `PRAGMA auto_vacuum`); n != 2 {
		t.Errorf("auto_vacuum = %d in the backup, want 2 (incremental)", n)
	}

	// A file that is not empty is refused and left alone.
	if err := db.Backup(ctx, path); err == nil {
		t.Error("backup over a non-empty file succeeded")
	}
	if err := CheckIntegrity(ctx, path); err != nil {
		t.Errorf("the refused backup damaged the file there: %v", err)
	}
	// A failed copy leaves nothing.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	failed := filepath.Join(t.TempDir(), "failed.db")
	os.WriteFile(failed, nil, 0o600)
	if err := db.Backup(canceled, failed); err == nil {
		t.Error("backup with a canceled context succeeded")
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Errorf("a failed backup left its file (%v)", err)
	}
}

func TestCheckIntegrityFindsDamage(t *testing.T) {
	ctx := context.Background()
	db, f, _, _ := newBuildFixture(t)
	for i := range 300 {
		if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main",
			SHA: strings.Repeat("s", 30) + string(rune('a'+i%26)) + strings.Repeat("x", i%40) + string(rune('A'+i/26))}); err != nil {
			t.Fatal(err)
		}
	}
	good := filepath.Join(t.TempDir(), "good.db")
	if err := db.Backup(ctx, good); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(raw[16])<<8 | int(raw[17])
	if len(raw) < 8*pageSize {
		t.Fatalf("database of %d pages is too small to damage usefully", len(raw)/pageSize)
	}
	// Scribble over the middle of every page but the first: cell pointers,
	// cells and free-block lists no longer agree.
	damaged := bytes.Clone(raw)
	for p := pageSize; p+pageSize <= len(damaged); p += pageSize {
		copy(damaged[p+8:p+pageSize/2], bytes.Repeat([]byte{0xA5}, pageSize/2-8))
	}
	bad := filepath.Join(t.TempDir(), "bad.db")
	os.WriteFile(bad, damaged, 0o600)
	if err := CheckIntegrity(ctx, bad); !errors.Is(err, ErrIntegrity) {
		t.Errorf("damaged file: err = %v, want ErrIntegrity", err)
	}
	notDB := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notDB, bytes.Repeat([]byte("not a database\n"), 500), 0o600)
	if err := CheckIntegrity(ctx, notDB); !errors.Is(err, ErrIntegrity) {
		t.Errorf("not a database: err = %v, want ErrIntegrity", err)
	}
}

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kozmic.db")
	rw, err := Open(ctx, path, Options{SecretKey: testKey, Migrations: migrations.FS})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rw.CreateLocalUser(ctx, "ann", "h", false); err != nil {
		t.Fatal(err)
	}
	instance := rw.InstanceID()
	rw.Close()
	before, _ := os.ReadFile(path)

	ro, err := Open(ctx, path, Options{SecretKey: testKey, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := ro.UserByUsername(ctx, "ann"); err != nil || u.Username != "ann" || ro.InstanceID() != instance {
		t.Errorf("read-only: user %+v, %v, instance %q (want %q)", u, err, ro.InstanceID(), instance)
	}
	if _, err := ro.CreateLocalUser(ctx, "bob", "h", false); err == nil {
		t.Error("a read-only database took a write")
	}
	ro.Close()
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("opening read-only changed the database file")
	}

	if _, err := Open(ctx, path, Options{SecretKey: []byte(strings.Repeat("w", 32)), ReadOnly: true}); !errors.Is(err, ErrWrongKey) {
		t.Errorf("wrong key: err = %v, want ErrWrongKey", err)
	}
	missing := filepath.Join(dir, "missing.db")
	if _, err := Open(ctx, missing, Options{SecretKey: testKey, ReadOnly: true}); err == nil {
		t.Error("read-only open of a missing file succeeded")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("read-only open created %s", missing)
	}
	other := filepath.Join(dir, "other.db")
	os.WriteFile(other, nil, 0o600)
	if _, err := Open(ctx, other, Options{SecretKey: testKey, ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not a Kozmic database") {
		t.Errorf("read-only open of an empty file: %v", err)
	}
}
