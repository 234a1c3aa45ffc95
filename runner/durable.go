package runner

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"kozmic/store"
)

// A write the database refused is tried again after retryFirst, then after
// twice the wait before each time, at most retryMax apart.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 10 * time.Second
)

// retryWrite calls write until it succeeds, waiting between attempts with
// capped exponential backoff, so that a job's log and result that the
// database refused (on a full disk, say) land once it takes writes again.
// It returns write's last error when trying again cannot help (the store
// said ErrNotFound, ErrConflict or ErrInvalid) or when ctx ends: the server
// is stopping, and the next start's recovery settles the job. The first
// failure is logged as an error with what and the job, and a success after
// failures as info.
func retryWrite(ctx context.Context, log *slog.Logger, what string, jobID int64, write func() error) error {
	wait := retryFirst
	for attempt := 1; ; attempt++ {
		err := write()
		if err == nil {
			if attempt > 1 {
				log.Info(what+": done after the database refused it", "job", jobID, "attempts", attempt)
			}
			return nil
		}
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrInvalid) {
			return err
		}
		if attempt == 1 {
			log.Error(what+": the database refused it; trying again until it takes it", "job", jobID, "err", err)
		} else {
			log.Debug(what+": refused again", "job", jobID, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
		wait = min(2*wait, retryMax)
	}
}
