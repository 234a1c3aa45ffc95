package runner

import (
	"context"
	"time"

	"kozmic/store"
)

// Metrics hears what the workers do, for monitoring; the metrics package
// implements it. Its methods are called from several workers at once and
// must return quickly. Config.Metrics may be nil: nothing is reported.
type Metrics interface {
	// JobStarted is called when a worker takes a job that waited this long
	// in the queue (from its enqueueing to its start).
	JobStarted(wait time.Duration)
	// JobFinished is called when a job a worker took has its final status
	// recorded, after running this long (from its start to its finish).
	JobFinished(status store.JobStatus, took time.Duration)
	// LogBytes is called with the size of each piece of job log stored.
	LogBytes(n int)
}

// metrics returns Config.Metrics, or one that ignores everything.
func (r *Runner) metrics() Metrics {
	if r.cfg.Metrics == nil {
		return noMetrics{}
	}
	return r.cfg.Metrics
}

type noMetrics struct{}

func (noMetrics) JobStarted(time.Duration)                   {}
func (noMetrics) JobFinished(store.JobStatus, time.Duration) {}
func (noMetrics) LogBytes(int)                               {}

// jobStarted reports a claimed job's wait. The times are the store's, so
// they match what the pages show.
func (r *Runner) jobStarted(j store.Job) {
	r.metrics().JobStarted(span(j.CreatedAt, j.StartedAt))
}

// jobFinished reports a finished job's status and run time.
func (r *Runner) jobFinished(j store.Job) {
	r.metrics().JobFinished(j.Status, span(j.StartedAt, j.FinishedAt))
}

// span is the time from a to b, never negative: the clock may have been
// set back in between.
func span(a, b time.Time) time.Duration {
	if a.IsZero() || b.Before(a) {
		return 0
	}
	return b.Sub(a)
}

// meteredLogs is the Store a job's log is written to: it counts the bytes
// stored.
type meteredLogs struct {
	Store
	m Metrics
}

func (s meteredLogs) AppendLogFrames(ctx context.Context, jobID int64, frames []store.LogFrame) (int64, error) {
	size, err := s.Store.AppendLogFrames(ctx, jobID, frames)
	if err == nil {
		for _, f := range frames {
			s.m.LogBytes(f.Len())
		}
	}
	return size, err
}

// logStore is where job logs go: the store, counted when there are metrics.
func (r *Runner) logStore() Store {
	if r.cfg.Metrics == nil {
		return r.store
	}
	return meteredLogs{Store: r.store, m: r.cfg.Metrics}
}
