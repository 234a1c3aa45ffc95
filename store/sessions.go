package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/alexedwards/scs/v2"
)

// SessionUser is the session value that holds the signed-in user's id (an
// int64); the store records it with the session, so that DeleteUserSessions
// can find a user's sessions.
const SessionUser = "user_id"

// Sessions keeps web sessions in the sessions table; it is a store for
// github.com/alexedwards/scs (its Store and CtxStore), whose data it
// decodes with scs's default codec to find SessionUser. A session is kept
// under the SHA-256 hash of its token, never the token itself. Expiry is
// Unix seconds; an expired session is never found.
type Sessions struct{ db *DB }

// tokenHash is the key a session token is stored under.
func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// sessionUserOf is the user id in a session's data; nil (stored as NULL)
// when nobody is signed in or the data is not scs's.
func sessionUserOf(b []byte) any {
	_, values, err := scs.GobCodec{}.Decode(b)
	if err != nil {
		return nil
	}
	if id, ok := values[SessionUser].(int64); ok && id != 0 {
		return id
	}
	return nil
}

// Sessions returns the session store.
func (db *DB) Sessions() Sessions { return Sessions{db: db} }

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// FindCtx returns a live session's data.
func (s Sessions) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	var b []byte
	err := s.db.read.QueryRowContext(ctx, `SELECT data FROM sessions WHERE token_hash = ? AND expiry > ?`,
		tokenHash(token), unixSeconds(s.db.now())).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap("find session", err)
	}
	return b, true, nil
}

// CommitCtx stores a session's data, and the user it is signed in as,
// until expiry.
func (s Sessions) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	return s.db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (token_hash, user_id, data, expiry) VALUES (?, ?, ?, ?)
			ON CONFLICT (token_hash) DO UPDATE SET user_id = excluded.user_id, data = excluded.data, expiry = excluded.expiry`,
			tokenHash(token), sessionUserOf(b), b, unixSeconds(expiry))
		return wrap("commit session", err)
	})
}

// DeleteCtx removes a session.
func (s Sessions) DeleteCtx(ctx context.Context, token string) error {
	return s.db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash(token))
		return wrap("delete session", err)
	})
}

// DeleteUserSessions ends every session signed in as the user.
func (s Sessions) DeleteUserSessions(ctx context.Context, userID int64) error {
	return s.db.writeTx(ctx, func(tx txn) error {
		return deleteUserSessions(ctx, tx, userID)
	})
}

func deleteUserSessions(ctx context.Context, tx txn, userID int64) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	return wrap("delete user sessions", err)
}

// DeleteGitHubUserSessions ends every session of the GitHub user with this
// GitHub id, if Kozmic knows them, and says how many it ended.
func (s Sessions) DeleteGitHubUserSessions(ctx context.Context, githubID int64) (int64, error) {
	return s.deleteWhere(ctx, "delete GitHub user sessions", `
		DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE github_id = ?)`, githubID)
}

// DeleteGitHubSessionsExcept ends every session of a GitHub user whose
// login (compared without case) is not in logins, and says how many it
// ended; local users' sessions stay.
func (s Sessions) DeleteGitHubSessionsExcept(ctx context.Context, logins []string) (int64, error) {
	list, err := json.Marshal(append([]string{}, logins...)) // [] for none: null would match nothing
	if err != nil {
		return 0, err
	}
	return s.deleteWhere(ctx, "delete GitHub sessions", `
		DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE github_id IS NOT NULL
			AND lower(github_login) NOT IN (SELECT lower(value) FROM json_each(?)))`, string(list))
}

// deleteWhere runs the DELETE query with args and says how many sessions
// it removed.
func (s Sessions) deleteWhere(ctx context.Context, what, query string, args ...any) (int64, error) {
	var n int64
	err := s.db.writeTx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return wrap(what, err)
		}
		n, err = res.RowsAffected()
		return wrap(what, err)
	})
	return n, err
}

// DeleteExpired removes every expired session and says how many there were.
func (s Sessions) DeleteExpired(ctx context.Context) (int64, error) {
	return s.deleteWhere(ctx, "delete expired sessions", `DELETE FROM sessions WHERE expiry <= ?`, unixSeconds(s.db.now()))
}

// Find, Commit and Delete are the context-free forms scs also asks for.
func (s Sessions) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

func (s Sessions) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

func (s Sessions) Delete(token string) error { return s.DeleteCtx(context.Background(), token) }
