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

// TestStatusTexts pins how every status reads; a status missing from the
// table would read as "".
func TestStatusTexts(t *testing.T) {
	jobs := []struct {
		s            JobStatus
		word, phrase string
	}{
		{JobEnqueued, "enqueued", "is waiting for a worker"},
		{JobRunning, "running", "is running"},
		{JobSuccess, "passed", "passed"},
		{JobFailure, "failed", "failed"},
		{JobError, "error", "errored"},
	}
	if len(statusTexts) != len(jobs) {
		t.Errorf("statusTexts has %d rows, the test knows %d statuses", len(statusTexts), len(jobs))
	}
	for _, tt := range jobs {
		if got := tt.s.Word(); got != tt.word {
			t.Errorf("%s.Word() = %q, want %q", tt.s, got, tt.word)
		}
		if got := tt.s.Phrase(); got != tt.phrase {
			t.Errorf("%s.Phrase() = %q, want %q", tt.s, got, tt.phrase)
		}
	}
	builds := []struct {
		s     BuildStatus
		job   JobStatus
		badge string
	}{
		{BuildEnqueued, JobEnqueued, "running"},
		{BuildPending, JobRunning, "running"},
		{BuildSuccess, JobSuccess, "passing"},
		{BuildFailure, JobFailure, "failing"},
		{BuildError, JobError, "error"},
	}
	for _, tt := range builds {
		if got := tt.s.AsJob(); got != tt.job {
			t.Errorf("%s.AsJob() = %s, want %s", tt.s, got, tt.job)
		}
		if got := tt.s.Badge(); got != tt.badge {
			t.Errorf("%s.Badge() = %q, want %q", tt.s, got, tt.badge)
		}
	}
}

func TestShortSHA(t *testing.T) {
	for sha, want := range map[string]string{
		"6113728f27ae82c7b1a177c8d03f9e96e0adf246": "6113728f",
		"6113728f": "6113728f",
		"abc":      "abc",
		"":         "",
	} {
		if got := (Build{SHA: sha}).ShortSHA(); got != want {
			t.Errorf("ShortSHA of %q = %q, want %q", sha, got, want)
		}
	}
}
