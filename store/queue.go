package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// InterruptedMessage is the error recorded on a job that was running when
// the server stopped.
const InterruptedMessage = "the server stopped while this job was running"

// ClaimJob takes the oldest enqueued job, marks it running and returns it.
// ok is false when no job waits. Claims are atomic: two workers never get
// the same job.
func (db *DB) ClaimJob(ctx context.Context) (ch JobChanged, ok bool, err error) {
	err = db.writeTx(ctx, func(tx txn) error {
		var jobID, buildID int64
		err := tx.QueryRowContext(ctx, `UPDATE jobs SET status = 'running', started_at = ?
			WHERE id = (SELECT id FROM jobs WHERE status = 'enqueued' ORDER BY id LIMIT 1)
			RETURNING id, build_id`, db.nowMS()).Scan(&jobID, &buildID)
		if err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil // nothing waits
			}
			return wrap("claim job", err)
		}
		ok = true
		ch, err = db.jobChanged(ctx, tx, jobID, buildID)
		return err
	})
	return ch, ok, err
}

// JobRun is everything a worker needs to run a job.
type JobRun struct {
	Job     Job
	Build   Build
	Project Project
	Hook    Hook     // ID 0 when the hook was deleted after the build began
	Secrets []Secret // none for a build from a fork
	// DeployKey is the private key the project clones with; empty if none.
	DeployKey string
}

// JobRunOf gathers what running job jobID needs, secrets unsealed, from one
// snapshot: a job that exists comes with its build and project, even while
// the project is being deleted. A missing job is ErrNotFound.
func (db *DB) JobRunOf(ctx context.Context, jobID int64) (JobRun, error) {
	var r JobRun
	err := db.readTx(ctx, func(tx txn) error {
		var err error
		if r.Job, err = jobByID(ctx, tx, jobID); err != nil {
			return err
		}
		if r.Build, err = buildByID(ctx, tx, r.Job.BuildID); err != nil {
			return err
		}
		if r.Project, err = projectByID(ctx, tx, r.Build.ProjectID); err != nil {
			return err
		}
		if r.Job.HookID != 0 {
			if r.Hook, err = hookByID(ctx, tx, r.Job.HookID); err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		if !r.Build.FromFork {
			if r.Secrets, err = db.secrets(ctx, tx, r.Project.ID); err != nil {
				return err
			}
		}
		k, err := db.deployKeyOf(ctx, tx, r.Project.ID)
		switch {
		case err == nil:
			r.DeployKey = k.PrivateKey
		case !errors.Is(err, ErrNotFound):
			return err
		}
		return nil
	})
	if err != nil {
		return JobRun{}, err
	}
	return r, nil
}

// RestartJob enqueues a new attempt of a finished job's hook call; earlier
// attempts and their logs stay. A job whose latest attempt has not finished
// is ErrConflict; one whose hook was deleted is ErrInvalid. by is recorded
// as who last re-ran the build's jobs.
func (db *DB) RestartJob(ctx context.Context, jobID int64, by User) (JobChanged, error) {
	var ch JobChanged
	err := db.writeTx(ctx, func(tx txn) error {
		var hookCallID, buildID int64
		var latest JobStatus
		var attempts int
		var hookGone bool
		err := tx.QueryRowContext(ctx, `SELECT j.hook_call_id, j.build_id, hc.hook_id IS NULL,
				(SELECT status FROM jobs WHERE hook_call_id = j.hook_call_id ORDER BY attempt DESC LIMIT 1),
				(SELECT MAX(attempt) FROM jobs WHERE hook_call_id = j.hook_call_id)
			FROM jobs j JOIN hook_calls hc ON hc.id = j.hook_call_id WHERE j.id = ?`, jobID).
			Scan(&hookCallID, &buildID, &hookGone, &latest, &attempts)
		if err != nil {
			return wrap("get job", err)
		}
		if !latest.Finished() {
			return errors.Join(ErrConflict, errors.New("the job's latest attempt has not finished"))
		}
		if hookGone {
			return invalid("the hook of this job was deleted")
		}
		newID, err := insertAttempt(ctx, tx, db.nowMS(), buildID, hookCallID, attempts+1)
		if err != nil {
			return err
		}
		if err := setRerunBy(ctx, tx, buildID, by); err != nil {
			return err
		}
		ch, err = db.jobChanged(ctx, tx, newID, buildID)
		return err
	})
	return ch, err
}

// RerunFailedJobs enqueues a new attempt for every job of the build whose
// latest attempt failed or errored (and whose hook still exists), in one
// transaction, and records by as who last re-ran the build's jobs when there
// were any. It returns the new jobs, each with the build as it is after all.
func (db *DB) RerunFailedJobs(ctx context.Context, buildID int64, by User) ([]JobChanged, error) {
	var out []JobChanged
	err := db.writeTx(ctx, func(tx txn) error {
		type call struct{ id, attempt int64 }
		calls, err := queryAll(ctx, tx, "find failed jobs", func(row scanner) (call, error) {
			var c call
			return c, row.Scan(&c.id, &c.attempt)
		}, `SELECT j.hook_call_id, j.attempt FROM jobs j JOIN hook_calls hc ON hc.id = j.hook_call_id
			WHERE j.build_id = ? AND hc.hook_id IS NOT NULL AND j.status IN ('failure', 'error')
			AND j.attempt = (SELECT MAX(attempt) FROM jobs WHERE hook_call_id = j.hook_call_id)
			ORDER BY j.id`, buildID)
		if err != nil {
			return err
		}
		now := db.nowMS()
		var ids []int64
		for _, c := range calls {
			id, err := insertAttempt(ctx, tx, now, buildID, c.id, int(c.attempt)+1)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if len(ids) > 0 {
			if err := setRerunBy(ctx, tx, buildID, by); err != nil {
				return err
			}
		}
		for _, id := range ids {
			ch, err := db.jobChanged(ctx, tx, id, buildID)
			if err != nil {
				return err
			}
			out = append(out, ch)
		}
		return nil
	})
	return out, err
}

// setRerunBy records by as who last re-ran the jobs of a build.
func setRerunBy(ctx context.Context, tx txn, buildID int64, by User) error {
	_, err := tx.ExecContext(ctx, `UPDATE builds SET rerun_user_id = NULLIF(?, 0), rerun_user = ? WHERE id = ?`,
		by.ID, by.Login(), buildID)
	return wrap("record who re-ran the build", err)
}

func insertAttempt(ctx context.Context, tx txn, now, buildID, hookCallID int64, attempt int) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO jobs (build_id, hook_call_id, attempt, status, created_at)
		VALUES (?, ?, ?, 'enqueued', ?) RETURNING id`, buildID, hookCallID, attempt, now).Scan(&id)
	return id, wrap("insert job attempt", err)
}

// RecoverInterruptedJobs marks every job left running by a stopped server as
// an error (InterruptedMessage), and its running step too, and enqueues a new attempt for it, unless the
// attempt before it was interrupted too: a job is re-run after a crash once.
// It returns the interrupted jobs and the new attempts.
func (db *DB) RecoverInterruptedJobs(ctx context.Context) ([]JobChanged, error) {
	var out []JobChanged
	err := db.writeTx(ctx, func(tx txn) error {
		var err error
		out, err = db.interrupt(ctx, tx, InterruptedMessage, `j.status = 'running'`)
		return err
	})
	return out, err
}

// InterruptJob ends running job jobID as RecoverInterruptedJobs ends the
// jobs of a stopped server, with message as its error: for a job whose
// Docker engine stopped answering while it ran. It enqueues a new attempt
// under the same rule, once. It returns the job and the new attempt, if
// any; a job that is not running is ErrConflict, a missing one ErrNotFound.
func (db *DB) InterruptJob(ctx context.Context, jobID int64, message string) ([]JobChanged, error) {
	var out []JobChanged
	err := db.writeTx(ctx, func(tx txn) error {
		var status JobStatus
		if err := tx.QueryRowContext(ctx, `SELECT status FROM jobs WHERE id = ?`, jobID).Scan(&status); err != nil {
			return wrap("get job", err)
		}
		if status != JobRunning {
			return fmt.Errorf("interrupt job %d, which is %s: %w", jobID, status, ErrConflict)
		}
		var err error
		out, err = db.interrupt(ctx, tx, message, `j.id = ?`, jobID)
		return err
	})
	return out, err
}

// interrupt marks the running jobs that where selects as interrupted
// errors with message, with their running steps, and enqueues a new
// attempt of each whose previous attempt was not interrupted and whose
// hook exists. It returns the jobs and the new attempts.
func (db *DB) interrupt(ctx context.Context, tx txn, message, where string, args ...any) ([]JobChanged, error) {
	type running struct {
		id, buildID, hookCallID int64
		attempt                 int
		again                   bool // the previous attempt was not interrupted and the hook exists
	}
	jobs, err := queryAll(ctx, tx, "find interrupted jobs", func(row scanner) (running, error) {
		var r running
		return r, row.Scan(&r.id, &r.buildID, &r.hookCallID, &r.attempt, &r.again)
	}, `SELECT j.id, j.build_id, j.hook_call_id, j.attempt,
			hc.hook_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs p
				WHERE p.hook_call_id = j.hook_call_id AND p.attempt = j.attempt - 1 AND p.interrupted)
		FROM jobs j JOIN hook_calls hc ON hc.id = j.hook_call_id
		WHERE `+where+` ORDER BY j.id`, args...)
	if err != nil {
		return nil, err
	}
	var out []JobChanged
	now := db.nowMS()
	for _, r := range jobs {
		if _, err := tx.ExecContext(ctx, `UPDATE jobs SET status = 'error', finished_at = ?, interrupted = 1, error = ?
			WHERE id = ?`, now, message, r.id); err != nil {
			return nil, wrap("mark interrupted job", err)
		}
		if err := endRunningStep(ctx, tx, r.id, StepError, now); err != nil {
			return nil, err
		}
		changed := []int64{r.id}
		if r.again {
			id, err := insertAttempt(ctx, tx, now, r.buildID, r.hookCallID, r.attempt+1)
			if err != nil {
				return nil, err
			}
			changed = append(changed, id)
		}
		for _, id := range changed {
			ch, err := db.jobChanged(ctx, tx, id, r.buildID)
			if err != nil {
				return nil, err
			}
			out = append(out, ch)
		}
	}
	return out, nil
}

// PlaceJob records the engine running job jobID runs on.
func (db *DB) PlaceJob(ctx context.Context, jobID int64, engine string) error {
	return db.writeTx(ctx, func(tx txn) error {
		_, err := tx.ExecContext(ctx, `UPDATE jobs SET engine = ? WHERE id = ?`, engine, jobID)
		return wrap("record the job's engine", err)
	})
}

// CacheUse names one install cache image of a project: its scope and its
// cache id.
type CacheUse struct {
	Scope CacheScope
	ID    string
}

// CacheLastUsed returns, for each install cache image a project's jobs
// used, when a job last started with it.
func (db *DB) CacheLastUsed(ctx context.Context, projectID int64) (map[CacheUse]time.Time, error) {
	type use struct {
		CacheUse
		last time.Time
	}
	uses, err := queryAll(ctx, db.read, "cache last used", func(row scanner) (use, error) {
		var u use
		return u, row.Scan(&u.Scope, &u.ID, msTime{&u.last})
	}, `SELECT j.cache_scope, j.cache_id, MAX(j.started_at) FROM jobs j JOIN builds b ON b.id = j.build_id
		WHERE b.project_id = ? AND j.cache_id <> '' GROUP BY j.cache_scope, j.cache_id`, projectID)
	if err != nil {
		return nil, err
	}
	m := make(map[CacheUse]time.Time, len(uses))
	for _, u := range uses {
		m[u.CacheUse] = u.last
	}
	return m, nil
}
