-- Annotations: the ::error::, ::warning:: and ::notice:: lines of a job's
-- output, as the runner finds them (see internal/logcmd).
--
-- job_annotations keeps the first store.MaxAnnotations of a job, one per
-- log line (log_line, numbered as the job page numbers lines). They are
-- part of the log's text, so they go with the log (retention included).
-- line and col are the file position the command named, 0 for none.
--
-- job_annotation_counts counts all of a job's annotations by level, the
-- ones past the limit too; a job without a row has none. It stays when
-- retention deletes the log, as the job's result does.

-- +goose Up
CREATE TABLE job_annotations (
    job_id   INTEGER NOT NULL REFERENCES job_logs (job_id) ON DELETE CASCADE,
    log_line INTEGER NOT NULL,
    level    TEXT NOT NULL CHECK (level IN ('error', 'warning', 'notice')),
    file     TEXT NOT NULL DEFAULT '',
    line     INTEGER NOT NULL DEFAULT 0,
    col      INTEGER NOT NULL DEFAULT 0,
    title    TEXT NOT NULL DEFAULT '',
    message  TEXT NOT NULL,
    PRIMARY KEY (job_id, log_line)
) WITHOUT ROWID;

CREATE TABLE job_annotation_counts (
    job_id   INTEGER PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    errors   INTEGER NOT NULL DEFAULT 0,
    warnings INTEGER NOT NULL DEFAULT 0,
    notices  INTEGER NOT NULL DEFAULT 0
);

-- +goose Down
DROP TABLE job_annotation_counts;
DROP TABLE job_annotations;
