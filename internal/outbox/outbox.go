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
