package runner

import (
	"sync"
	"testing"
	"time"

	"kozmic/internal/testrepo"
	"kozmic/store"
)

// metricsRecorder is a Metrics that keeps what it hears.
type metricsRecorder struct {
	mu       sync.Mutex
	waits    []time.Duration
	finished map[store.JobStatus][]time.Duration
	logBytes int
}

func (m *metricsRecorder) JobStarted(wait time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.waits = append(m.waits, wait)
}

func (m *metricsRecorder) JobFinished(status store.JobStatus, took time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finished == nil {
		m.finished = map[store.JobStatus][]time.Duration{}
	}
	m.finished[status] = append(m.finished[status], took)
}

func (m *metricsRecorder) LogBytes(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.logBytes += n
}

func (m *metricsRecorder) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, d := range m.finished {
		n += len(d)
	}
	return n
}

// Each job a worker runs is reported started, with its wait, and finished,
// with its status and run time as the store has them, and every byte of log
// stored is counted.
func TestRunnerReportsMetrics(t *testing.T) {
	m := &metricsRecorder{}
	h := newHarness(t, Config{Metrics: m})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp,
		store.Hook{Title: "passes", BuildScript: "#!/bin/sh\necho a line of log\nsleep 1\n"},
		store.Hook{Title: "fails", BuildScript: "#!/bin/sh\necho failing\nexit 2\n"})
	b, _ := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	h.waitBuild(b)
	// JobFinished follows the store's record of the result: wait for it too.
	waitFor(t, "both jobs reported finished", func() bool { return m.count() == 2 })

	jobs, err := h.db.Jobs(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.waits) != 2 {
		t.Errorf("%d jobs reported started, want 2", len(m.waits))
	}
	stored := 0
	for _, j := range jobs {
		stored += len(h.logOf(j.ID))
		took := m.finished[j.Status]
		if len(took) != 1 || took[0] != j.FinishedAt.Sub(j.StartedAt) {
			t.Errorf("job %s (%s): reported run times %v, the store has %v", j.HookTitle, j.Status, took, j.FinishedAt.Sub(j.StartedAt))
			continue
		}
		if j.HookTitle == "passes" && (j.Status != store.JobSuccess || took[0] < time.Second) {
			t.Errorf("the job that sleeps 1s: %s after %v", j.Status, took)
		}
	}
	if len(m.finished[store.JobFailure]) != 1 || len(m.finished[store.JobSuccess]) != 1 {
		t.Errorf("finished = %v, want one success and one failure", m.finished)
	}
	if stored == 0 || m.logBytes != stored {
		t.Errorf("counted %d log bytes, the store has %d", m.logBytes, stored)
	}
}

func TestSpan(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		a, b time.Time
		want time.Duration
	}{
		{t0, t0.Add(3 * time.Second), 3 * time.Second},
		{t0, t0.Add(-time.Second), 0}, // the clock was set back
		{time.Time{}, t0, 0},          // never started
	} {
		if got := span(tt.a, tt.b); got != tt.want {
			t.Errorf("span(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
