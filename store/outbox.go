package store

import (
	"context"
	"errors"
	"time"
)

// Status is a GitHub commit status waiting in the outbox to be posted.
type Status struct {
	ID          int64
	ProjectID   int64
	JobID       int64
	Repo        string // owner/name
	SHA         string
	Context     string // kozmic/<hook title>
	State       string // pending, success, failure or error
	Description string
	TargetURL   string
	Attempts    int
	NextAt      time.Time
	LastError   string
}

// EnqueueStatus puts a status in the outbox, due at once. An unposted
// status for the same project, commit and context is replaced: GitHub shows
// the last one posted, so an older one must not be posted after it.
func (db *DB) EnqueueStatus(ctx context.Context, s Status) error {
	return db.writeTx(ctx, func(tx txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM status_outbox WHERE project_id = ? AND sha = ? AND context = ? AND failed = 0`,
			s.ProjectID, s.SHA, s.Context); err != nil {
			return wrap("replace status", err)
		}
		var jobID any
		if s.JobID != 0 {
			jobID = s.JobID
		}
		now := db.nowMS()
		_, err := tx.ExecContext(ctx, `INSERT INTO status_outbox (project_id, job_id, repo_full_name, sha, context, state,
				description, target_url, next_attempt_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.ProjectID, jobID, s.Repo, s.SHA, s.Context, s.State, s.Description, s.TargetURL, now, now)
		return wrap("enqueue status", err)
	})
}

const statusColumns = `id, project_id, COALESCE(job_id, 0), repo_full_name, sha, context, state, description,
	target_url, attempts, next_attempt_at, last_error`

func scanStatus(row scanner) (Status, error) {
	var s Status
	err := row.Scan(&s.ID, &s.ProjectID, &s.JobID, &s.Repo, &s.SHA, &s.Context, &s.State, &s.Description,
		&s.TargetURL, &s.Attempts, msTime{&s.NextAt}, &s.LastError)
	return s, err
}

// DueStatuses returns up to limit statuses due by now, oldest first.
func (db *DB) DueStatuses(ctx context.Context, now time.Time, limit int) ([]Status, error) {
	return queryAll(ctx, db.read, "list due statuses", scanStatus, `SELECT `+statusColumns+` FROM status_outbox
		WHERE failed = 0 AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?`, now.UnixMilli(), limit)
}

// NextStatusDue returns when the next status is due; ok is false when the
// outbox is empty.
func (db *DB) NextStatusDue(ctx context.Context) (next time.Time, ok bool, err error) {
	return db.nextDue(ctx, "next status due", `SELECT MIN(next_attempt_at) FROM status_outbox WHERE failed = 0`)
}

// nextDue runs query, which selects the earliest next_attempt_at of an
// outbox (NULL when it is empty), and returns it; ok is false when the
// outbox is empty.
func (db *DB) nextDue(ctx context.Context, what, query string) (next time.Time, ok bool, err error) {
	var ms *int64
	err = db.read.QueryRowContext(ctx, query).Scan(&ms)
	if err != nil || ms == nil {
		return time.Time{}, false, wrap(what, err)
	}
	return time.UnixMilli(*ms).UTC(), true, nil
}

// StatusPosted removes a posted status from the outbox.
func (db *DB) StatusPosted(ctx context.Context, id int64) error {
	return db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM status_outbox WHERE id = ?`, id)
		return wrap("remove posted status", err)
	})
}

// StatusFailed records a failed attempt: the status is tried again at next,
// or, when next is zero, given up and kept with its error.
func (db *DB) StatusFailed(ctx context.Context, id int64, next time.Time, lastErr string) error {
	return db.writeTx(ctx, func(tx txn) error {
		err := execOne(ctx, tx, "record status failure", `UPDATE status_outbox
			SET attempts = attempts + 1, last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at), failed = ?
			WHERE id = ?`, lastErr, ms(next), next.IsZero(), id)
		if errors.Is(err, ErrNotFound) {
			return nil // replaced by a newer status meanwhile
		}
		return err
	})
}

// StatusCounts returns how many statuses wait to be posted and how many were
// given up.
func (db *DB) StatusCounts(ctx context.Context) (pending, failed int, err error) {
	err = db.read.QueryRowContext(ctx, `SELECT COUNT(*) FILTER (WHERE failed = 0), COUNT(*) FILTER (WHERE failed = 1)
		FROM status_outbox`).Scan(&pending, &failed)
	return pending, failed, wrap("count statuses", err)
}
