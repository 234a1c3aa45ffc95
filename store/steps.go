package store

import (
	"context"
	"fmt"
	"time"
)

// StepName names a phase of a job, which its page shows as a section of
// its log.
type StepName string

const (
	StepFetch   StepName = "fetch"   // checking out the commit
	StepImage   StepName = "image"   // finding or pulling the image
	StepInstall StepName = "install" // the install script, or its cached image
	StepBuild   StepName = "build"   // the build script
)

// Title is the step's name as its section heading reads.
func (n StepName) Title() string {
	switch n {
	case StepFetch:
		return "Fetch"
	case StepImage:
		return "Image"
	case StepInstall:
		return "Install"
	case StepBuild:
		return "Build script"
	}
	return string(n)
}

// StepStatus is the state of one step of a job.
type StepStatus string

const (
	StepRunning StepStatus = "running"
	StepSuccess StepStatus = "success"
	StepFailure StepStatus = "failure" // the script failed, stalled or timed out
	StepError   StepStatus = "error"   // Kozmic could not do it, or the job was canceled
	StepSkipped StepStatus = "skipped" // the install script, as its cached image was there
)

// Finished reports whether s is final.
func (s StepStatus) Finished() bool { return s != StepRunning }

// StepStatusOf is the status a job's last step ends with when the job
// ends in js.
func StepStatusOf(js JobStatus) StepStatus {
	switch js {
	case JobSuccess:
		return StepSuccess
	case JobFailure:
		return StepFailure
	}
	return StepError
}

// JobStep is one phase of a job as the runner recorded it, apart from the
// log, so that a script's output cannot forge it: where its part of the
// log begins, when it ran and how it ended. A step's part of the log ends
// where the next step's begins, the last one's at the log's end.
type JobStep struct {
	JobID      int64
	Seq        int // 1, 2, … in the order the steps ran
	Name       StepName
	Offset     int64 // byte offset in the log as written of the step's first byte
	Line       int   // number of the step's first line
	StartedAt  time.Time
	FinishedAt time.Time // zero while it runs
	Status     StepStatus
}

const stepColumns = `job_id, seq, name, log_offset, line, started_at, finished_at, status`

func scanStep(row scanner) (JobStep, error) {
	var s JobStep
	err := row.Scan(&s.JobID, &s.Seq, &s.Name, &s.Offset, &s.Line, msTime{&s.StartedAt}, msTime{&s.FinishedAt}, &s.Status)
	return s, err
}

// BeginJobStep records that job jobID's step s began: it ends the job's
// running step, if any, as a success at s.StartedAt, and adds s after it
// (s.Seq is set here), all in one transaction, and returns the job's steps.
// s.Status is StepRunning, or StepSkipped for a step that ends as it
// begins. A step that begins before the one before it in the log, an
// unknown name or another status is ErrInvalid; a missing job ErrNotFound.
func (db *DB) BeginJobStep(ctx context.Context, jobID int64, s JobStep) ([]JobStep, error) {
	switch s.Name {
	case StepFetch, StepImage, StepInstall, StepBuild:
	default:
		return nil, fmt.Errorf("begin job step %q: unknown step: %w", s.Name, ErrInvalid)
	}
	if s.Status != StepRunning && s.Status != StepSkipped {
		return nil, fmt.Errorf("begin job step %s as %q: %w", s.Name, s.Status, ErrInvalid)
	}
	if s.Offset < 0 || s.Line < 1 {
		return nil, fmt.Errorf("begin job step %s at byte %d, line %d: %w", s.Name, s.Offset, s.Line, ErrInvalid)
	}
	var steps []JobStep
	err := db.writeTx(ctx, func(tx txn) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE id = ?)`, jobID).Scan(&exists); err != nil {
			return wrap("find job", err)
		}
		if !exists {
			return fmt.Errorf("begin step of job %d: %w", jobID, ErrNotFound)
		}
		var seq int
		var offset, line int64
		err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0), COALESCE(MAX(log_offset), 0), COALESCE(MAX(line), 1)
			FROM job_steps WHERE job_id = ?`, jobID).Scan(&seq, &offset, &line)
		if err != nil {
			return wrap("last job step", err)
		}
		if s.Offset < offset || int64(s.Line) < line {
			return fmt.Errorf("begin job step %s at byte %d, line %d, before the last step's byte %d, line %d: %w",
				s.Name, s.Offset, s.Line, offset, line, ErrInvalid)
		}
		at := s.StartedAt.UnixMilli()
		if err := endRunningStep(ctx, tx, jobID, StepSuccess, at); err != nil {
			return err
		}
		var finished any
		if s.Status == StepSkipped {
			finished = at
		}
		if err := execOne(ctx, tx, "insert job step", `INSERT INTO job_steps (`+stepColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			jobID, seq+1, s.Name, s.Offset, s.Line, at, finished, s.Status); err != nil {
			return err
		}
		steps, err = jobSteps(ctx, tx, jobID)
		return err
	})
	return steps, err
}

// EndJobStep ends job jobID's running step, if it has one, with status at
// time at, and returns the job's steps. A status that is not final is
// ErrInvalid.
func (db *DB) EndJobStep(ctx context.Context, jobID int64, status StepStatus, at time.Time) ([]JobStep, error) {
	if !status.Finished() || status == StepSkipped {
		return nil, fmt.Errorf("end job step as %q: %w", status, ErrInvalid)
	}
	var steps []JobStep
	err := db.writeTx(ctx, func(tx txn) error {
		if err := endRunningStep(ctx, tx, jobID, status, at.UnixMilli()); err != nil {
			return err
		}
		var err error
		steps, err = jobSteps(ctx, tx, jobID)
		return err
	})
	return steps, err
}

// endRunningStep ends the running step of a job, if any.
func endRunningStep(ctx context.Context, tx txn, jobID int64, status StepStatus, atMS int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE job_steps SET status = ?, finished_at = MAX(?, started_at)
		WHERE job_id = ? AND status = 'running'`, status, atMS, jobID)
	return wrap("end job step", err)
}

// JobSteps lists a job's steps in the order they ran; none for a job from
// before steps were recorded, or that never started.
func (db *DB) JobSteps(ctx context.Context, jobID int64) ([]JobStep, error) {
	return jobSteps(ctx, db.read, jobID)
}

func jobSteps(ctx context.Context, q queryer, jobID int64) ([]JobStep, error) {
	return queryAll(ctx, q, "list job steps", scanStep, `SELECT `+stepColumns+` FROM job_steps WHERE job_id = ? ORDER BY seq`, jobID)
}
