package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// AnnotationLevel is how serious an annotation is, named as in the command
// that made it (::error::, ::warning::, ::notice::).
type AnnotationLevel string

const (
	AnnotationError   AnnotationLevel = "error"
	AnnotationWarning AnnotationLevel = "warning"
	AnnotationNotice  AnnotationLevel = "notice"
)

// MaxAnnotations is how many annotations of one job are kept; the ones
// after are only counted (AnnotationCounts).
const MaxAnnotations = 1000

// Annotation is one ::error::, ::warning:: or ::notice:: line of a job's
// output.
type Annotation struct {
	LogLine int // the line of the job's log that made it, from 1
	Level   AnnotationLevel
	File    string // the file it names, "" for none
	Line    int    // the line in File, 0 for none
	Col     int    // the column in that line, 0 for none
	Title   string
	Message string
}

// AnnotationCounts counts a job's annotations by level, kept or not.
type AnnotationCounts struct {
	Errors, Warnings, Notices int
}

// Total is how many annotations c counts.
func (c AnnotationCounts) Total() int { return c.Errors + c.Warnings + c.Notices }

// Add counts one more annotation of level l.
func (c *AnnotationCounts) Add(l AnnotationLevel) {
	switch l {
	case AnnotationError:
		c.Errors++
	case AnnotationWarning:
		c.Warnings++
	case AnnotationNotice:
		c.Notices++
	}
}

// AddAnnotations records annotations of job jobID in one write transaction:
// it keeps notes as long as the job has fewer than MaxAnnotations kept, and
// adds seen, which counts notes and any annotations not passed, to the job's
// counts. The job's log must have been begun (AppendLogFrames), else, and
// for a line that already has one, it is ErrConflict; a level that is not
// one of the three is ErrInvalid. Either way nothing is recorded.
func (db *DB) AddAnnotations(ctx context.Context, jobID int64, notes []Annotation, seen AnnotationCounts) error {
	for _, a := range notes {
		if a.Level != AnnotationError && a.Level != AnnotationWarning && a.Level != AnnotationNotice {
			return fmt.Errorf("add annotations: level %q: %w", a.Level, ErrInvalid)
		}
	}
	return db.writeTx(ctx, func(tx txn) error {
		var kept int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM job_annotations WHERE job_id = ?`, jobID).Scan(&kept); err != nil {
			return wrap("count annotations", err)
		}
		for _, a := range notes[:min(len(notes), max(0, MaxAnnotations-kept))] {
			_, err := tx.ExecContext(ctx, `INSERT INTO job_annotations (job_id, log_line, level, file, line, col, title, message)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, jobID, a.LogLine, a.Level, a.File, a.Line, a.Col, a.Title, a.Message)
			if err != nil {
				return wrap("add annotation", err)
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO job_annotation_counts (job_id, errors, warnings, notices) VALUES (?, ?, ?, ?)
			ON CONFLICT (job_id) DO UPDATE SET errors = errors + excluded.errors,
				warnings = warnings + excluded.warnings, notices = notices + excluded.notices`,
			jobID, seen.Errors, seen.Warnings, seen.Notices)
		return wrap("count annotations", err)
	})
}

// Annotations returns the kept annotations of a job in log order and the
// counts of all of them. A job without any, or a missing job, has none.
func (db *DB) Annotations(ctx context.Context, jobID int64) ([]Annotation, AnnotationCounts, error) {
	var notes []Annotation
	var c AnnotationCounts
	err := db.readTx(ctx, func(tx txn) error {
		var err error
		notes, err = queryAll(ctx, tx, "list annotations", func(row scanner) (Annotation, error) {
			var a Annotation
			return a, row.Scan(&a.LogLine, &a.Level, &a.File, &a.Line, &a.Col, &a.Title, &a.Message)
		}, `SELECT log_line, level, file, line, col, title, message FROM job_annotations WHERE job_id = ? ORDER BY log_line`, jobID)
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx, `SELECT errors, warnings, notices FROM job_annotation_counts WHERE job_id = ?`, jobID).
			Scan(&c.Errors, &c.Warnings, &c.Notices)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // none counted
		}
		return wrap("count annotations", err)
	})
	return notes, c, err
}

// BuildAnnotationCounts returns the annotation counts of the jobs of a
// build that have any, by job id.
func (db *DB) BuildAnnotationCounts(ctx context.Context, buildID int64) (map[int64]AnnotationCounts, error) {
	type row struct {
		job int64
		c   AnnotationCounts
	}
	rows, err := queryAll(ctx, db.read, "count build annotations", func(s scanner) (row, error) {
		var r row
		return r, s.Scan(&r.job, &r.c.Errors, &r.c.Warnings, &r.c.Notices)
	}, `SELECT c.job_id, c.errors, c.warnings, c.notices FROM jobs j JOIN job_annotation_counts c ON c.job_id = j.id WHERE j.build_id = ?`, buildID)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]AnnotationCounts, len(rows))
	for _, r := range rows {
		out[r.job] = r.c
	}
	return out, nil
}
