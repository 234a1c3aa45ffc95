-- Log retention (KOZMIC_KEEP_LOGS) and compressed finished logs.
--
-- Retention deletes a finished job's job_logs row and its chunks but keeps the
-- job, stamping log_deleted_at so that its page can say the log was deleted.
-- A compressed log (job_logs.compressed = 1) keeps the chunk layout: pos is
-- still the offset of the segment's first byte in the log as written, and
-- data is that segment deflated.

-- +goose Up
ALTER TABLE jobs ADD COLUMN log_deleted_at INTEGER;

-- Retention walks the finished jobs whose logs it has not deleted yet, oldest
-- first; jobs drop out of this index once done, so each run reads only what
-- it deletes and not the whole history.
CREATE INDEX jobs_log_kept ON jobs (finished_at) WHERE log_deleted_at IS NULL AND finished_at IS NOT NULL;

-- Logs still stored as written: the running ones, and finished ones that
-- missed compression (a server stopped mid-job, or from before version 3).
CREATE INDEX job_logs_uncompressed ON job_logs (job_id) WHERE compressed = 0;

-- +goose Down
-- Compressed logs stay compressed: SQL cannot inflate them, and a Kozmic
-- before version 3 would show their bytes as they are stored.
DROP INDEX job_logs_uncompressed;
DROP INDEX jobs_log_kept;
ALTER TABLE jobs DROP COLUMN log_deleted_at;
