package runner

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"kozmic/store"
)

const (
	flushInterval = 250 * time.Millisecond // live output is at most this late
	flushBytes    = 64 << 10               // or this large
	// batchQueue batches may wait for the database: 4 MiB, enough to ride out
	// a WAL checkpoint's fsync without making the container wait, and a
	// bound on memory when the database is slower than the job for long.
	batchQueue = 64
	// MinMaskedLen is the shortest secret value masked in logs: shorter
	// values would blank out ordinary words.
	MinMaskedLen = 4
	mask         = "********"
)

// masker replaces secret values with ******** in a stream written in
// arbitrary pieces. It holds back the end of the stream while it could be the
// start of a secret, so a secret split across two writes is still masked.
type masker struct {
	secrets [][]byte // longest first, so a secret containing another is masked whole
	pending []byte
}

func newMasker(values []string) *masker {
	m := &masker{}
	for _, v := range values {
		if len(v) >= MinMaskedLen {
			m.secrets = append(m.secrets, []byte(v))
		}
	}
	slices.SortFunc(m.secrets, func(a, b []byte) int { return len(b) - len(a) })
	return m
}

// write takes more of the stream and returns what is safe to pass on. It
// decides left to right: where the rest of the stream could still grow into
// a secret it stops and holds the rest; where a secret is complete it masks
// the longest; anything else passes.
func (m *masker) write(p []byte) []byte {
	if len(m.secrets) == 0 {
		return p
	}
	m.pending = append(m.pending, p...)
	out := make([]byte, 0, len(m.pending))
	i := 0
	for i < len(m.pending) {
		// Pass bytes that start no secret in bulk.
		next := len(m.pending)
		for _, s := range m.secrets {
			if j := bytes.IndexByte(m.pending[i:], s[0]); j >= 0 && i+j < next {
				next = i + j
			}
		}
		out = append(out, m.pending[i:next]...)
		if i = next; i == len(m.pending) {
			break
		}
		rest := m.pending[i:]
		if m.couldGrow(rest) {
			break
		}
		matched := false
		for _, s := range m.secrets {
			if bytes.HasPrefix(rest, s) {
				out = append(out, mask...)
				i += len(s)
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, m.pending[i])
			i++
		}
	}
	m.pending = append(m.pending[:0], m.pending[i:]...)
	return out
}

// couldGrow reports whether rest is the unfinished start of some secret.
func (m *masker) couldGrow(rest []byte) bool {
	for _, s := range m.secrets {
		if len(rest) < len(s) && bytes.HasPrefix(s, rest) {
			return true
		}
	}
	return false
}

// flush returns what is held back: at the end of the stream it cannot become a secret.
func (m *masker) flush() []byte {
	out := m.pending
	m.pending = nil
	return out
}

// jobLog is where a job's output goes: it masks secrets, gathers the output
// into batches (every flushInterval, or flushBytes), and a writer goroutine
// appends each batch to the store and then publishes it to live followers,
// so reading the container never waits on the database. Storing stops at
// max bytes with a notice; later output is counted as activity but dropped.
type jobLog struct {
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

func newJobLog(st Store, b *Broker, jobID, max int64, secrets []string, log *slog.Logger) *jobLog {
	l := &jobLog{jobID: jobID, store: st, broker: b, max: max, log: log, mask: newMasker(secrets),
		batches: make(chan []byte, batchQueue), done: make(chan struct{}), stop: make(chan struct{})}
	go l.writeBatches()
	go l.tick()
	return l
}

// Write takes output. It never fails: a log that cannot be stored must not
// fail the job.
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

func (l *jobLog) append(b []byte, truncated bool) {
	if len(b) == 0 && !truncated {
		return
	}
	size, err := l.store.AppendLog(context.Background(), l.jobID, b, truncated)
	if err != nil {
		l.log.Error("store job log", "job", l.jobID, "err", err)
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

// Chunk is a piece of a job's stored log starting at byte Offset.
type Chunk struct {
	Offset int64
	Data   []byte
}

// subscriberBuffer is how many chunks a live follower may fall behind before
// it is dropped (it then catches up from the store).
const subscriberBuffer = 64

// Broker passes stored log chunks to live followers. A follower too slow to
// keep up is dropped rather than allowed to slow the job; Follow resumes it
// from the store.
type Broker struct {
	mu      sync.Mutex
	subs    map[int64]map[*subscription]struct{}
	dropped atomic.Int64
}

type subscription struct {
	c     chan Chunk
	ended bool // the job's log ended, as opposed to the follower being dropped
}

// NewBroker returns an empty broker.
func NewBroker() *Broker { return &Broker{subs: map[int64]map[*subscription]struct{}{}} }

func (b *Broker) subscribe(jobID int64) *subscription {
	s := &subscription{c: make(chan Chunk, subscriberBuffer)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs[jobID] == nil {
		b.subs[jobID] = map[*subscription]struct{}{}
	}
	b.subs[jobID][s] = struct{}{}
	return s
}

func (b *Broker) unsubscribe(jobID int64, s *subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[jobID][s]; ok {
		delete(b.subs[jobID], s)
		close(s.c)
		if len(b.subs[jobID]) == 0 {
			delete(b.subs, jobID)
		}
	}
}

func (b *Broker) publish(jobID int64, c Chunk) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs[jobID] {
		select {
		case s.c <- c:
		default: // too slow: drop it
			delete(b.subs[jobID], s)
			close(s.c)
			b.dropped.Add(1)
		}
	}
}

// Dropped counts the followers dropped for falling behind.
func (b *Broker) Dropped() int64 { return b.dropped.Load() }

// end closes every follower of the job, marked as ended. It is called once
// the job's end is in the store (or the server stops): a follower that
// subscribes after that sees the job finished in the store, so none waits
// for chunks that will never come, and none stops before the result is
// there to read.
func (b *Broker) end(jobID int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs[jobID] {
		s.ended = true
		close(s.c)
	}
	delete(b.subs, jobID)
}

// LogReader is what Follow needs of the store.
type LogReader interface {
	ReadLog(ctx context.Context, jobID, from int64, max int) ([]byte, error)
	JobByID(ctx context.Context, id int64) (store.Job, error)
}

// Follow calls fn with a job's log from byte offset from on: what is stored,
// then new output as it is stored, until the job has finished and all of its
// log was passed, or ctx ends, or fn fails. Each byte is passed once, in
// order, also when the follower falls behind and is dropped by the broker.
func (b *Broker) Follow(ctx context.Context, st LogReader, jobID, from int64, fn func(Chunk) error) error {
	pos := from
	// catchUp passes everything stored from pos on.
	catchUp := func() error {
		for {
			data, err := st.ReadLog(ctx, jobID, pos, 256<<10)
			if err != nil || len(data) == 0 {
				return err
			}
			if err := fn(Chunk{Offset: pos, Data: data}); err != nil {
				return err
			}
			pos += int64(len(data))
		}
	}
	for {
		// Subscribe before reading the store, so nothing stored in between is missed.
		sub := b.subscribe(jobID)
		job, err := st.JobByID(ctx, jobID)
		finished := job.Status.Finished()
		if err == nil {
			err = catchUp()
		}
		if err != nil || finished {
			b.unsubscribe(jobID, sub)
			return err
		}
		for alive := true; alive; {
			select {
			case <-ctx.Done():
				b.unsubscribe(jobID, sub)
				return ctx.Err()
			case c, ok := <-sub.c:
				if !ok {
					alive = false
					break
				}
				end := c.Offset + int64(len(c.Data))
				switch {
				case end <= pos: // already passed
				case c.Offset > pos: // a gap: take it from the store
					if err := catchUp(); err != nil {
						b.unsubscribe(jobID, sub)
						return err
					}
				default:
					if err := fn(Chunk{Offset: pos, Data: c.Data[pos-c.Offset:]}); err != nil {
						b.unsubscribe(jobID, sub)
						return err
					}
					pos = end
				}
			}
		}
		if sub.ended {
			return catchUp() // the log is complete in the store
		}
		// Dropped for being slow: subscribe again and catch up from the store.
	}
}
