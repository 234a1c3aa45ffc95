package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"kozmic/store"
)

// parseKeepLogs reads KOZMIC_KEEP_LOGS: a whole number of days such as 90d,
// a Go duration such as 720h, or 0 or "forever" for no retention (0).
func parseKeepLogs(v string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a time to keep logs such as 90d or 720h, or 0 or forever", v)
	switch v {
	case "0", "forever":
		return 0, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n <= 0 || n > math.MaxInt64/int64(24*time.Hour) {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, bad
	}
	return d, nil
}

// logMaintenanceInterval is how often serve deletes old logs and converts
// plain ones.
const logMaintenanceInterval = time.Hour

// compressPerRun bounds the logs one maintenance run converts, so that a
// database with many plain logs is worked through over hours, not in one
// burst of CPU at start.
const compressPerRun = 1000

// maintainLogs looks after stored logs at start and then hourly until ctx
// ends: see maintainLogsOnce.
func maintainLogs(ctx context.Context, db *store.DB, keep time.Duration, log *slog.Logger) {
	t := time.NewTicker(logMaintenanceInterval)
	defer t.Stop()
	for {
		maintainLogsOnce(ctx, db, keep, time.Now(), log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maintainLogsOnce deletes the logs of jobs that finished more than keep
// before now (none when keep is 0), then compresses the logs of finished
// jobs still stored plain by a Kozmic before version 15 (jobs interrupted
// by a stop, logs from before compression), logging what it did. Failures are logged; the next run
// tries again.
func maintainLogsOnce(ctx context.Context, db *store.DB, keep time.Duration, now time.Time, log *slog.Logger) {
	if keep > 0 {
		cutoff := now.Add(-keep)
		n, err := db.DeleteLogsBefore(ctx, cutoff)
		switch {
		case ctx.Err() != nil:
			return // stopping: the next start goes on
		case err != nil:
			log.Error("delete old logs", "err", err, "deleted", n)
		case n > 0:
			log.Info("deleted old logs", "count", n, "finished_before", cutoff.UTC().Format(time.RFC3339))
		}
	}
	n, err := db.CompressFinishedLogs(ctx, compressPerRun)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		log.Error("compress finished logs", "err", err, "compressed", n)
	case n > 0:
		log.Info("compressed logs of finished jobs", "count", n)
	}
}
