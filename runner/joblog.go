package runner

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"kozmic/store"
)

const (
	// flushInterval: live output is at most this late. Only a tick that
	// finds output stores it, so a quiet job costs no transactions and a
	// chatty one at most ten a second.
	flushInterval = 100 * time.Millisecond
	// flushBytes: or a batch is this large. A batch is one write
	// transaction, whose commit costs about as much as compressing the
	// batch: a job printing fast is stored in few large ones.
	flushBytes = 512 << 10
	// batchQueue batches may wait for the database: 4 MiB, enough to ride out
	// a WAL checkpoint's fsync without making the container wait, and a
	// bound on memory when the database is slower than the job for long.
	batchQueue = 8
)

// batch is output gathered for the writer: the log's next bytes, the
// arrival time of each write in them, and whether they end the log at the
// size limit.
type batch struct {
	data      []byte
	marks     []store.LogMark
	truncated bool
}

// jobLog is where a job's output goes: it masks secrets, notes when each
// write arrived, gathers the output into batches (every flushInterval, or
// flushBytes), and a writer goroutine compresses each batch into frames
// (store.LogEncoder), stores them and then publishes the batch to live
// followers, so reading the container never waits on the database or the
// compressor. A batch the database refuses (on a full disk, say) is tried
// again until it lands, while later output queues behind it (batchQueue
// batches, then the reader waits). At max bytes the log ends with a notice;
// later output is dropped as it arrives (the stall watchdog still counts it
// as activity, before it gets here).
type jobLog struct {
	ctx    context.Context // its end (the server stopping) ends retrying a refused batch
	jobID  int64
	store  Store
	broker *Broker
	max    int64
	log    *slog.Logger
	began  time.Time         // arrival times count from here
	enc    *store.LogEncoder // the writer's

	mu      sync.Mutex
	mask    *masker
	cur     batch
	taken   int64 // bytes of log taken so far, the notice aside
	full    bool  // the log reached max: output is dropped
	closed  bool
	batches chan batch // bounded (batchQueue): a database slower for long slows the reader
	// spare holds batch buffers the writer is done with, for the next
	// batches: a job printing fast would otherwise allocate (and the
	// collector clear) a new one per batch.
	spare chan []byte
	done  chan struct{}
	stop  chan struct{}
}

// newJobLog starts the writer and the flush ticker of job jobID's log, whose
// stored log must still be empty; Close stops them. The end of ctx stops
// retrying a batch the database refused, which is then lost.
func newJobLog(ctx context.Context, st Store, b *Broker, jobID, max int64, secrets []string, log *slog.Logger) *jobLog {
	l := &jobLog{ctx: ctx, jobID: jobID, store: st, broker: b, max: max, log: log, began: time.Now(), enc: store.NewLogEncoder(), mask: newMasker(secrets),
		batches: make(chan batch, batchQueue), spare: make(chan []byte, 2), done: make(chan struct{}), stop: make(chan struct{})}
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
	if !l.closed && !l.full {
		l.take(l.mask.write(p))
	}
	return len(p), nil
}

// take adds masked output to the batch, noting its arrival time, up to max
// bytes; reaching max ends the log with the notice. l.mu is held.
func (l *jobLog) take(out []byte) {
	if len(out) == 0 {
		return
	}
	at := time.Since(l.began)
	// Marks within one millisecond would tell nothing more.
	if n := len(l.cur.marks); n == 0 || at.Milliseconds() != l.cur.marks[n-1].At.Milliseconds() {
		l.cur.marks = append(l.cur.marks, store.LogMark{Offset: l.taken, At: at})
	}
	if rest := l.max - l.taken; int64(len(out)) > rest {
		out, l.full = out[:rest], true
	}
	l.cur.data = append(l.cur.data, out...)
	l.taken += int64(len(out))
	if l.full {
		l.cur.data = fmt.Appendf(l.cur.data, "\r\n\x1b[1;33m[log truncated at %d bytes]\x1b[0m\r\n", l.max)
		l.cur.truncated = true
		l.handOff()
	} else if len(l.cur.data) >= flushBytes {
		l.handOff()
	}
}

// handOff passes the gathered batch to the writer; l.mu is held.
func (l *jobLog) handOff() {
	if len(l.cur.data) == 0 {
		return
	}
	l.batches <- l.cur
	select {
	case buf := <-l.spare:
		l.cur = batch{data: buf}
	default:
		l.cur = batch{data: make([]byte, 0, flushBytes+flushBytes/4)}
	}
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

// writeBatches compresses and stores the batches in order until Close.
func (l *jobLog) writeBatches() {
	defer close(l.done)
	for b := range l.batches {
		l.append(b)
	}
}

// append stores batch b and then publishes it to followers at its offset.
// A refused write is tried again until it lands (see retryWrite); when that
// ends without it (the server is stopping, or the job is gone), the batch
// is lost, the log goes on without it and the job goes on.
func (l *jobLog) append(b batch) {
	frames := l.enc.Encode(b.data, b.marks, b.truncated)
	var size int64
	err := retryWrite(l.ctx, l.log, "store job log", l.jobID, func() (err error) {
		// Not cut short by the stop: a write that began is let finish.
		size, err = l.store.AppendLogFrames(context.WithoutCancel(l.ctx), l.jobID, frames)
		return err
	})
	if err != nil {
		l.enc.Lost(frames)
		l.log.Error("store job log: a piece of the log is lost", "job", l.jobID, "bytes", len(b.data), "err", err)
		return
	}
	if !l.broker.publish(l.jobID, Chunk{Offset: size - int64(len(b.data)), Data: b.data, Marks: b.marks}) {
		l.recycle(b.data)
	}
}

// recycle keeps a batch's buffer, which nobody holds any more, for a later
// batch; the writer calls it.
func (l *jobLog) recycle(buf []byte) {
	select {
	case l.spare <- buf[:0]:
	default: // enough kept
	}
}

// Close stores what is left. Followers are ended by Runner.finish once the
// job's result is in the store, so that a follower that stops then reads it.
func (l *jobLog) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	if !l.full {
		l.take(l.mask.flush())
	}
	l.handOff()
	l.closed = true
	close(l.batches)
	close(l.stop)
	l.mu.Unlock()
	<-l.done
}
