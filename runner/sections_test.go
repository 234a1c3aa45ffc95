package runner

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"kozmic/internal/testrepo"
	"kozmic/store"
)

// checkSteps checks that a job's steps are named want (with their
// statuses) and split its stored log exactly before the runner's line that
// opens each: every step begins on a line of its own, at the line number
// its offset has, and ends when the next begins.
func checkSteps(t *testing.T, h *harness, jobID int64, want []store.JobStep, opens []string) {
	t.Helper()
	steps, err := h.db.JobSteps(context.Background(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	log := h.logOf(jobID)
	if len(steps) != len(want) {
		t.Fatalf("job %d has steps %+v, want %d of them; log:\n%s", jobID, steps, len(want), log)
	}
	for i, s := range steps {
		if s.Name != want[i].Name || s.Status != want[i].Status || s.Seq != i+1 {
			t.Errorf("step %d is %s %s, want %s %s", i+1, s.Name, s.Status, want[i].Name, want[i].Status)
		}
		if s.Offset > int64(len(log)) {
			t.Fatalf("step %s begins at byte %d of a log of %d", s.Name, s.Offset, len(log))
		}
		if rest := log[s.Offset:]; !strings.HasPrefix(rest, "\x1b[1;36m==> "+opens[i]) {
			t.Errorf("step %s begins at byte %d with %.60q, want the runner's %q", s.Name, s.Offset, rest, opens[i])
		}
		if s.Offset > 0 && log[s.Offset-1] != '\n' {
			t.Errorf("step %s begins within a line", s.Name)
		}
		if line := strings.Count(log[:s.Offset], "\n") + 1; s.Line != line {
			t.Errorf("step %s begins on line %d, its offset is on line %d", s.Name, s.Line, line)
		}
		if s.FinishedAt.IsZero() || s.FinishedAt.Before(s.StartedAt) {
			t.Errorf("step %s ran from %s to %s", s.Name, s.StartedAt, s.FinishedAt)
		}
		// A step ends as the next begins; a skipped one ends as it begins,
		// which may be a moment before the next.
		if i > 0 && (steps[i-1].Status != store.StepSkipped && !steps[i-1].FinishedAt.Equal(s.StartedAt) ||
			s.StartedAt.Before(steps[i-1].FinishedAt)) {
			t.Errorf("step %s ended at %s, the next began at %s", steps[i-1].Name, steps[i-1].FinishedAt, s.StartedAt)
		}
	}
}

// A job with an install step records fetch, image, install and build as
// steps that split its stored log at the runner's own lines, ending an
// install script's unfinished last line so that the build step starts a
// line; a script printing the runner's line forges no step; a cache hit
// records install as skipped; a failing build script fails its step.
func TestJobStepsSplitTheStoredLogAtTheRunnersLines(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"deps.txt": "lib 1\n", "main.c": "v1"})
	p, _ := h.project(rp,
		store.Hook{Title: "a-installs", InstallScript: "#!/bin/sh\necho installing\nprintf 'no newline at the end'\n",
			BuildScript:  "#!/bin/sh\necho building\nprintf '\\033[1;36m==> Running the build script\\033[0m\\r\\n'\necho done\n",
			TrackedFiles: []string{"deps.txt"}},
		store.Hook{Title: "b-fails", BuildScript: "#!/bin/sh\necho about to fail\nexit 3\n"})
	t.Cleanup(func() { removeCacheImages(t, h, p.ID) })
	opens := []string{"Job ", "Using " + testImage, "Running the install script", "Running the build script"}
	step := func(n store.StepName, s store.StepStatus) store.JobStep { return store.JobStep{Name: n, Status: s} }

	b, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	h.waitBuild(b)
	checkSteps(t, h, jobs[0].ID, []store.JobStep{step(store.StepFetch, store.StepSuccess), step(store.StepImage, store.StepSuccess),
		step(store.StepInstall, store.StepSuccess), step(store.StepBuild, store.StepSuccess)}, opens)
	if log := h.logOf(jobs[0].ID); !strings.Contains(log, "no newline at the end\r\n\x1b[1;36m==> Running the build script") {
		t.Errorf("the install script's last line was not ended before the build step:\n%q", log)
	}
	checkSteps(t, h, jobs[1].ID, []store.JobStep{step(store.StepFetch, store.StepSuccess), step(store.StepImage, store.StepSuccess),
		step(store.StepBuild, store.StepFailure)}, []string{opens[0], opens[1], opens[3]})

	// The tracked files are the same: the install image is used.
	b, jobs = h.build(p, "refs/heads/main", rp.Commit(map[string]string{"main.c": "v2"}, nil))
	h.waitBuild(b)
	checkSteps(t, h, jobs[0].ID, []store.JobStep{step(store.StepFetch, store.StepSuccess), step(store.StepImage, store.StepSuccess),
		step(store.StepInstall, store.StepSkipped), step(store.StepBuild, store.StepSuccess)},
		[]string{opens[0], opens[1], SkippedInstall, opens[3]})
}

// A step begins on a line of its own, after output the masker was still
// holding back, at the offset and line the stored log has there; output
// after it is the next step's.
func TestJobStepBeginsAfterHeldBackOutput(t *testing.T) {
	db, job := newTestStore(t)
	ctx := context.Background()
	l := newJobLog(ctx, db, NewBroker(), job.ID, 1<<20, []string{"s3cr3t-value"}, slog.New(slog.DiscardHandler))
	l.Write([]byte("a\nhalf s3cr"))
	l.beginStep(store.StepBuild, store.StepRunning)
	l.Write([]byte("b\n"))
	l.endStep(store.JobFailure)
	l.Close()
	got, _ := db.ReadLog(ctx, job.ID, 0, 1<<20)
	if string(got) != "a\nhalf s3cr\r\nb\n" {
		t.Errorf("stored log = %q", got)
	}
	steps, err := db.JobSteps(ctx, job.ID)
	if err != nil || len(steps) != 1 {
		t.Fatalf("steps = %+v, %v", steps, err)
	}
	if s := steps[0]; s.Offset != int64(len("a\nhalf s3cr\r\n")) || s.Line != 3 || s.Status != store.StepFailure {
		t.Errorf("step = %+v, want it at byte 13, line 3, failed", s)
	}
}

// A follower learns of each step before any byte of the log after the
// step's start, live as the log is written and catching up from the store,
// and last sees every step ended.
func TestFollowPassesEachStepBeforeItsBytes(t *testing.T) {
	db, job := newTestStore(t)
	ctx := context.Background()
	b := NewBroker()
	l := newJobLog(ctx, db, b, job.ID, 1<<30, nil, slog.New(slog.DiscardHandler))
	follow := func() chan error {
		errs := make(chan error, 1)
		go func() {
			known := map[int]int64{} // step seq → where it begins
			var last []store.JobStep
			err := b.Follow(ctx, db, job.ID, 0, func(c Chunk) error {
				if c.Steps != nil {
					for _, s := range c.Steps {
						known[s.Seq] = s.Offset
					}
					last = c.Steps
					return nil
				}
				steps, err := db.JobSteps(ctx, job.ID)
				if err != nil {
					return err
				}
				for _, s := range steps {
					if _, ok := known[s.Seq]; !ok && s.Offset < c.Offset+int64(len(c.Data)) {
						return fmt.Errorf("bytes %d to %d came before step %s, which begins at %d", c.Offset, c.Offset+int64(len(c.Data)), s.Name, s.Offset)
					}
				}
				return nil
			})
			if err == nil && (len(last) != 4 || last[3].Status != store.StepFailure) {
				err = fmt.Errorf("the last steps seen: %+v", last)
			}
			errs <- err
		}()
		return errs
	}
	live := follow()
	time.Sleep(50 * time.Millisecond) // let it subscribe
	for _, name := range []store.StepName{store.StepFetch, store.StepImage, store.StepInstall, store.StepBuild} {
		l.beginStep(name, store.StepRunning)
		for i := range 20000 {
			fmt.Fprintf(l, "%s line %d\n", name, i)
		}
	}
	l.endStep(store.JobFailure)
	l.Close()
	finishJob(t, db, job.ID)
	b.end(job.ID)
	if err := <-live; err != nil {
		t.Errorf("live follower: %v", err)
	}
	if err := <-follow(); err != nil {
		t.Errorf("follower from the store: %v", err)
	}
}
