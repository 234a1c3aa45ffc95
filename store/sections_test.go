package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A step that begins ends the running one as a success at its start; a
// skipped step ends as it begins and is left alone by the next; the last
// one ends with the status given.
func TestJobStepsEndEachOtherInOrder(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	t0 := time.UnixMilli(1_700_000_000_000).UTC()
	begin := func(name StepName, status StepStatus, off int64, line int, at time.Duration) []JobStep {
		t.Helper()
		steps, err := db.BeginJobStep(ctx, id, JobStep{Name: name, Offset: off, Line: line, StartedAt: t0.Add(at), Status: status})
		if err != nil {
			t.Fatalf("begin %s: %v", name, err)
		}
		return steps
	}
	if steps := begin(StepFetch, StepRunning, 0, 1, 0); len(steps) != 1 || steps[0].Seq != 1 || steps[0].Status != StepRunning || !steps[0].FinishedAt.IsZero() {
		t.Fatalf("after fetch: %+v", steps)
	}
	begin(StepImage, StepRunning, 120, 3, 2*time.Second)
	begin(StepInstall, StepSkipped, 300, 6, 3*time.Second)
	begin(StepBuild, StepRunning, 380, 7, 3*time.Second+500*time.Millisecond)
	steps, err := db.EndJobStep(ctx, id, StepFailure, t0.Add(9*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []JobStep{
		{JobID: id, Seq: 1, Name: StepFetch, Offset: 0, Line: 1, StartedAt: t0, FinishedAt: t0.Add(2 * time.Second), Status: StepSuccess},
		{JobID: id, Seq: 2, Name: StepImage, Offset: 120, Line: 3, StartedAt: t0.Add(2 * time.Second), FinishedAt: t0.Add(3 * time.Second), Status: StepSuccess},
		{JobID: id, Seq: 3, Name: StepInstall, Offset: 300, Line: 6, StartedAt: t0.Add(3 * time.Second), FinishedAt: t0.Add(3 * time.Second), Status: StepSkipped},
		{JobID: id, Seq: 4, Name: StepBuild, Offset: 380, Line: 7, StartedAt: t0.Add(3500 * time.Millisecond), FinishedAt: t0.Add(9 * time.Second), Status: StepFailure},
	}
	read, err := db.JobSteps(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range [][]JobStep{steps, read} {
		if len(got) != len(want) {
			t.Fatalf("steps = %+v, want %+v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("step %d = %+v, want %+v", i+1, got[i], want[i])
			}
		}
	}
	// Ending again changes nothing: no step runs.
	if again, err := db.EndJobStep(ctx, id, StepError, t0.Add(time.Hour)); err != nil || again[3] != want[3] {
		t.Errorf("ending again: %+v, %v", again, err)
	}
}

// Steps that would split the log out of order, or name what the runner
// does not do, are refused and store nothing.
func TestJobStepsRefuseBadSteps(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	now := time.Now()
	if _, err := db.BeginJobStep(ctx, id, JobStep{Name: StepFetch, Offset: 500, Line: 10, StartedAt: now, Status: StepRunning}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []JobStep{
		{Name: StepImage, Offset: 499, Line: 10, Status: StepRunning}, // before the last step's byte
		{Name: StepImage, Offset: 600, Line: 9, Status: StepRunning},  // before its line
		{Name: "deploy", Offset: 600, Line: 11, Status: StepRunning},  // unknown
		{Name: StepImage, Offset: 600, Line: 11, Status: StepSuccess}, // begins finished
		{Name: StepImage, Offset: -1, Line: 11, Status: StepRunning},  // no such offset
	} {
		s.StartedAt = now
		if _, err := db.BeginJobStep(ctx, id, s); !errors.Is(err, ErrInvalid) {
			t.Errorf("BeginJobStep(%+v) = %v, want ErrInvalid", s, err)
		}
	}
	if _, err := db.EndJobStep(ctx, id, StepRunning, now); !errors.Is(err, ErrInvalid) {
		t.Errorf("ending as running: %v, want ErrInvalid", err)
	}
	if _, err := db.BeginJobStep(ctx, 99999, JobStep{Name: StepFetch, Line: 1, StartedAt: now, Status: StepRunning}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing job's step: %v, want ErrNotFound", err)
	}
	steps, err := db.JobSteps(ctx, id)
	if err != nil || len(steps) != 1 || steps[0].Status != StepRunning {
		t.Errorf("steps = %+v, %v; want the fetch step alone, running", steps, err)
	}
}

// A server that stopped mid-job leaves its step running: the start-up
// recovery ends it as an error with its job.
func TestRecoveryEndsTheInterruptedJobsStep(t *testing.T) {
	ctx := context.Background()
	db, _, _, _ := newBuildFixture(t)
	ch, ok, err := db.ClaimJob(ctx)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if _, err := db.BeginJobStep(ctx, ch.Job.ID, JobStep{Name: StepFetch, Line: 1, StartedAt: time.Now(), Status: StepRunning}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecoverInterruptedJobs(ctx); err != nil {
		t.Fatal(err)
	}
	steps, err := db.JobSteps(ctx, ch.Job.ID)
	if err != nil || len(steps) != 1 || steps[0].Status != StepError || steps[0].FinishedAt.IsZero() {
		t.Errorf("steps after recovery = %+v, %v; want the fetch step ended as an error", steps, err)
	}
}
