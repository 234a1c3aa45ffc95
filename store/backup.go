package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrIntegrity means a database file failed SQLite's integrity check.
var ErrIntegrity = errors.New("integrity check failed")

// openReadOnly is Open with Options.ReadOnly: both pools are query_only, so
// no statement can change the file or wait for the server's write lock.
func openReadOnly(ctx context.Context, abs string, seal *sealer) (*DB, error) {
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	read, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	// A writer pool that cannot write: methods that write fail with
	// SQLite's "attempt to write a readonly database" instead of changing it.
	write, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		read.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	write.SetMaxOpenConns(1)
	db := &DB{write: write, read: read, stmts: newStmtCache(write), reads: newStmtCache(read), seal: seal, now: time.Now, path: abs}
	if err := db.checkKeyReadOnly(ctx); err != nil {
		db.Close()
		return nil, err
	}
	var id []byte
	if err := db.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'instance_id'`).Scan(&id); err != nil && !errors.Is(err, sql.ErrNoRows) {
		db.Close()
		return nil, fmt.Errorf("read instance id: %w", err)
	}
	db.instance = string(id)
	return db, nil
}

// checkKeyReadOnly is checkKey for a database that must not be written: the
// check value must be there already.
func (db *DB) checkKeyReadOnly(ctx context.Context) error {
	var history int
	err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'goose_db_version'`).Scan(&history)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	if history == 0 {
		return fmt.Errorf("open database: %s is not a Kozmic database (no migration history)", db.path)
	}
	var sealed []byte
	err = db.read.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'key_check'`).Scan(&sealed)
	if err != nil {
		return fmt.Errorf("read key check: %w", err)
	}
	return db.opensKeyCheck(sealed)
}

// Backup writes a consistent snapshot of the database to path, which must
// not exist or be an empty file (a fresh temporary file, say): the database
// as of the moment Backup starts, committed transactions only, compacted
// into a standalone file without -wal or -shm. It copies with SQLite's
// VACUUM INTO through a read-only connection of its own, which takes no
// lock that writers wait for, so the server and other processes go on
// using the database meanwhile.
//
// The copy is then opened and must pass PRAGMA integrity_check (otherwise
// the error is ErrIntegrity, with SQLite's findings), and it is synced to
// disk. On any later failure path is removed, so a file left at path is a
// complete, checked backup; a path that is not empty is refused untouched.
func (db *DB) Backup(ctx context.Context, path string) (err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("backup path: %w", err)
	}
	if fi, err := os.Stat(abs); err == nil && fi.Size() > 0 {
		return fmt.Errorf("backup: %s is not empty", abs) // not ours to remove
	}
	defer func() {
		if err != nil {
			os.Remove(abs)
		}
	}()
	// Not the reader pool: query_only refuses VACUUM INTO, while a
	// connection opened read-only (mode=ro) may write the copy.
	src, err := sql.Open("sqlite", readOnlyFileDSN(db.path))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer src.Close()
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, abs); err != nil {
		return fmt.Errorf("backup: copy the database: %w", err)
	}
	if err := CheckIntegrity(ctx, abs); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: sync: %w", err)
	}
	return nil
}

// CheckIntegrity runs PRAGMA integrity_check on the SQLite file at path,
// opened read-only, and returns nil if it says ok. Damage SQLite finds is
// ErrIntegrity with its first findings; a file that is not a database at
// all is ErrIntegrity too.
func CheckIntegrity(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", readOnlyFileDSN(path))
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	defer db.Close()
	findings, err := queryAll(ctx, db, "integrity check", scanValue[string], `PRAGMA integrity_check(10)`)
	var se *sqlite.Error
	if errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_CORRUPT || se.Code()&0xff == sqlite3.SQLITE_NOTADB) {
		return fmt.Errorf("%w: %v", ErrIntegrity, se)
	} else if err != nil {
		return err
	}
	if len(findings) != 1 || findings[0] != "ok" {
		return fmt.Errorf("%w: %s", ErrIntegrity, strings.Join(findings, "; "))
	}
	return nil
}

// readOnlyFileDSN opens path with SQLite's read-only flag, unlike dsn's
// query_only, which still opens the file for writing.
func readOnlyFileDSN(path string) string {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}
