-- The admin page's figures, cheap however many builds and logs there are.
--
-- log_totals is one row: the bytes of the stored (compressed) log frames
-- and the number of jobs with a stored log. Triggers keep it as logs are
-- written and deleted (retention, a project's deletion: cascades fire them
-- too), so that reading it reads no log.
--
-- jobs_cache_use finds the last job that started with an install cache
-- image, reading from the newest backwards.

-- +goose Up
CREATE TABLE log_totals (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    frame_bytes INTEGER NOT NULL,
    logs        INTEGER NOT NULL
);
INSERT INTO log_totals (id, frame_bytes, logs) VALUES (1,
    (SELECT COALESCE(SUM(length(data)), 0) FROM job_log_frames),
    (SELECT COUNT(*) FROM job_logs));

-- +goose StatementBegin
CREATE TRIGGER log_totals_frame_added AFTER INSERT ON job_log_frames BEGIN
    UPDATE log_totals SET frame_bytes = frame_bytes + length(NEW.data) WHERE id = 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER log_totals_frame_deleted AFTER DELETE ON job_log_frames BEGIN
    UPDATE log_totals SET frame_bytes = frame_bytes - length(OLD.data) WHERE id = 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER log_totals_log_added AFTER INSERT ON job_logs BEGIN
    UPDATE log_totals SET logs = logs + 1 WHERE id = 1;
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER log_totals_log_deleted AFTER DELETE ON job_logs BEGIN
    UPDATE log_totals SET logs = logs - 1 WHERE id = 1;
END;
-- +goose StatementEnd

CREATE INDEX jobs_cache_use ON jobs (cache_id, cache_scope, started_at) WHERE cache_id <> '';

-- +goose Down
DROP INDEX jobs_cache_use;
DROP TRIGGER log_totals_log_deleted;
DROP TRIGGER log_totals_log_added;
DROP TRIGGER log_totals_frame_deleted;
DROP TRIGGER log_totals_frame_added;
DROP TABLE log_totals;
