-- A job that was running when the server stopped is marked interrupted, so
-- that crash recovery re-runs it once and not forever.

-- +goose Up
ALTER TABLE jobs ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1));

-- +goose Down
ALTER TABLE jobs DROP COLUMN interrupted;
