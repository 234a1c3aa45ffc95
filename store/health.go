package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// writeHealth remembers whether the database's writes fail for want of a
// working disk, for WriteFailure.
type writeHealth struct {
	mu    sync.Mutex
	since time.Time // when the failures began; zero while writes succeed
	err   error     // the latest failure
}

// failed records a write that failed with err, if err is a failure of the
// disk rather than of the request (see diskFailure).
func (w *writeHealth) failed(err error, now time.Time) {
	if !diskFailure(err) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.since.IsZero() {
		w.since = now
	}
	w.err = err
}

// succeeded records a write that changed rows and was committed.
func (w *writeHealth) succeeded() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.since, w.err = time.Time{}, nil
}

// failing says whether a failure is recorded.
func (w *writeHealth) failing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err != nil
}

// diskFailure says whether err is SQLite failing to write for reasons of
// the file or the disk under it: a full disk, an I/O error, a file that
// turned read-only, could not be opened, is corrupt, or stayed locked past
// the busy timeout. Conflicts, missing rows and bad input are not.
func diskFailure(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// WriteFailure says whether the database's writes are failing: err is the
// latest write's failure for reasons of the file or the disk under it (a
// full disk, an I/O error, a read-only or locked file), and since is when
// such failures began, as long as no write that changed something has
// succeeded after them. Both are zero while writes succeed. Conflicts,
// missing rows and bad input do not count, and neither does a transaction
// that changed nothing (it writes nothing, so it succeeds on a full disk).
// It is cheap: it reads what the writes recorded.
func (db *DB) WriteFailure() (since time.Time, err error) {
	db.writes.mu.Lock()
	defer db.writes.mu.Unlock()
	return db.writes.since, db.writes.err
}

// FreeSpace is the number of bytes the server may still write in the
// database's directory (the filesystem's space available to unprivileged
// users).
func (db *DB) FreeSpace() (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(db.path), &st); err != nil {
		return 0, fmt.Errorf("free space of the database's directory: %w", err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
