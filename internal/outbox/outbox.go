// Package outbox runs the loop that empties a durable outbox in the
// database (commit statuses, mail): rows are written where something is
// decided, and a sender works through those due.
package outbox

import (
	"context"
	"time"
)

// recheck is the longest the loop sleeps without a wake-up: a wake-up that
// was missed delays an item by no more than this.
const recheck = time.Minute

// Run calls send at once and then whenever wake receives or the next item
// is due by next (ok false: none is), until ctx ends. It returns as soon
// as ctx ends, unless send is running: send must stop promptly then too.
func Run(ctx context.Context, wake <-chan struct{}, next func(context.Context) (at time.Time, ok bool, err error), send func(context.Context)) {
	for {
		send(ctx)
		wait := recheck
		if at, ok, err := next(ctx); err == nil && ok {
			wait = min(wait, max(0, time.Until(at)))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// Drain hands each item due lists to handle, one at a time, and lists
// again until due finds none or ctx ends; it returns due's error. due
// lists a batch at a time, so that a long outbox is never read whole.
func Drain[T any](ctx context.Context, due func(context.Context) ([]T, error), handle func(context.Context, T)) error {
	for ctx.Err() == nil {
		items, err := due(ctx)
		if err != nil || len(items) == 0 {
			return err
		}
		for _, it := range items {
			if ctx.Err() != nil {
				return nil
			}
			handle(ctx, it)
		}
	}
	return nil
}
