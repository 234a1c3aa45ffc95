package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"kozmic/internal/logcmd"
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
// arrival time of each write in them, whether they end the log at the
// size limit, and the annotations they hold; or, in the same queue so that
// it lands between the bytes before and after it, a step of the job
// beginning or the last one ending.
type batch struct {
	data      []byte
	marks     []store.LogMark
	truncated bool
	notes     // the annotations in data
	step      *stepMark
}

// stepMark is a step beginning (begin set) or the running step ending with
// end, at time at.
type stepMark struct {
	begin store.JobStep
	end   store.StepStatus
	at    time.Time
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
	cmds    logcmd.Scanner // finds the annotations in the output as it is taken
	kept    int            // annotations gathered so far, at most store.MaxAnnotations
	cur     batch
	taken   int64 // bytes of log taken so far, the notice aside
	size    int64 // bytes of the log so far, the notice included
	lines   int   // newlines in the log so far
	atLine  bool  // the log so far ends with a newline, or is empty
	stepped bool  // a step has begun
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
	l := &jobLog{ctx: ctx, jobID: jobID, store: st, broker: b, max: max, log: log, began: time.Now(), enc: store.NewLogEncoder(), mask: newMasker(secrets), atLine: true,
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
	start := len(l.cur.data)
	l.cur.data = append(l.cur.data, out...)
	l.taken += int64(len(out))
	l.cmds.Scan(out, l.annotate)
	if l.full {
		l.cur.data = fmt.Appendf(l.cur.data, "\r\n\x1b[1;33m[log truncated at %d bytes]\x1b[0m\r\n", l.max)
		l.cur.truncated = true
	}
	added := l.cur.data[start:]
	l.size += int64(len(added))
	l.lines += bytes.Count(added, []byte{'\n'})
	l.atLine = added[len(added)-1] == '\n'
	if l.full || len(l.cur.data) >= flushBytes {
		l.handOff()
	}
}

// beginStep marks where the job's step name begins: at the log's end as
// stored once what was written before is, on a line of its own (a newline
// ends an unfinished line first). status is store.StepRunning, or
// store.StepSkipped for a step that ends as it begins. The writer stores
// the step after the bytes before it and before the bytes after it, and
// then passes it to live followers, so that they see the log split where
// the store does. A nil jobLog (kozmic exec) records nothing.
func (l *jobLog) beginStep(name store.StepName, status store.StepStatus) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if !l.full {
		// The step before has ended, and what the masker holds back is its
		// output's end: a secret does not run on from one step into the next.
		l.take(l.mask.flush())
		if !l.atLine {
			l.take([]byte("\r\n"))
		}
	}
	l.handOff()
	l.stepped = true
	l.batches <- batch{step: &stepMark{begin: store.JobStep{Name: name, Offset: l.size, Line: l.lines + 1, StartedAt: time.Now(), Status: status}}}
}

// handOff passes the gathered batch to the writer; l.mu is held.
func (l *jobLog) handOff() {
	if len(l.cur.data) == 0 && l.cur.seen.Total() == 0 {
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
		if b.step != nil {
			l.recordStep(*b.step)
		} else {
			l.append(b)
		}
	}
}

// recordStep stores a step's beginning or end, tried again as a batch is
// (see append), and then passes the job's steps to its followers at the
// offset where the log stands. A step the store never took is lost: its
// part of the log shows in the step before.
func (l *jobLog) recordStep(m stepMark) {
	var steps []store.JobStep
	err := retryWrite(l.ctx, l.log, "store job step", l.jobID, func() (err error) {
		ctx := context.WithoutCancel(l.ctx)
		if m.end != "" {
			steps, err = l.store.EndJobStep(ctx, l.jobID, m.end, m.at)
		} else {
			steps, err = l.store.BeginJobStep(ctx, l.jobID, m.begin)
		}
		return err
	})
	if err != nil {
		l.log.Error("store job step: the step is lost", "job", l.jobID, "step", m.begin.Name, "err", err)
		return
	}
	l.broker.publish(l.jobID, Chunk{Offset: m.begin.Offset, Steps: steps})
}

// append stores batch b, publishes it to followers at its offset and then
// stores its annotations. A refused write is tried again until it lands
// (see retryWrite); when that ends without it (the server is stopping, or
// the job is gone), the batch is lost, its annotations with it, the log
// goes on without it and the job goes on.
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
	// A batch of only annotations (of a last line handed off before) has nothing to publish.
	if len(b.data) == 0 || !l.broker.publish(l.jobID, Chunk{Offset: size - int64(len(b.data)), Data: b.data, Marks: b.marks}) {
		l.recycle(b.data)
	}
	l.storeNotes(b.notes) // after: followers need not wait for them
}

// recycle keeps a batch's buffer, which nobody holds any more, for a later
// batch; the writer calls it.
func (l *jobLog) recycle(buf []byte) {
	select {
	case l.spare <- buf[:0]:
	default: // enough kept
	}
}

// endStep ends the running step, if a step began, with the status of a
// job that ended as js, after the output written so far. Nothing may be
// written after it but by Close.
func (l *jobLog) endStep(js store.JobStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || !l.stepped {
		return
	}
	if !l.full {
		l.take(l.mask.flush())
	}
	l.handOff()
	l.batches <- batch{step: &stepMark{begin: store.JobStep{Offset: l.size}, end: store.StepStatusOf(js), at: time.Now()}}
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
	l.cmds.End(l.annotate)
	l.handOff()
	l.closed = true
	close(l.batches)
	close(l.stop)
	l.mu.Unlock()
	<-l.done
}
