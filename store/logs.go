package store

import (
	"context"
)

// LogInfo describes a job's stored log without its bytes.
type LogInfo struct {
	Size      int64 // bytes stored
	Truncated bool  // storing stopped at the size limit
}

// AppendLog adds data at the end of a job's stored log and returns the log's
// new size. If truncated is true the log is marked as cut short (data is
// then the notice saying so). A missing job is ErrNotFound.
func (db *DB) AppendLog(ctx context.Context, jobID int64, data []byte, truncated bool) (int64, error) {
	var size int64
	err := db.writeTx(ctx, func(tx txn) error {
		now := db.nowMS()
		_, err := tx.ExecContext(ctx, `INSERT INTO job_logs (job_id, updated_at)
			SELECT id, ? FROM jobs WHERE id = ? ON CONFLICT (job_id) DO NOTHING`, now, jobID)
		if err != nil {
			return wrap("create log", err)
		}
		err = tx.QueryRowContext(ctx, `UPDATE job_logs SET size = size + ?, truncated = truncated OR ?, updated_at = ?
			WHERE job_id = ? RETURNING size`, len(data), truncated, now, jobID).Scan(&size)
		if err != nil {
			return wrap("append log", err) // no job_logs row: no such job
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

// LogInfoOf returns the size of a job's log. A job that has logged nothing
// yet has an empty log; a missing job is ErrNotFound.
func (db *DB) LogInfoOf(ctx context.Context, jobID int64) (LogInfo, error) {
	var li LogInfo
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(l.size, 0), COALESCE(l.truncated, 0)
		FROM jobs j LEFT JOIN job_logs l ON l.job_id = j.id WHERE j.id = ?`, jobID).Scan(&li.Size, &li.Truncated)
	return li, wrap("get log info", err)
}

// ReadLog returns a job's log from byte offset from, gathering stored chunks
// until at least max bytes are read or the log ends; nothing when from is at
// or past the end. A reader that passes from plus what it got as the next
// offset sees every byte once, without gaps or repeats.
func (db *DB) ReadLog(ctx context.Context, jobID, from int64, max int) ([]byte, error) {
	if from < 0 {
		return nil, invalid("negative log offset")
	}
	// Start at the chunk that holds byte `from`: the last one beginning at or before it.
	rows, err := db.read.QueryContext(ctx, `SELECT pos, data FROM job_log_chunks
		WHERE job_id = ?1 AND pos >= (SELECT COALESCE(MAX(pos), 0) FROM job_log_chunks WHERE job_id = ?1 AND pos <= ?2)
		ORDER BY pos`, jobID, from)
	if err != nil {
		return nil, wrap("read log", err)
	}
	defer rows.Close()
	var out []byte
	for rows.Next() && len(out) < max {
		var pos int64
		var data []byte
		if err := rows.Scan(&pos, &data); err != nil {
			return nil, wrap("read log", err)
		}
		if skip := from - pos; skip > 0 {
			if skip >= int64(len(data)) {
				continue
			}
			data = data[skip:]
		}
		out = append(out, data...)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("read log", err)
	}
	return out, nil
}
