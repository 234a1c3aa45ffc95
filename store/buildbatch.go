package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// maxBuildBatch bounds the builds one transaction of buildBatcher creates,
// so that a burst of webhooks does not hold the writer from the runner's
// writes for long; the rest wait for the next transaction.
const maxBuildBatch = 128

// errClosed is what a build asked for after Close gets.
var errClosed = errors.New("the database is closed")

// buildBatcher groups concurrent CreateBuild calls into one write
// transaction (group commit): a commit costs as much for one build as for
// many, as the pages they change are mostly the same. A goroutine, started
// by the first call, takes every call that is waiting once the writer
// connection is its own and writes them together; each call gets its own
// result or error, and one that fails leaves the others' builds in place
// (see writeBuildBatch). Its zero value is ready; close stops it.
type buildBatcher struct {
	mu      sync.Mutex
	pending []*buildRequest
	started bool
	closed  bool
	wake    chan struct{} // holds a token while calls are pending; closed by close
	done    chan struct{} // closed when the goroutine has returned
}

// buildRequest is one CreateBuild call waiting for its turn.
type buildRequest struct {
	ctx context.Context
	nb  NewBuild

	run      BuildRun
	err      error
	panicked any           // what the call's work panicked with, to panic with again in the caller
	done     chan struct{} // closed when run, err and panicked are final
}

// create creates nb's build in db's next batch and returns once it is
// committed or has failed.
func (q *buildBatcher) create(ctx context.Context, db *DB, nb NewBuild) (BuildRun, error) {
	r := &buildRequest{ctx: ctx, nb: nb, done: make(chan struct{})}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return BuildRun{}, fmt.Errorf("create build: %w", errClosed)
	}
	if !q.started {
		q.started = true
		q.wake, q.done = make(chan struct{}, 1), make(chan struct{})
		go db.runBuildBatches(q)
	}
	q.pending = append(q.pending, r)
	select {
	case q.wake <- struct{}{}:
	default: // a token is waiting already
	}
	q.mu.Unlock()
	// Waiting even when ctx ends keeps the answer true: a build once in a
	// transaction is committed with the others or not at all.
	<-r.done
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.run, r.err
}

// close lets the calls pending be written, fails the calls that come
// later, and returns once the goroutine has stopped. Closing again does
// nothing more.
func (q *buildBatcher) close() {
	q.mu.Lock()
	started := q.started
	if started && !q.closed {
		close(q.wake)
	}
	q.closed = true
	q.mu.Unlock()
	if started {
		<-q.done
	}
}

// waiting says whether calls are pending.
func (q *buildBatcher) waiting() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending) > 0
}

// take removes up to maxBuildBatch pending calls from the queue and
// returns them.
func (q *buildBatcher) take() []*buildRequest {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.pending), maxBuildBatch)
	batch := q.pending[:n:n]
	if q.pending = q.pending[n:]; len(q.pending) == 0 {
		q.pending = nil // lets the array, and the calls it holds, go
	}
	return batch
}

// runBuildBatches writes q's pending calls, a batch per transaction, until
// q is closed; the calls pending then are written before it returns.
func (db *DB) runBuildBatches(q *buildBatcher) {
	defer close(q.done)
	for range q.wake {
		for q.waiting() {
			db.writeBuildBatch(q)
		}
	}
}

// writeBuildBatch takes q's pending calls once the writer is free and
// creates their builds in one transaction. A call refused before it writes
// (see insertBuild) gets its error there and the others go on; one that
// fails after writing cannot be taken out of the transaction alone (a
// savepoint for each call would copy every page it changes once more), so
// the transaction is rolled back, that call gets its error, and the others
// are written again without it. If the transaction itself fails (to begin
// or to commit), every call in it gets that error.
func (db *DB) writeBuildBatch(q *buildBatcher) {
	var batch []*buildRequest
	defer func() {
		p := recover()
		for _, r := range batch {
			r.panicked = p
			close(r.done)
		}
	}()
	// Not a caller's context: one that ends interrupts the connection,
	// which would roll back the builds of every other caller with it.
	ctx := context.Background()
	for {
		var failed int // 1 + the index in batch of a call that failed after writing
		err := db.writeTx(ctx, func(tx txn) error {
			if batch == nil {
				// Taken only now, so that calls that came while the writer
				// was busy join this transaction.
				batch = q.take()
			}
			for i, r := range batch {
				r.run, r.err = BuildRun{}, nil
				if err := r.ctx.Err(); err != nil {
					r.err = fmt.Errorf("create build: %w", err)
					continue
				}
				wrote, err := db.insertBuild(ctx, tx, r.nb, nil, &r.run)
				if err != nil {
					r.run, r.err = BuildRun{}, err
					if wrote {
						failed = i + 1
						return err
					}
				}
			}
			return nil
		})
		switch {
		case failed > 0:
			r := batch[failed-1]
			batch = slices.Delete(batch, failed-1, failed)
			close(r.done)
			if len(batch) > 0 {
				continue
			}
		case err != nil && batch == nil:
			// The transaction never began: fail what it would have taken.
			batch = q.take()
			fallthrough
		case err != nil:
			for _, r := range batch {
				r.run, r.err = BuildRun{}, err
			}
		}
		return
	}
}
