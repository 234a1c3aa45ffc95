-- The phases of a job (fetch, image, install, build) as the runner ran
-- them, recorded beside its log rather than in it, so that nothing a script
-- prints can forge one: seq orders them; log_offset and line are where the
-- phase's part of the log begins (its byte offset in the log as written and
-- the number of its first line); finished_at is NULL while it runs.

-- +goose Up
CREATE TABLE job_steps (
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    name        TEXT NOT NULL CHECK (name IN ('fetch', 'image', 'install', 'build')),
    log_offset  INTEGER NOT NULL CHECK (log_offset >= 0),
    line        INTEGER NOT NULL CHECK (line >= 1),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    status      TEXT NOT NULL CHECK (status IN ('running', 'success', 'failure', 'error', 'skipped')),
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE job_steps;
