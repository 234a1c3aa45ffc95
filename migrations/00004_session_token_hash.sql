-- Sessions are kept under the SHA-256 hash of their token, so that a copy of
-- the database does not hold cookies that sign anyone in, and with the user
-- each is signed in as, so that a password change or "Sign out everywhere"
-- can end all of a user's sessions.
--
-- The tokens stored so far cannot be hashed in SQL: they are dropped, and
-- everyone signs in once more after the upgrade.

-- +goose Up
DROP TABLE sessions;
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    INTEGER, -- NULL while nobody is signed in
    data       BLOB NOT NULL,
    expiry     REAL NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE user_id IS NOT NULL;

-- +goose Down
DROP TABLE sessions;
CREATE TABLE sessions (
    token  TEXT PRIMARY KEY,
    data   BLOB NOT NULL,
    expiry REAL NOT NULL
);
CREATE INDEX sessions_expiry_idx ON sessions (expiry);
