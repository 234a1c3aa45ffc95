package store

import (
	"fmt"
	"testing"
)

func TestDeriveBuildStatus(t *testing.T) {
	const (
		q = JobEnqueued
		r = JobRunning
		s = JobSuccess
		f = JobFailure
		e = JobError
	)
	tests := []struct {
		jobs []JobStatus
		want BuildStatus
	}{
		{nil, BuildEnqueued},
		{[]JobStatus{q}, BuildEnqueued},
		{[]JobStatus{q, q}, BuildEnqueued},
		{[]JobStatus{r}, BuildPending},
		{[]JobStatus{q, r}, BuildPending},
		{[]JobStatus{s, q}, BuildPending}, // started: does not fall back to enqueued
		{[]JobStatus{s}, BuildSuccess},
		{[]JobStatus{s, s, s}, BuildSuccess},
		{[]JobStatus{f}, BuildFailure},
		{[]JobStatus{s, f}, BuildFailure},
		{[]JobStatus{f, e}, BuildFailure}, // failure wins over error
		{[]JobStatus{e, f, r}, BuildFailure},
		{[]JobStatus{e}, BuildError},
		{[]JobStatus{s, e}, BuildError},
		{[]JobStatus{e, r}, BuildError}, // error is known before the rest finish
		{[]JobStatus{q, f}, BuildFailure},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.jobs), func(t *testing.T) {
			if got := DeriveBuildStatus(tt.jobs); got != tt.want {
				t.Errorf("DeriveBuildStatus(%v) = %s, want %s", tt.jobs, got, tt.want)
			}
		})
	}
}

func TestJobStatusCanBecome(t *testing.T) {
	all := []JobStatus{JobEnqueued, JobRunning, JobSuccess, JobFailure, JobError}
	allowed := map[[2]JobStatus]bool{
		{JobEnqueued, JobRunning}: true,
		{JobEnqueued, JobError}:   true, // canceled before it started
		{JobRunning, JobSuccess}:  true,
		{JobRunning, JobFailure}:  true,
		{JobRunning, JobError}:    true,
	}
	for _, from := range all {
		for _, to := range all {
			want := allowed[[2]JobStatus{from, to}]
			if got := from.CanBecome(to); got != want {
				t.Errorf("%s.CanBecome(%s) = %v, want %v", from, to, got, want)
			}
		}
	}
}
