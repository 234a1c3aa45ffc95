// Package store keeps all of Kozmic's state in one SQLite file. It is the only
// package that speaks SQL; the domain types live here too.
//
// Every exported method takes a context first, runs as one transaction (all or
// nothing), and reports missing rows as ErrNotFound and broken unique
// constraints as ErrConflict.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrNotFound means the row asked for does not exist (or is not visible).
	ErrNotFound = errors.New("not found")
	// ErrConflict means the change would break a uniqueness rule or a state
	// transition rule, for example a second project with the same name.
	ErrConflict = errors.New("conflict")
	// ErrWrongKey means the secret key cannot open what this database holds:
	// it is not the key the database was created with.
	ErrWrongKey = errors.New("the secret key does not match the one this database was created with")
)

// DB is an open Kozmic database. Writes go through a pool of exactly one
// connection whose transactions begin IMMEDIATE, so writers queue in Go
// instead of failing with SQLITE_BUSY; reads use a separate pool that can run
// in parallel with the writer thanks to WAL.
type DB struct {
	write    *sql.DB
	read     *sql.DB
	stmts    *stmtCache // the writer's prepared statements
	reads    *stmtCache // the reader pool's prepared statements, of reads every webhook makes
	builds   buildBatcher
	seal     *sealer
	now      func() time.Time
	instance string
	path     string // absolute
	writes   writeHealth
	writeTxs atomic.Int64 // write transactions begun, for WriteTransactions
}

// Options configure Open.
type Options struct {
	// SecretKey seals secrets at rest; at least 32 bytes. The first Open of a
	// database records a check value, and later Opens with another key fail
	// with ErrWrongKey.
	SecretKey []byte
	// Migrations holds goose SQL files; pending ones are applied by Open.
	Migrations fs.FS
	// Logger receives one line per applied migration. Nil discards.
	Logger *slog.Logger
	// ReadOnly opens an existing database without changing it, for tools
	// that run beside the server (Backup): nothing is created or migrated,
	// the secret key is checked against the one recorded, no write lock is
	// ever taken, and every method that writes fails.
	ReadOnly bool
}

// Open opens the database at path, creating it if needed, applies pending
// migrations (each in its own transaction: a failing one is rolled back and
// Open returns its error) and checks the secret key.
func Open(ctx context.Context, path string, opt Options) (*DB, error) {
	seal, err := newSealer(opt.SecretKey)
	if err != nil {
		return nil, err
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("database path: %w", err)
	}
	if opt.ReadOnly {
		return openReadOnly(ctx, abs, seal)
	}

	// Created here rather than by SQLite so that it is private from the
	// start: it holds session tokens. SQLite gives -wal and -shm the same mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	f.Close()

	write, err := sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	write.SetConnMaxLifetime(0)
	db := &DB{write: write, stmts: newStmtCache(write), seal: seal, now: time.Now, path: abs}

	if err := db.migrate(ctx, opt.Migrations, log); err != nil {
		write.Close()
		return nil, err
	}

	// The reader pool is opened after migrating so that it never sees a
	// half-built schema.
	db.read, err = sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	db.read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	db.reads = newStmtCache(db.read)

	if err := db.checkKey(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if db.instance, err = db.ensureInstanceID(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// WriteTransactions says how many write transactions the database has
// begun since Open, whether they committed or not: what a caller compares
// before and after some work to tell whether that work wrote.
func (db *DB) WriteTransactions() int64 { return db.writeTxs.Load() }

// InstanceID is a random id made when the database was created. It names
// this Kozmic on a Docker engine that others may share: each removes only
// the containers it labelled with its own id.
func (db *DB) InstanceID() string { return db.instance }

func (db *DB) ensureInstanceID(ctx context.Context) (string, error) {
	var id []byte
	err := db.writeTx(ctx, func(tx txn) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'instance_id'`).Scan(&id)
		if !errors.Is(err, sql.ErrNoRows) {
			return wrap("read instance id", err)
		}
		raw := make([]byte, 8)
		rand.Read(raw)
		id = []byte(hex.EncodeToString(raw))
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('instance_id', ?)`, id)
		return wrap("record instance id", err)
	})
	return string(id), err
}

func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Set("_txlock", "immediate")
	}
	// A file: URI escapes '?', '#' and '%' in the path, which a plain name cannot.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

func (db *DB) migrate(ctx context.Context, migrations fs.FS, log *slog.Logger) error {
	if migrations == nil {
		return errors.New("open database: no migrations given")
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, migrations)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	// A file with tables but no migration history belongs to another
	// program: refuse it before goose writes its version table into it.
	var tables, history int
	err = db.write.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(*) FILTER (WHERE name = 'goose_db_version')
		FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).Scan(&tables, &history)
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	if tables > 0 && history == 0 {
		return errors.New("migrate database: the file holds tables but no Kozmic migration history; is it another program's database?")
	}
	// WAL is a property of the file, so it is set once here rather than by
	// every connection, and never on a file that was refused above.
	if _, err := db.write.ExecContext(ctx, `PRAGMA journal_mode = WAL`); err != nil {
		return fmt.Errorf("enable WAL: %w", err)
	}
	results, err := p.Up(ctx)
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		results = partial.Applied
	}
	for _, r := range results {
		log.Info("applied migration", "version", r.Source.Version, "file", filepath.Base(r.Source.Path), "duration", r.Duration)
	}
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}

// SchemaVersion returns the number of the newest applied migration.
func (db *DB) SchemaVersion(ctx context.Context) (int64, error) {
	var v int64
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// Ping checks that the database answers a read.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.read.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// Close lets the builds being written finish, refuses later ones and
// closes both pools.
func (db *DB) Close() error {
	db.builds.close()
	var err error
	db.reads.close()
	if db.read != nil {
		err = db.read.Close()
	}
	db.stmts.close()
	return errors.Join(err, db.write.Close())
}

const keyCheckPlaintext = "kozmic key check"

// checkKey seals a known value the first time and opens it every later time,
// so a changed KOZMIC_SECRET_KEY is caught at start and not at the first
// webhook.
func (db *DB) checkKey(ctx context.Context) error {
	return db.writeTx(ctx, func(tx txn) error {
		var sealed []byte
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'key_check'`).Scan(&sealed)
		if errors.Is(err, sql.ErrNoRows) {
			sealed, err = db.seal.seal([]byte(keyCheckPlaintext))
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('key_check', ?)`, sealed)
			return wrap("record key check", err)
		}
		if err != nil {
			return fmt.Errorf("read key check: %w", err)
		}
		return db.opensKeyCheck(sealed)
	})
}

// opensKeyCheck says whether the sealed key check opens with this
// database's key: ErrWrongKey if not.
func (db *DB) opensKeyCheck(sealed []byte) error {
	plain, err := db.seal.open(sealed)
	if err != nil || string(plain) != keyCheckPlaintext {
		return ErrWrongKey
	}
	return nil
}

// writeTx runs fn in one IMMEDIATE transaction on the writer connection and
// commits if fn returns nil; any error or panic rolls everything back. It
// records a failure of the disk, and a success after one, for WriteFailure.
func (db *DB) writeTx(ctx context.Context, fn func(txn) error) (err error) {
	db.writeTxs.Add(1)
	sqlTx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		db.writes.failed(err, db.now())
		return fmt.Errorf("begin: %w", err)
	}
	// While writes fail, only a transaction that changed rows shows that
	// they work again: one that changed nothing commits even on a full disk.
	// Counting costs two queries, so only then.
	failing := db.writes.failing()
	var changesBefore int64
	if failing {
		if err = sqlTx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&changesBefore); err != nil {
			sqlTx.Rollback()
			return fmt.Errorf("count changes: %w", err)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			sqlTx.Rollback()
			panic(p)
		}
		if err != nil {
			sqlTx.Rollback()
			db.writes.failed(err, db.now())
		}
		// The connection is free again: prepare what this transaction met first.
		db.stmts.prepareQueued(context.WithoutCancel(ctx))
	}()
	if err = fn(txn{Tx: sqlTx, cache: db.stmts}); err != nil {
		return err
	}
	var changesAfter int64
	if failing {
		if err = sqlTx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&changesAfter); err != nil {
			return fmt.Errorf("count changes: %w", err)
		}
	}
	if err = sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if failing && changesAfter > changesBefore {
		db.writes.succeeded()
	}
	return nil
}

// readTx runs fn in one read-only transaction, so that several queries see
// one snapshot.
func (db *DB) readTx(ctx context.Context, fn func(txn) error) error {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(txn{Tx: tx})
}

// wrap names the failed step and turns constraint violations into
// ErrConflict, keeping the driver's message for logs.
func wrap(step string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", step, ErrNotFound)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		code := se.Code()
		// A foreign key failure here is a RESTRICT (a user who still owns
		// projects): a conflict with existing rows, like a duplicate. SQLite
		// reports RESTRICT actions with the trigger code, hence the message test.
		fk := code&0xff == sqlite3.SQLITE_CONSTRAINT && strings.Contains(se.Error(), "FOREIGN KEY")
		if fk || code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return fmt.Errorf("%s: %w (%s)", step, ErrConflict, constraintDetail(se))
		}
	}
	return fmt.Errorf("%s: %w", step, err)
}

func constraintDetail(se *sqlite.Error) string {
	msg := se.Error()
	if i := strings.LastIndex(msg, "constraint failed: "); i >= 0 {
		return msg[i:]
	}
	return msg
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// queryer is a pool or a transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queryAll runs a query and reads every row with scan; step names it in errors.
func queryAll[T any](ctx context.Context, q queryer, step string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(step, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, wrap(step, err)
		}
		out = append(out, v)
	}
	return out, wrap(step, rows.Err())
}

// scanValue reads a one-column row.
func scanValue[T any](row scanner) (T, error) {
	var v T
	err := row.Scan(&v)
	return v, err
}

// readSealed reads one sealed column and opens it; NULL reads as "".
func (db *DB) readSealed(ctx context.Context, step, query string, args ...any) (string, error) {
	var sealed []byte
	if err := db.read.QueryRowContext(ctx, query, args...).Scan(&sealed); err != nil {
		return "", wrap(step, err)
	}
	if sealed == nil {
		return "", nil
	}
	plain, err := db.seal.open(sealed)
	if err != nil {
		return "", fmt.Errorf("%s: %w", step, err)
	}
	return string(plain), nil
}

// ms converts a time to the stored form: Unix milliseconds, or NULL for the zero time.
func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// msTime scans a Unix-millisecond column (or NULL) into a UTC time.Time.
type msTime struct{ t *time.Time }

func (s msTime) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*s.t = time.Time{}
	case int64:
		*s.t = time.UnixMilli(v).UTC()
	default:
		return fmt.Errorf("time column holds %T", v)
	}
	return nil
}

// nowMS is the current time as stored.
func (db *DB) nowMS() int64 { return db.now().UnixMilli() }
