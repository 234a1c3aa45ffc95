-- A link to line N of a log opens the page holding it: job_log_lines says,
-- for each segment of a log stored in frames (see 00015), how many line
-- ends the log has before the segment's first byte (seg), so that finding
-- a line inflates only the segment it begins in, not the log before it.
-- A log written before this version, or with AppendLog, has no rows (or
-- rows for some of its segments): a line is then counted from the last
-- segment with one, or from the log's start.

-- +goose Up
CREATE TABLE job_log_lines (
    job_id INTEGER NOT NULL REFERENCES job_logs (job_id) ON DELETE CASCADE,
    seg    INTEGER NOT NULL,
    lines  INTEGER NOT NULL,
    PRIMARY KEY (job_id, seg)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE job_log_lines;
