package runner

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

const (
	flushInterval = 250 * time.Millisecond // live output is at most this late
	flushBytes    = 64 << 10               // or this large
	// batchQueue batches may wait for the database: 4 MiB, enough to ride out
	// a WAL checkpoint's fsync without making the container wait, and a
	// bound on memory when the database is slower than the job for long.
	batchQueue = 64
)

// jobLog is where a job's output goes: it masks secrets, gathers the output
// into batches (every flushInterval, or flushBytes), and a writer goroutine
// appends each batch to the store and then publishes it to live followers,
// so reading the container never waits on the database. A batch the
// database refuses (on a full disk, say) is tried again until it lands,
// while later output queues behind it (batchQueue batches, then the reader
// waits). Storing stops at max bytes with a notice; later output is counted
// as activity but dropped.
type jobLog struct {
	ctx    context.Context // its end (the server stopping) ends retrying a refused batch
	jobID  int64
	store  Store
	broker *Broker
	max    int64
	log    *slog.Logger

	mu      sync.Mutex
	mask    *masker
	buf     []byte
	closed  bool
	batches chan []byte // bounded (batchQueue): a database slower for long slows the reader
	done    chan struct{}
	stop    chan struct{}
	size    atomic.Int64 // bytes stored
}

// newJobLog starts the writer and the flush ticker of job jobID's log;
// Close stops them. The end of ctx stops retrying a batch the database
// refused, which is then lost.
func newJobLog(ctx context.Context, st Store, b *Broker, jobID, max int64, secrets []string, log *slog.Logger) *jobLog {
	l := &jobLog{ctx: ctx, jobID: jobID, store: st, broker: b, max: max, log: log, mask: newMasker(secrets),
		batches: make(chan []byte, batchQueue), done: make(chan struct{}), stop: make(chan struct{})}
	go l.writeBatches()
	go l.tick()
	return l
}

// Write takes output. It never fails: a log that cannot be stored must not
// fail the job. It waits while batchQueue batches wait for a database that
// is slow or refuses them.
func (l *jobLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	l.buf = append(l.buf, l.mask.write(p)...)
	if len(l.buf) >= flushBytes {
		l.handOff()
	}
	return len(p), nil
}

// handOff passes the gathered bytes to the writer; l.mu is held.
func (l *jobLog) handOff() {
	if len(l.buf) == 0 {
		return
	}
	l.batches <- l.buf
	l.buf = make([]byte, 0, flushBytes+flushBytes/4)
}

// tick hands what was gathered to the writer every flushInterval until Close.
func (l *jobLog) tick() {
	t := time.NewTicker(flushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.mu.Lock()
			if !l.closed {
				l.handOff()
			}
			l.mu.Unlock()
		case <-l.stop:
			return
		}
	}
}

// writeBatches stores the batches in order until Close; past max bytes it
// stores the truncation notice once and drops the rest.
func (l *jobLog) writeBatches() {
	defer close(l.done)
	truncated := false
	for b := range l.batches {
		if truncated {
			continue
		}
		size := l.size.Load()
		if size+int64(len(b)) > l.max {
			b = b[:l.max-size]
			truncated = true
		}
		l.append(b, false)
		if truncated {
			l.append([]byte(fmt.Sprintf("\r\n\x1b[1;33m[log truncated at %d bytes]\x1b[0m\r\n", l.max)), true)
		}
	}
}

// append stores b and then publishes it to followers at its offset. A
// refused write is tried again until it lands (see retryWrite); when that
// ends without it (the server is stopping, or the job is gone), the batch
// is lost and the job goes on.
func (l *jobLog) append(b []byte, truncated bool) {
	if len(b) == 0 && !truncated {
		return
	}
	var size int64
	err := retryWrite(l.ctx, l.log, "store job log", l.jobID, func() (err error) {
		// Not cut short by the stop: a write that began is let finish.
		size, err = l.store.AppendLog(context.WithoutCancel(l.ctx), l.jobID, b, truncated)
		return err
	})
	if err != nil {
		l.log.Error("store job log: a piece of the log is lost", "job", l.jobID, "bytes", len(b), "err", err)
		return
	}
	l.size.Store(size)
	l.broker.publish(l.jobID, Chunk{Offset: size - int64(len(b)), Data: b})
}

// Close stores what is left. Followers are ended by Runner.finish once the
// job's result is in the store, so that a follower that stops then reads it.
func (l *jobLog) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.buf = append(l.buf, l.mask.flush()...)
	l.handOff()
	l.closed = true
	close(l.batches)
	close(l.stop)
	l.mu.Unlock()
	<-l.done
}
