-- Logs written once in their final form, and a file that shrinks.
--
-- A job's log is stored as frames (job_log_frames) as it is written: pos is
-- the offset of the frame's first byte in the log as written, size its
-- bytes as written, data those bytes deflated and ended with a sync flush.
-- A segment is one deflate stream over the frames from the one at seg (where
-- pos = seg) to the next segment; times holds the arrival times of the
-- frame's bytes as uvarint pairs (see store/logframes.go), NULL where none
-- were kept. job_logs.compressed is 1 for a log in frames.
--
-- A compressed chunk of before (a complete deflate stream of one segment)
-- becomes a segment of one frame without times. A plain chunk stays until
-- the server converts its log at start (CompressFinishedLogs), which needs
-- a deflater: SQL has none.
--
-- The file then keeps auto_vacuum = INCREMENTAL, so that retention gives the
-- pages of deleted logs back (PRAGMA incremental_vacuum). Changing it takes
-- a VACUUM, which cannot run in a transaction: the conversion is a
-- transaction of its own before it, and each step can run again should the
-- VACUUM fail (it needs free disk as large as the file).

-- +goose NO TRANSACTION
-- +goose Up
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS job_log_frames (
    job_id INTEGER NOT NULL REFERENCES job_logs (job_id) ON DELETE CASCADE,
    pos    INTEGER NOT NULL,
    seg    INTEGER NOT NULL,
    size   INTEGER NOT NULL,
    data   BLOB NOT NULL,
    times  BLOB,
    PRIMARY KEY (job_id, pos)
) WITHOUT ROWID;
INSERT INTO job_log_frames (job_id, pos, seg, size, data)
    SELECT c.job_id, c.pos, c.pos, LEAD(c.pos, 1, l.size) OVER (PARTITION BY c.job_id ORDER BY c.pos) - c.pos, c.data
    FROM job_log_chunks c JOIN job_logs l ON l.job_id = c.job_id WHERE l.compressed = 1;
DELETE FROM job_log_chunks WHERE job_id IN (SELECT job_id FROM job_logs WHERE compressed = 1);
COMMIT;
PRAGMA auto_vacuum = INCREMENTAL;
VACUUM;

-- +goose Down
-- Each segment goes back to one chunk: its frames joined, and an empty
-- final block (a stored block of length 0) appended so that a segment whose
-- stream was never ended is a complete stream, as a compressed chunk was.
-- Arrival times are lost. auto_vacuum stays: the old schema works with it.
BEGIN IMMEDIATE;
INSERT INTO job_log_chunks (job_id, pos, data)
    SELECT job_id, seg, CAST(group_concat(data, x'' ORDER BY pos) || x'010000ffff' AS BLOB)
    FROM job_log_frames GROUP BY job_id, seg;
DROP TABLE job_log_frames;
COMMIT;
