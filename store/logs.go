package store

import (
	"bytes"
	"compress/flate"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// LogInfo describes a job's stored log without its bytes.
type LogInfo struct {
	Size       int64 // bytes of the log as written: what ReadLog returns
	Truncated  bool  // storing stopped at the size limit
	Compressed bool  // the job finished and its log is stored compressed
	// DeletedAt is when retention (DeleteLogsBefore) deleted the log, which
	// is then empty; zero while the log is kept.
	DeletedAt time.Time
}

// AppendLog adds data at the end of a job's stored log and returns the log's
// new size. If truncated is true the log is marked as cut short (data is
// then the notice saying so). A missing job is ErrNotFound; a log that was
// compressed or deleted takes no more bytes: ErrConflict.
func (db *DB) AppendLog(ctx context.Context, jobID int64, data []byte, truncated bool) (int64, error) {
	var size int64
	err := db.writeTx(ctx, func(tx txn) error {
		now := db.nowMS()
		_, err := tx.ExecContext(ctx, `INSERT INTO job_logs (job_id, updated_at)
			SELECT id, ? FROM jobs WHERE id = ? AND log_deleted_at IS NULL ON CONFLICT (job_id) DO NOTHING`, now, jobID)
		if err != nil {
			return wrap("create log", err)
		}
		err = tx.QueryRowContext(ctx, `UPDATE job_logs SET size = size + ?, truncated = truncated OR ?, updated_at = ?
			WHERE job_id = ? AND compressed = 0 RETURNING size`, len(data), truncated, now, jobID).Scan(&size)
		if errors.Is(err, sql.ErrNoRows) {
			return appendRefused(ctx, tx, jobID)
		} else if err != nil {
			return wrap("append log", err)
		}
		if len(data) == 0 {
			return nil
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO job_log_chunks (job_id, pos, data) VALUES (?, ?, ?)`,
			jobID, size-int64(len(data)), data)
		return wrap("append log chunk", err)
	})
	return size, err
}

// appendRefused says why AppendLog found no log to add to. It runs only
// then, to keep the common path at two statements.
func appendRefused(ctx context.Context, tx txn, jobID int64) error {
	var deleted, compressed bool
	err := tx.QueryRowContext(ctx, `SELECT j.log_deleted_at IS NOT NULL, COALESCE(l.compressed, 0)
		FROM jobs j LEFT JOIN job_logs l ON l.job_id = j.id WHERE j.id = ?`, jobID).Scan(&deleted, &compressed)
	if err != nil {
		return wrap("append log", err) // no such job
	}
	what := "compressed"
	if deleted {
		what = "deleted"
	}
	return fmt.Errorf("append log: the log of job %d was %s: %w", jobID, what, ErrConflict)
}

// LogInfoOf returns the size of a job's log and how it is kept. A job that
// has logged nothing yet has an empty log; a missing job is ErrNotFound.
func (db *DB) LogInfoOf(ctx context.Context, jobID int64) (LogInfo, error) {
	var li LogInfo
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(l.size, 0), COALESCE(l.truncated, 0),
			COALESCE(l.compressed, 0), j.log_deleted_at
		FROM jobs j LEFT JOIN job_logs l ON l.job_id = j.id WHERE j.id = ?`, jobID).
		Scan(&li.Size, &li.Truncated, &li.Compressed, msTime{&li.DeletedAt})
	return li, wrap("get log info", err)
}

// ReadLog returns a job's log from byte offset from, gathering stored chunks
// until at least max bytes are read or the log ends; nothing when from is at
// or past the end. A reader that passes from plus what it got as the next
// offset sees every byte once, without gaps or repeats, also across
// CompressLog: a compressed log reads the same bytes at the same offsets.
func (db *DB) ReadLog(ctx context.Context, jobID, from int64, max int) ([]byte, error) {
	if from < 0 {
		return nil, invalid("negative log offset")
	}
	// Start at the chunk that holds byte `from`: the last one beginning at or
	// before it. One statement, so the chunks and the compressed flag come
	// from one snapshot even while CompressLog swaps them.
	rows, err := db.read.QueryContext(ctx, `SELECT c.pos, c.data, l.compressed
		FROM job_log_chunks c JOIN job_logs l ON l.job_id = c.job_id
		WHERE c.job_id = ?1 AND c.pos >= (SELECT COALESCE(MAX(pos), 0) FROM job_log_chunks WHERE job_id = ?1 AND pos <= ?2)
		ORDER BY c.pos`, jobID, from)
	if err != nil {
		return nil, wrap("read log", err)
	}
	defer rows.Close()
	var out []byte
	for rows.Next() && len(out) < max {
		var pos int64
		var data []byte
		var compressed bool
		if err := rows.Scan(&pos, &data, &compressed); err != nil {
			return nil, wrap("read log", err)
		}
		skip := from - pos
		if skip < 0 {
			skip = 0
		}
		if compressed {
			if out, err = inflateInto(out, data, skip, max-len(out)); err != nil {
				return nil, fmt.Errorf("read log: job %d, segment at %d: %w", jobID, pos, err)
			}
			continue
		}
		if skip >= int64(len(data)) {
			continue
		}
		out = append(out, data[skip:]...)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("read log", err)
	}
	return out, nil
}

// logSegmentSize is how many bytes of the log as written one compressed
// chunk holds. A read inflates only the segments it touches, each from its
// start, so this bounds the work of reading a page of however long a log;
// deflate looks back only 32 KiB, so longer segments would hardly compress
// better.
const logSegmentSize = 256 << 10

// logCompression is the deflate level of finished logs. Compressing runs
// once per job and off the writer; reading runs on every page view, and
// inflating is about as fast whatever the level.
const logCompression = flate.DefaultCompression

// CompressLog stores a finished job's log deflated, in segments of 256 KiB
// of the log as written, after which ReadLog returns the same bytes at the
// same offsets, LogInfoOf reports it compressed and AppendLog refuses it
// (ErrConflict). A job that has not finished is ErrConflict: its log may
// still grow, so callers compress only after storing the job's final status,
// which the runner stores only once the job's log is closed. A log already
// compressed or deleted is left as it is (nil), so calling again is harmless;
// a missing job is ErrNotFound.
//
// The log is read and compressed from a read snapshot, without holding the
// writer; replacing the plain chunks with the compressed ones is one write
// transaction, which fails with ErrConflict if the log grew in between.
// Readers see one form or the other, never a mix.
func (db *DB) CompressLog(ctx context.Context, jobID int64) error {
	var size int64
	var segs []logSegment
	err := db.readTx(ctx, func(tx txn) error {
		var status JobStatus
		var hasLog, compressed bool
		err := tx.QueryRowContext(ctx, `SELECT j.status, l.job_id IS NOT NULL, COALESCE(l.size, 0), COALESCE(l.compressed, 0)
			FROM jobs j LEFT JOIN job_logs l ON l.job_id = j.id WHERE j.id = ?`, jobID).Scan(&status, &hasLog, &size, &compressed)
		if err != nil {
			return wrap("get log", err)
		}
		if !status.Finished() {
			return fmt.Errorf("compress log: job %d is %s, its log may still grow: %w", jobID, status, ErrConflict)
		}
		if !hasLog || compressed {
			return nil
		}
		segs, err = deflateLog(ctx, tx, jobID, size)
		if segs == nil {
			segs = []logSegment{} // an empty log: marked compressed all the same
		}
		return err
	})
	if err != nil || segs == nil {
		return err
	}
	return db.writeTx(ctx, func(tx txn) error {
		var now int64
		var compressed bool
		err := tx.QueryRowContext(ctx, `SELECT size, compressed FROM job_logs WHERE job_id = ?`, jobID).Scan(&now, &compressed)
		if errors.Is(err, sql.ErrNoRows) || compressed {
			return nil // deleted by retention, or compressed by another call, meanwhile
		} else if err != nil {
			return wrap("get log", err)
		}
		if now != size {
			return fmt.Errorf("compress log: job %d: the log grew from %d to %d bytes while it was compressed: %w", jobID, size, now, ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM job_log_chunks WHERE job_id = ?`, jobID); err != nil {
			return wrap("delete plain log chunks", err)
		}
		for _, s := range segs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO job_log_chunks (job_id, pos, data) VALUES (?, ?, ?)`, jobID, s.pos, s.data); err != nil {
				return wrap("store compressed log", err)
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE job_logs SET compressed = 1 WHERE job_id = ?`, jobID)
		return wrap("mark log compressed", err)
	})
}

// logSegment is one compressed chunk: pos is the offset of its first byte
// in the log as written.
type logSegment struct {
	pos  int64
	data []byte
}

// deflateLog reads a job's plain chunks in order and deflates them into
// segments of logSegmentSize bytes (the last one shorter). The chunks must
// join without gaps into size bytes.
func deflateLog(ctx context.Context, tx txn, jobID, size int64) ([]logSegment, error) {
	rows, err := tx.QueryContext(ctx, `SELECT pos, data FROM job_log_chunks WHERE job_id = ? ORDER BY pos`, jobID)
	if err != nil {
		return nil, wrap("read log", err)
	}
	defer rows.Close()
	var segs []logSegment
	buf := new(bytes.Buffer)
	zw, err := flate.NewWriter(buf, logCompression)
	if err != nil {
		return nil, err
	}
	var start, n int64 // the current segment's offset, and the bytes deflated so far
	cut := func() error {
		if err := zw.Close(); err != nil {
			return err
		}
		segs = append(segs, logSegment{pos: start, data: buf.Bytes()})
		buf = new(bytes.Buffer)
		zw.Reset(buf)
		start = n
		return nil
	}
	for rows.Next() {
		var pos int64
		var data []byte
		if err := rows.Scan(&pos, &data); err != nil {
			return nil, wrap("read log", err)
		}
		if pos != n {
			return nil, fmt.Errorf("compress log: job %d has a chunk at %d where %d was expected", jobID, pos, n)
		}
		for len(data) > 0 {
			k := min(int64(len(data)), start+logSegmentSize-n)
			if _, err := zw.Write(data[:k]); err != nil {
				return nil, err
			}
			n += k
			data = data[k:]
			if n == start+logSegmentSize {
				if err := cut(); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("read log", err)
	}
	if n != size {
		return nil, fmt.Errorf("compress log: job %d has %d bytes of chunks for a log of %d", jobID, n, size)
	}
	if n > start {
		if err := cut(); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// inflaters keeps flate readers for reuse: each holds a 32 KiB window and
// tables that a page read would otherwise allocate anew.
var inflaters sync.Pool

// inflateInto appends to dst up to n bytes of a compressed segment, from
// byte skip of its content on. A segment shorter than skip adds nothing.
func inflateInto(dst, seg []byte, skip int64, n int) ([]byte, error) {
	src := bytes.NewReader(seg)
	zr, _ := inflaters.Get().(io.ReadCloser)
	if zr == nil {
		zr = flate.NewReader(src)
	} else if err := zr.(flate.Resetter).Reset(src, nil); err != nil {
		return dst, err
	}
	defer inflaters.Put(zr)
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, zr, skip); errors.Is(err, io.EOF) {
			return dst, nil
		} else if err != nil {
			return dst, err
		}
	}
	out := bytes.NewBuffer(dst)
	_, err := out.ReadFrom(io.LimitReader(zr, int64(n)))
	return out.Bytes(), err
}

// CompressFinishedLogs compresses up to limit logs of finished jobs that are
// still stored as written, oldest first, and returns how many it
// compressed: the logs whose compression was missed because the server
// stopped while the job ran (the next start marks it interrupted), and logs
// written before compression existed. It stops at the first failure.
func (db *DB) CompressFinishedLogs(ctx context.Context, limit int) (int, error) {
	ids, err := queryAll(ctx, db.read, "find uncompressed logs", scanValue[int64], `SELECT l.job_id
		FROM job_logs l JOIN jobs j ON j.id = l.job_id
		WHERE l.compressed = 0 AND j.status IN ('success', 'failure', 'error')
		ORDER BY l.job_id LIMIT ?`, limit)
	if err != nil {
		return 0, err
	}
	for i, id := range ids {
		if err := db.CompressLog(ctx, id); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// Retention batches: each one deletes the logs of at most this many jobs,
// and (but for a single larger log) at most this many bytes of log as
// written, in one write transaction, so the writer is never held for long.
const (
	retentionBatchJobs  = 100
	retentionBatchBytes = 64 << 20
)

// DeleteLogsBefore deletes the logs of the jobs that finished before cutoff,
// chunks and log rows, and returns how many it deleted. The jobs and builds
// stay; LogInfoOf then tells when each log was deleted. Enqueued and running
// jobs keep their logs. It works oldest first in batches of at most 100 jobs
// and 64 MiB of log, each its own write transaction, so webhooks and job
// output wait for one batch at most; when ctx ends it stops between batches,
// what it deleted so far staying deleted. The pages freed are reused by
// later writes: the file stops growing but does not shrink.
func (db *DB) DeleteLogsBefore(ctx context.Context, cutoff time.Time) (int, error) {
	return db.deleteLogsBefore(ctx, cutoff, retentionBatchJobs, retentionBatchBytes)
}

func (db *DB) deleteLogsBefore(ctx context.Context, cutoff time.Time, batchJobs int, batchBytes int64) (int, error) {
	type oldJob struct {
		id, size int64
		hasLog   bool
	}
	deleted := 0
	for {
		if err := ctx.Err(); err != nil {
			return deleted, err
		}
		var done, logs int
		err := db.writeTx(ctx, func(tx txn) error {
			done, logs = 0, 0
			// Through the partial index jobs_log_kept: jobs leave it as
			// they are done, so this reads only the batch.
			jobs, err := queryAll(ctx, tx, "find old logs", func(row scanner) (oldJob, error) {
				var j oldJob
				return j, row.Scan(&j.id, &j.hasLog, &j.size)
			}, `SELECT j.id, l.job_id IS NOT NULL, COALESCE(l.size, 0)
				FROM jobs j LEFT JOIN job_logs l ON l.job_id = j.id
				WHERE j.log_deleted_at IS NULL AND j.finished_at < ? ORDER BY j.finished_at LIMIT ?`,
				cutoff.UnixMilli(), batchJobs)
			if err != nil {
				return err
			}
			now := db.nowMS()
			var total int64
			for _, j := range jobs {
				if done > 0 && total+j.size > batchBytes {
					break
				}
				total += j.size
				done++
				if j.hasLog {
					if _, err := tx.ExecContext(ctx, `DELETE FROM job_log_chunks WHERE job_id = ?`, j.id); err != nil {
						return wrap("delete log chunks", err)
					}
					if _, err := tx.ExecContext(ctx, `DELETE FROM job_logs WHERE job_id = ?`, j.id); err != nil {
						return wrap("delete log", err)
					}
					logs++
				}
				// Also a job that never logged: it leaves the index above.
				if _, err := tx.ExecContext(ctx, `UPDATE jobs SET log_deleted_at = ? WHERE id = ?`, now, j.id); err != nil {
					return wrap("mark log deleted", err)
				}
			}
			return nil
		})
		if err != nil {
			return deleted, err
		}
		deleted += logs
		if done == 0 {
			return deleted, nil
		}
	}
}
