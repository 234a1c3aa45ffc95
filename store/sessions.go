package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Sessions keeps web sessions in the sessions table; it is a store for
// github.com/alexedwards/scs (its Store and CtxStore). Expiry is Unix
// seconds; an expired session is never found.
type Sessions struct{ db *DB }

// Sessions returns the session store.
func (db *DB) Sessions() Sessions { return Sessions{db: db} }

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// FindCtx returns a live session's data.
func (s Sessions) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	var b []byte
	err := s.db.read.QueryRowContext(ctx, `SELECT data FROM sessions WHERE token = ? AND expiry > ?`,
		token, unixSeconds(s.db.now())).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap("find session", err)
	}
	return b, true, nil
}

// CommitCtx stores a session's data until expiry.
func (s Sessions) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	return s.db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (token, data, expiry) VALUES (?, ?, ?)
			ON CONFLICT (token) DO UPDATE SET data = excluded.data, expiry = excluded.expiry`, token, b, unixSeconds(expiry))
		return wrap("commit session", err)
	})
}

// DeleteCtx removes a session.
func (s Sessions) DeleteCtx(ctx context.Context, token string) error {
	return s.db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE token = ?`, token)
		return wrap("delete session", err)
	})
}

// DeleteExpired removes every expired session and says how many there were.
func (s Sessions) DeleteExpired(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.writeTx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expiry <= ?`, unixSeconds(s.db.now()))
		if err != nil {
			return wrap("delete expired sessions", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// Find, Commit and Delete are the context-free forms scs also asks for.
func (s Sessions) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

func (s Sessions) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

func (s Sessions) Delete(token string) error { return s.DeleteCtx(context.Background(), token) }
