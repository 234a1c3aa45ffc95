package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LogInfo describes a job's stored log without its bytes.
type LogInfo struct {
	Size      int64 // bytes of the log as written: what ReadLog returns
	Truncated bool  // storing stopped at the size limit
	// Compressed is false only for a log stored plain before version 15
	// that CompressFinishedLogs has not converted yet.
	Compressed bool
	// DeletedAt is when retention (DeleteLogsBefore) deleted the log, which
	// is then empty; zero while the log is kept.
	DeletedAt time.Time
}

// AppendLogFrames stores frames of a job's log that its LogEncoder made,
// in one write transaction, and returns the log's new size. The frames must
// follow the log's stored bytes without a gap: else, and for a log that was
// deleted or awaits conversion from the format before version 15, it is
// ErrConflict, and nothing is stored. A missing job is ErrNotFound. No
// frames makes an empty log.
func (db *DB) AppendLogFrames(ctx context.Context, jobID int64, frames []LogFrame) (int64, error) {
	var size int64
	err := db.writeTx(ctx, func(tx txn) error {
		if err := createLog(ctx, tx, db.nowMS(), jobID); err != nil {
			return err
		}
		at := int64(-1) // no frames: any size will do
		if len(frames) > 0 {
			at = frames[0].pos
		}
		var err error
		size, err = db.appendFrames(ctx, tx, jobID, at, frames, false)
		return err
	})
	return size, err
}

// AppendLog stores data as the next bytes of a job's log, in segments of
// its own and without arrival times, and returns the log's new size. If
// truncated is true the log is marked as cut short (data is then the
// notice saying so). A missing job is ErrNotFound; a log that was deleted
// takes no more bytes: ErrConflict. Jobs' output goes through a LogEncoder
// and AppendLogFrames, which keeps one deflate stream per segment.
func (db *DB) AppendLog(ctx context.Context, jobID int64, data []byte, truncated bool) (int64, error) {
	var size int64
	err := db.writeTx(ctx, func(tx txn) error {
		if err := createLog(ctx, tx, db.nowMS(), jobID); err != nil {
			return err
		}
		var at int64
		err := tx.QueryRowContext(ctx, `SELECT size FROM job_logs WHERE job_id = ?`, jobID).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			return appendRefused(ctx, tx, jobID, 0)
		} else if err != nil {
			return wrap("append log", err)
		}
		e := &LogEncoder{pos: at, fresh: true, lines: -1} // the lines before at are not counted
		size, err = db.appendFrames(ctx, tx, jobID, at, e.Encode(data, nil, false), truncated)
		return err
	})
	return size, err
}

// createLog makes the log row of a job that has none, unless its log was
// deleted. A missing job makes nothing: appendFrames then says why.
func createLog(ctx context.Context, tx txn, now, jobID int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO job_logs (job_id, compressed, updated_at)
		SELECT id, 1, ? FROM jobs WHERE id = ? AND log_deleted_at IS NULL ON CONFLICT (job_id) DO NOTHING`, now, jobID)
	return wrap("create log", err)
}

// appendFrames adds frames beginning at offset at (any offset when at is
// negative) to a log stored in frames, and returns its new size.
func (db *DB) appendFrames(ctx context.Context, tx txn, jobID, at int64, frames []LogFrame, truncated bool) (int64, error) {
	var n int64
	for _, f := range frames {
		n += int64(f.size)
		truncated = truncated || f.truncated
	}
	var size int64
	err := tx.QueryRowContext(ctx, `UPDATE job_logs SET size = size + ?1, truncated = truncated OR ?2, updated_at = ?3
		WHERE job_id = ?4 AND compressed = 1 AND (?5 < 0 OR size = ?5) RETURNING size`,
		n, truncated, db.nowMS(), jobID, at).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, appendRefused(ctx, tx, jobID, at)
	} else if err != nil {
		return 0, wrap("append log", err)
	}
	return size, insertFrames(ctx, tx, jobID, frames)
}

// insertFrames stores the frames of a job's log, and for each that starts
// a segment the line ends before it, where its encoder counted them
// (job_log_lines, which LineStart reads).
func insertFrames(ctx context.Context, tx txn, jobID int64, frames []LogFrame) error {
	for _, f := range frames {
		_, err := tx.ExecContext(ctx, `INSERT INTO job_log_frames (job_id, pos, seg, size, data, times) VALUES (?, ?, ?, ?, ?, ?)`,
			jobID, f.pos, f.seg, f.size, f.data, f.times)
		if err != nil {
			return wrap("store log frame", err)
		}
		if f.pos == f.seg && f.lines >= 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO job_log_lines (job_id, seg, lines) VALUES (?, ?, ?)`, jobID, f.seg, f.lines); err != nil {
				return wrap("store log line count", err)
			}
		}
	}
	return nil
}

// appendRefused says why appendFrames found no log to add to at offset at.
// It runs only then, to keep the common path at two statements.
func appendRefused(ctx context.Context, tx txn, jobID, at int64) error {
	var deleted, compressed bool
	var size int64
	err := tx.QueryRowContext(ctx, `SELECT j.log_deleted_at IS NOT NULL, COALESCE(l.compressed, 1), COALESCE(l.size, 0)
		FROM jobs j LEFT JOIN job_logs l ON l.job_id = j.id WHERE j.id = ?`, jobID).Scan(&deleted, &compressed, &size)
	if err != nil {
		return wrap("append log", err) // no such job
	}
	switch {
	case deleted:
		return fmt.Errorf("append log: the log of job %d was deleted: %w", jobID, ErrConflict)
	case !compressed:
		return fmt.Errorf("append log: the log of job %d awaits conversion from an old format: %w", jobID, ErrConflict)
	}
	return fmt.Errorf("append log: job %d has %d bytes of log, the frames begin at %d: %w", jobID, size, at, ErrConflict)
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

// segmentsQuery reads a log's frames from the first of the segment holding
// byte ?2 on, in order, and so does it with the chunks of a log stored
// plain before version 15 (each chunk a segment of its own, not deflated).
// A log is in one table or the other, and one statement reads from one
// snapshot, also while CompressFinishedLogs moves a log from one to the other.
const segmentsQuery = `SELECT pos, seg, size, data, times, 0 FROM job_log_frames
	WHERE job_id = ?1 AND pos >= COALESCE((SELECT seg FROM job_log_frames WHERE job_id = ?1 AND pos <= ?2 ORDER BY pos DESC LIMIT 1), 0)
	UNION ALL
	SELECT pos, pos, LENGTH(data), data, NULL, 1 FROM job_log_chunks
	WHERE job_id = ?1 AND pos >= COALESCE((SELECT MAX(pos) FROM job_log_chunks WHERE job_id = ?1 AND pos <= ?2), 0)
	ORDER BY pos`

// eachSegment calls fn with each segment of a job's log in order, from the
// one holding byte from, until fn returns false or the log ends. A
// segment's text stops at byte upto of the log (all of it when upto is
// negative): nothing past it is inflated. The text is valid only during
// the call. One segment at a time is held in memory.
func (db *DB) eachSegment(ctx context.Context, jobID, from, upto int64, fn func(s *segment) bool) error {
	rows, err := db.read.QueryContext(ctx, segmentsQuery, jobID, from)
	if err != nil {
		return wrap("read log", err)
	}
	defer rows.Close()
	var (
		s     segment
		z     []byte // the segment's stored bytes
		size  int64  // its bytes as written
		plain bool   // stored as written
		text  []byte // reused between segments
		open  bool   // a segment is gathered
	)
	emit := func() (bool, error) {
		if !open {
			return true, nil
		}
		n := size
		if upto >= 0 {
			n = max(0, min(n, upto-s.pos))
		}
		if plain {
			s.text = z[:n]
		} else {
			if text, err = inflate(text, z, int(n)); err != nil {
				return false, fmt.Errorf("read log: job %d, segment at %d: %w", jobID, s.pos, err)
			}
			s.text = text
		}
		return fn(&s), nil
	}
	for rows.Next() {
		var pos, seg, n int64
		var data, times []byte
		var isPlain bool
		if err := rows.Scan(&pos, &seg, &n, &data, &times, &isPlain); err != nil {
			return wrap("read log", err)
		}
		if pos == seg {
			if more, err := emit(); err != nil || !more {
				return err
			}
			if upto >= 0 && pos >= upto {
				return nil
			}
			s, z, size, plain, open = segment{pos: pos, marks: s.marks[:0]}, z[:0], 0, isPlain, true
		} else if !open || pos != s.pos+size {
			return fmt.Errorf("read log: job %d has a frame at %d where %d was expected", jobID, pos, s.pos+size)
		}
		z = append(z, data...)
		size += n
		if s.marks, err = decodeMarks(s.marks, pos, times); err != nil {
			return fmt.Errorf("read log: job %d, frame at %d: %w", jobID, pos, err)
		}
	}
	if err := rows.Err(); err != nil {
		return wrap("read log", err)
	}
	_, err = emit()
	return err
}

// ReadLog returns up to max bytes of a job's log from byte offset from, and
// fewer only where the log ends; nothing when from is at or past the end. A
// reader that passes from plus what it got as the next offset sees every
// byte once, without gaps or repeats, while the log is written and after.
func (db *DB) ReadLog(ctx context.Context, jobID, from int64, max int) ([]byte, error) {
	data, _, err := db.readLog(ctx, jobID, from, max, false)
	return data, err
}

// ReadLogMarks is ReadLog with the arrival times of the bytes it returns:
// marks in ascending Offset within them, the first at from, giving the time
// in force there. A log stored without times (see NoTime) has no marks.
func (db *DB) ReadLogMarks(ctx context.Context, jobID, from int64, max int) ([]byte, []LogMark, error) {
	return db.readLog(ctx, jobID, from, max, true)
}

// readLog is ReadLog, and ReadLogMarks when withMarks.
func (db *DB) readLog(ctx context.Context, jobID, from int64, max int, withMarks bool) ([]byte, []LogMark, error) {
	if from < 0 {
		return nil, nil, invalid("negative log offset")
	}
	var out []byte
	var marks []LogMark
	err := db.eachSegment(ctx, jobID, from, from+int64(max), func(s *segment) bool {
		skip := from - s.pos
		if skip < 0 {
			skip = 0 // the segments after the first
		}
		if skip < int64(len(s.text)) {
			if withMarks {
				marks = appendMarks(marks, s.marks, s.pos+skip, s.pos+int64(len(s.text)))
			}
			out = append(out, s.text[skip:]...)
		}
		return len(out) < max
	})
	return out, marks, err
}

// appendMarks appends to dst the marks of the bytes from from to end: the
// one in force at from, moved to from, then those after it, of ms, a
// segment's marks. A mark that changes no time (a segment begins with
// one) is left out.
func appendMarks(dst []LogMark, ms []timeMark, from, end int64) []LogMark {
	for i, m := range ms {
		at := time.Duration(m.ms) * time.Millisecond
		switch {
		case m.off >= end:
			return dst
		case len(dst) > 0 && dst[len(dst)-1].At == at:
		case m.off > from:
			dst = append(dst, LogMark{Offset: m.off, At: at})
		case i+1 == len(ms) || ms[i+1].off > from: // in force at from
			dst = append(dst, LogMark{Offset: from, At: at})
		}
	}
	return dst
}

// LineStart returns the offset of the first byte of line n (from 1) of a
// job's log: ErrNotFound when the log has fewer lines (a log that ends with
// a line end has no line after it), ErrInvalid for n below 1. It counts the
// lines segment by segment from the last segment before the line whose
// count of line ends before it is stored (job_log_lines), or from the
// log's start.
func (db *DB) LineStart(ctx context.Context, jobID, n int64) (int64, error) {
	if n < 1 {
		return 0, invalid("line numbers start at 1")
	}
	// A segment with fewer than n-1 line ends before it: line n begins
	// after its first byte.
	var from, before int64
	err := db.read.QueryRowContext(ctx, `SELECT seg, lines FROM job_log_lines WHERE job_id = ? AND lines < ? ORDER BY seg DESC LIMIT 1`,
		jobID, n-1).Scan(&from, &before)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, wrap("find log line", err)
	}
	need := n - 1 - before // line ends before the line, from the first segment read
	var start int64
	found := false
	err = db.eachSegment(ctx, jobID, from, -1, func(s *segment) bool {
		if need == 0 {
			// The line ends before were all in earlier segments: the line
			// is this segment's first.
			start, found = s.pos, true
			return false
		}
		if c := int64(bytes.Count(s.text, []byte{'\n'})); c < need {
			need -= c
			return true
		}
		i := 0
		for ; need > 0; need-- {
			i += bytes.IndexByte(s.text[i:], '\n') + 1
		}
		start, found = s.pos+int64(i), i < len(s.text)
		return !found
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("find line %d of the log of job %d: %w", n, jobID, ErrNotFound)
	}
	return start, nil
}

// NoTime is the arrival time of a line of a log stored without times: those
// written before version 15, and by AppendLog.
const NoTime time.Duration = -1

// LineTime is when a line of a job's log arrived: At after the log began,
// or NoTime when the log has no times.
type LineTime struct {
	Offset int64 // of the line's first byte in the log as written
	At     time.Duration
}

// LogTimes returns the arrival times of the lines of a job's log that begin
// within n bytes from byte offset from, in order: the time of the write
// that brought each line's first byte, to the millisecond. A line begins at
// offset 0 and after each '\n'. A missing job has no lines.
func (db *DB) LogTimes(ctx context.Context, jobID, from int64, n int) ([]LineTime, error) {
	if from < 0 || n < 0 {
		return nil, invalid("negative log offset or length")
	}
	var out []LineTime
	prev := byte('\n') // the byte before the first one looked at
	start := max(from-1, 0)
	err := db.eachSegment(ctx, jobID, start, from+int64(n), func(s *segment) bool {
		m := 0 // the mark in force
		for i := max(start-s.pos, 0); i < int64(len(s.text)); i++ {
			o := s.pos + i
			if o >= from && prev == '\n' {
				for m+1 < len(s.marks) && s.marks[m+1].off <= o {
					m++
				}
				at := NoTime
				if len(s.marks) > 0 {
					at = time.Duration(s.marks[m].ms) * time.Millisecond
				}
				out = append(out, LineTime{Offset: o, At: at})
			}
			prev = s.text[i]
		}
		return true
	})
	return out, err
}

// LogMatch is a line of a job's log that a search matched.
type LogMatch struct {
	Line   int64 // its number, from 1
	Offset int64 // of its first byte in the log as written
}

// searchLineMax bounds the bytes of a line that a search looks at: a longer
// line is matched on its beginning, so that a log of one endless line
// cannot take memory beyond it.
const searchLineMax = 64 << 10

// LogSearch is what a search of a job's log found.
type LogSearch struct {
	Matches []LogMatch // the first matching lines, in order, up to the limit asked for
	Count   int        // how many lines matched in all
	Lines   int64      // how many lines were searched: all of the log's, unless the search was cut short
}

// SearchLog searches a job's log for the lines that match says match, and
// returns the first limit of them in order, and how many there are in all.
// It inflates one segment at a time, so that it holds at most a segment and
// a line in memory whatever the log's size. match gets each line with its
// line end, and of a line longer than 64 KiB only its first 64 KiB; the
// lines come in order, so a match may keep state from one to the next (an
// escape sequence's, say: see ansi.Matcher). A missing job has no lines;
// limit below 1 is ErrInvalid. When ctx ends first, it returns what it
// found in the lines it searched, with ctx's error.
func (db *DB) SearchLog(ctx context.Context, jobID int64, match func(line []byte) bool, limit int) (LogSearch, error) {
	var out LogSearch
	if limit < 1 {
		return out, invalid("a search needs a limit of at least one line")
	}
	cur := LogMatch{Line: 1}
	var line []byte // the current line's start, kept while it spans segments
	test := func(l []byte) {
		out.Lines = cur.Line
		if match(l[:min(len(l), searchLineMax)]) {
			if out.Count++; len(out.Matches) < limit {
				out.Matches = append(out.Matches, cur)
			}
		}
	}
	err := db.eachSegment(ctx, jobID, 0, -1, func(s *segment) bool {
		text := s.text
		for len(text) > 0 {
			i := bytes.IndexByte(text, '\n')
			if i < 0 {
				line = append(line, text[:min(len(text), searchLineMax-len(line))]...)
				return true
			}
			l := text[:i+1]
			if len(line) > 0 {
				line = append(line, l[:min(len(l), searchLineMax-len(line))]...)
				l = line
			}
			test(l)
			text = text[i+1:]
			cur = LogMatch{Line: cur.Line + 1, Offset: s.pos + int64(len(s.text)-len(text))}
			line = line[:0]
		}
		// A segment is the unit of work: a search cut short stops between two.
		return ctx.Err() == nil
	})
	if err == nil {
		err = ctx.Err()
	}
	if err == nil && len(line) > 0 {
		test(line) // the last line, without a line end
	}
	return out, err
}

// CompressFinishedLogs converts up to limit logs of finished jobs that are
// still stored in the plain chunks of the format before version 15, oldest
// first, into frames, and returns how many it converted; it then gives the
// pages they took back to the file system. Such logs are those that missed
// compression because the server stopped while the job ran, and those
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
		if err := db.compressLog(ctx, id); err != nil {
			return i, err
		}
	}
	if len(ids) > 0 {
		if err := db.writeTx(ctx, func(tx txn) error { return freePages(ctx, tx) }); err != nil {
			return len(ids), err
		}
	}
	return len(ids), nil
}

// compressLog stores a finished job's plain log in frames, after which
// ReadLog returns the same bytes at the same offsets. The log is read and
// compressed from a read snapshot, without holding the writer; replacing
// the plain chunks with the frames is one write transaction, which fails
// with ErrConflict if the log changed in between. Readers see one form or
// the other, never a mix.
func (db *DB) compressLog(ctx context.Context, jobID int64) error {
	var size int64
	var frames []LogFrame
	err := db.readTx(ctx, func(tx txn) error {
		err := tx.QueryRowContext(ctx, `SELECT size FROM job_logs WHERE job_id = ? AND compressed = 0`, jobID).Scan(&size)
		if err != nil {
			return wrap("get log", err)
		}
		rows, err := tx.QueryContext(ctx, `SELECT pos, data FROM job_log_chunks WHERE job_id = ? ORDER BY pos`, jobID)
		if err != nil {
			return wrap("read log", err)
		}
		defer rows.Close()
		e := NewLogEncoder()
		for rows.Next() {
			var pos int64
			var data []byte
			if err := rows.Scan(&pos, &data); err != nil {
				return wrap("read log", err)
			}
			if pos != e.pos {
				return fmt.Errorf("compress log: job %d has a chunk at %d where %d was expected", jobID, pos, e.pos)
			}
			frames = append(frames, e.Encode(data, nil, false)...)
		}
		if err := rows.Err(); err != nil {
			return wrap("read log", err)
		}
		if e.pos != size {
			return fmt.Errorf("compress log: job %d has %d bytes of chunks for a log of %d", jobID, e.pos, size)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return db.writeTx(ctx, func(tx txn) error {
		res, err := tx.ExecContext(ctx, `UPDATE job_logs SET compressed = 1 WHERE job_id = ? AND compressed = 0 AND size = ?`, jobID, size)
		if err != nil {
			return wrap("mark log compressed", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("compress log: the log of job %d changed while it was compressed: %w", jobID, ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM job_log_chunks WHERE job_id = ?`, jobID); err != nil {
			return wrap("delete plain log chunks", err)
		}
		return insertFrames(ctx, tx, jobID, frames)
	})
}

// freePages gives the database's free pages back to the file system, so
// that the file shrinks after logs are deleted or rewritten: the database
// keeps auto_vacuum = INCREMENTAL (migration 00015).
func freePages(ctx context.Context, tx txn) error {
	_, err := tx.ExecContext(ctx, `PRAGMA incremental_vacuum`)
	return wrap("free pages", err)
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
// what it deleted so far staying deleted. Each batch gives the pages it
// freed back to the file system, so the file shrinks.
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
					if _, err := tx.ExecContext(ctx, `DELETE FROM job_log_frames WHERE job_id = ?`, j.id); err != nil {
						return wrap("delete log frames", err)
					}
					if _, err := tx.ExecContext(ctx, `DELETE FROM job_log_lines WHERE job_id = ?`, j.id); err != nil {
						return wrap("delete log line counts", err)
					}
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
			if logs == 0 {
				return nil
			}
			return freePages(ctx, tx)
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
