package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// ErrInvalid means the input breaks a rule of the data model (an empty
// required field, for example). Such errors are *InvalidError, whose Msg
// says which rule, in words fit for the person who typed it.
var ErrInvalid = errors.New("invalid")

// InvalidError is an ErrInvalid with its reason.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string        { return "invalid: " + e.Msg }
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(msg string) error { return &InvalidError{Msg: msg} }

// User is a person who can log in: with GitHub (GitHubID set) or with a
// local username and password.
type User struct {
	ID            int64
	GitHubID      int64
	GitHubLogin   string
	Username      string // local login name; empty for GitHub users
	PasswordHash  string
	Name          string
	AvatarURL     string
	Email         string // where failure notifications go; empty: none
	IsAdmin       bool
	ReposSyncedAt time.Time // zero: the repository cache was never filled
	CreatedAt     time.Time
}

// Login is the name the user is known by in pages: the GitHub login or the
// local username.
func (u User) Login() string {
	if u.GitHubLogin != "" {
		return u.GitHubLogin
	}
	return u.Username
}

// GitHubUser is what a GitHub login tells about a user.
type GitHubUser struct {
	ID          int64
	Login       string
	Name        string
	AvatarURL   string
	Email       string // primary address; kept only if the user has none yet
	AccessToken string
	IsAdmin     bool // a Kozmic admin: set or cleared at every sign-in
}

const userColumns = `id, COALESCE(github_id, 0), COALESCE(github_login, ''), COALESCE(username, ''),
	password_hash, name, avatar_url, email, is_admin, repos_synced_at, created_at`

func scanUser(row scanner) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.GitHubID, &u.GitHubLogin, &u.Username, &u.PasswordHash, &u.Name,
		&u.AvatarURL, &u.Email, &u.IsAdmin, msTime{&u.ReposSyncedAt}, msTime{&u.CreatedAt})
	return u, err
}

// UpsertGitHubUser creates or updates the user with gu.ID, storing the access
// token sealed and whether they are an admin. An e-mail address the user
// already set is kept.
func (db *DB) UpsertGitHubUser(ctx context.Context, gu GitHubUser) (User, error) {
	if gu.ID == 0 || gu.Login == "" {
		return User{}, invalid("a GitHub user needs an id and a login")
	}
	token, err := db.seal.seal([]byte(gu.AccessToken))
	if err != nil {
		return User{}, err
	}
	var u User
	err = db.writeTx(ctx, func(tx txn) error {
		row := tx.QueryRowContext(ctx, `
			INSERT INTO users (github_id, github_login, name, avatar_url, email, access_token_enc, is_admin, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (github_id) DO UPDATE SET
				github_login = excluded.github_login,
				name = excluded.name,
				avatar_url = excluded.avatar_url,
				email = CASE WHEN users.email = '' THEN excluded.email ELSE users.email END,
				access_token_enc = excluded.access_token_enc,
				is_admin = excluded.is_admin
			RETURNING `+userColumns,
			gu.ID, gu.Login, gu.Name, gu.AvatarURL, gu.Email, token, gu.IsAdmin, db.nowMS())
		u, err = scanUser(row)
		return wrap("upsert github user", err)
	})
	return u, err
}

// SetGitHubAdmins makes the GitHub users whose logins are in logins
// (compared without case) admins and every other GitHub user not one, and
// returns how many changed; local users keep theirs. The server runs it at
// start, so that someone taken off the list is no admin from then on, not
// only from their next sign-in.
func (db *DB) SetGitHubAdmins(ctx context.Context, logins []string) (int64, error) {
	list, err := json.Marshal(append([]string{}, logins...)) // [] for none: null would match nothing
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.writeTx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, `
			UPDATE users SET is_admin = NOT is_admin
			WHERE github_id IS NOT NULL
			  AND is_admin != (lower(github_login) IN (SELECT lower(value) FROM json_each(?)))`, string(list))
		if err != nil {
			return wrap("set GitHub admins", err)
		}
		n, err = res.RowsAffected()
		return wrap("set GitHub admins", err)
	})
	return n, err
}

var validUsername = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,38}$`)

// CreateLocalUser creates a user who logs in with a username and password
// hash. A taken username is ErrConflict.
func (db *DB) CreateLocalUser(ctx context.Context, username, passwordHash string, admin bool) (User, error) {
	switch {
	case !validUsername.MatchString(username):
		return User{}, invalid("a username has 1 to 39 letters, digits, dots, dashes or underscores, and starts with a letter or digit")
	case passwordHash == "":
		return User{}, invalid("a local user needs a password")
	}
	var u User
	err := db.writeTx(ctx, func(tx txn) error {
		row := tx.QueryRowContext(ctx, `
			INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?)
			RETURNING `+userColumns, username, passwordHash, admin, db.nowMS())
		var err error
		u, err = scanUser(row)
		return wrap("insert local user", err)
	})
	return u, err
}

// UserByID returns the user with the given id, or ErrNotFound.
func (db *DB) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(db.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id))
	return u, wrap("get user", err)
}

// UserAccessToken returns the user's GitHub access token, unsealed; empty
// for local users.
func (db *DB) UserAccessToken(ctx context.Context, id int64) (string, error) {
	return db.readSealed(ctx, "get access token", `SELECT access_token_enc FROM users WHERE id = ?`, id)
}

// DeleteUser deletes a user and their memberships. A user who still owns a
// project cannot be deleted: ErrConflict.
func (db *DB) DeleteUser(ctx context.Context, id int64) error {
	return db.writeTx(ctx, func(tx txn) error {
		return execOne(ctx, tx, "delete user", `DELETE FROM users WHERE id = ?`, id)
	})
}

// execOne runs a statement that must touch exactly one row; none is ErrNotFound.
func execOne(ctx context.Context, tx txn, step, query string, args ...any) error {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return wrap(step, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrap(step, err)
	} else if n == 0 {
		return fmt.Errorf("%s: %w", step, ErrNotFound)
	}
	return nil
}

// SetUserEmail sets the address a user's notifications go to; empty means none.
func (db *DB) SetUserEmail(ctx context.Context, id int64, email string) error {
	return db.writeTx(ctx, func(tx txn) error {
		return execOne(ctx, tx, "set user e-mail", `UPDATE users SET email = ? WHERE id = ?`, email, id)
	})
}

// UserByUsername returns the local user called username (case-insensitive),
// or ErrNotFound.
func (db *DB) UserByUsername(ctx context.Context, username string) (User, error) {
	u, err := scanUser(db.read.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE username = ?`, username))
	return u, wrap("get user by username", err)
}

// LocalUsers lists the users who log in with a username, by username.
func (db *DB) LocalUsers(ctx context.Context) ([]User, error) {
	return queryAll(ctx, db.read, "list local users", scanUser,
		`SELECT `+userColumns+` FROM users WHERE username IS NOT NULL ORDER BY username`)
}

// SetPasswordHash replaces a local user's password hash and ends every
// session signed in as the user. A user without a
// username (a GitHub user) is ErrNotFound: they have no password here.
func (db *DB) SetPasswordHash(ctx context.Context, userID int64, hash string) error {
	if hash == "" {
		return invalid("a password is needed")
	}
	return db.writeTx(ctx, func(tx txn) error {
		if err := execOne(ctx, tx, "set password", `UPDATE users SET password_hash = ? WHERE id = ? AND username IS NOT NULL`, hash, userID); err != nil {
			return err
		}
		return deleteUserSessions(ctx, tx, userID)
	})
}
