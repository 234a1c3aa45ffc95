package store

import "context"

// jobCountsQuery counts through the partial indexes jobs_enqueued and
// jobs_running, so it stays cheap however many finished jobs there are.
const jobCountsQuery = `SELECT
	(SELECT COUNT(*) FROM jobs WHERE status = 'enqueued'),
	(SELECT COUNT(*) FROM jobs WHERE status = 'running')`

// JobCounts returns how many jobs wait in the queue (enqueued) and how many
// are running, for metrics.
func (db *DB) JobCounts(ctx context.Context) (enqueued, running int, err error) {
	err = db.read.QueryRowContext(ctx, jobCountsQuery).Scan(&enqueued, &running)
	return enqueued, running, wrap("count jobs", err)
}
