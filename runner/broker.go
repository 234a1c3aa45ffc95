package runner

import (
	"context"
	"sync"
	"sync/atomic"

	"kozmic/store"
)

// Chunk is a piece of a job's stored log starting at byte Offset; or,
// with Steps set and no Data, the job's steps as they are when its log
// reaches Offset.
type Chunk struct {
	Offset int64
	Data   []byte
	// Steps are all the job's steps so far (store.JobStep), in order; nil
	// in a chunk of log.
	Steps []store.JobStep
	// Marks are the arrival times of Data's bytes, the first at Offset (see
	// store.ReadLogMarks); none for a log stored without times.
	Marks []store.LogMark
	// Shared is the same for every live follower passed this chunk whole
	// as it was published, so that they can do work on it (rendering it,
	// say) once for all; nil for a chunk read from the store or a part of
	// a published one.
	Shared *Shared
}

// Shared holds values made from one published chunk, one for each key,
// for all its followers. The zero value is ready to use.
type Shared struct {
	mu   sync.Mutex
	vals map[any]*sharedValue
}

// sharedValue is one value of a Shared, made once.
type sharedValue struct {
	once sync.Once
	v    any
}

// Do returns the value for key (a comparable value), calling makeValue for it
// if no follower has yet; a follower asking for a key being made waits for
// it.
func (s *Shared) Do(key any, makeValue func() any) any {
	s.mu.Lock()
	if s.vals == nil {
		s.vals = map[any]*sharedValue{}
	}
	v := s.vals[key]
	if v == nil {
		v = &sharedValue{}
		s.vals[key] = v
	}
	s.mu.Unlock()
	v.once.Do(func() { v.v = makeValue() })
	return v.v
}

// subscriberBuffer is how many chunks a live follower may fall behind before
// it is dropped (it then catches up from the store): 1.6 s of a quiet job's
// output, and a bound on what one stalled follower keeps from the collector
// (16 batches of at most 640 KiB) when a job prints fast.
const subscriberBuffer = 16

// Broker passes stored log chunks to live followers. A follower too slow to
// keep up is dropped rather than allowed to slow the job; Follow resumes it
// from the store.
type Broker struct {
	mu      sync.Mutex
	subs    map[int64]map[*subscription]struct{}
	dropped atomic.Int64
}

// subscription is one follower's channel of chunks; the broker closes it
// when the job ends or the follower falls behind.
type subscription struct {
	c     chan Chunk
	ended bool // the job's log ended, as opposed to the follower being dropped
}

// NewBroker returns an empty broker.
func NewBroker() *Broker { return &Broker{subs: map[int64]map[*subscription]struct{}{}} }

// subscribe adds a follower of the chunks job jobID stores from now on.
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

// unsubscribe removes a follower and closes its channel, unless the broker
// has already done so (dropped or ended).
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

// publish passes a stored chunk to the job's followers without blocking: a
// follower whose buffer is full is dropped and its channel closed. It
// says whether the job had followers: if not, nobody holds c.Data.
func (b *Broker) publish(jobID int64, c Chunk) (passed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	passed = len(b.subs[jobID]) > 0
	c.Shared = &Shared{}
	for s := range b.subs[jobID] {
		select {
		case s.c <- c:
		default: // too slow: drop it
			delete(b.subs[jobID], s)
			close(s.c)
			b.dropped.Add(1)
		}
	}
	return passed
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
	ReadLogMarks(ctx context.Context, jobID, from int64, max int) ([]byte, []store.LogMark, error)
	JobByID(ctx context.Context, id int64) (store.Job, error)
	JobSteps(ctx context.Context, jobID int64) ([]store.JobStep, error)
}

// Follow calls fn with a job's log from byte offset from on: what is stored,
// then new output as it is stored, until the job has finished and all of its
// log was passed, or ctx ends, or fn fails. Each byte is passed once, in
// order, also when the follower falls behind and is dropped by the broker.
// A chunk passed whole as it was published carries its Shared. The job's
// steps come in chunks of their own (Chunk.Steps), each before the first
// byte of the log that follows where a step it lists begins; the same
// steps may come more than once.
func (b *Broker) Follow(ctx context.Context, st LogReader, jobID, from int64, fn func(Chunk) error) error {
	pos := from
	// catchUp passes everything stored from pos on.
	catchUp := func() error {
		for {
			data, marks, err := st.ReadLogMarks(ctx, jobID, pos, 256<<10)
			if err != nil {
				return err
			}
			// Read after the bytes, the steps include every step that begins
			// in them: the runner stores a step before the bytes after its start.
			steps, err := st.JobSteps(ctx, jobID)
			if err != nil {
				return err
			}
			if len(steps) > 0 {
				if err := fn(Chunk{Offset: pos, Steps: steps}); err != nil {
					return err
				}
			}
			if len(data) == 0 {
				return nil
			}
			if err := fn(Chunk{Offset: pos, Data: data, Marks: marks}); err != nil {
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
				case c.Steps != nil:
					// Published between the bytes before and after the
					// step: passing it now keeps that order.
					if err := fn(c); err != nil {
						b.unsubscribe(jobID, sub)
						return err
					}
				case end <= pos: // already passed
				case c.Offset > pos: // a gap: take it from the store
					if err := catchUp(); err != nil {
						b.unsubscribe(jobID, sub)
						return err
					}
				default:
					if c.Offset < pos { // a part of it: its own
						c = Chunk{Offset: pos, Data: c.Data[pos-c.Offset:], Marks: marksFrom(c.Marks, pos)}
					}
					if err := fn(c); err != nil {
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

// marksFrom returns the arrival marks of the bytes from offset pos on: the
// one in force at pos, moved there, and those after it.
func marksFrom(marks []store.LogMark, pos int64) []store.LogMark {
	if len(marks) == 0 {
		return nil
	}
	i := 0
	for i+1 < len(marks) && marks[i+1].Offset <= pos {
		i++
	}
	return append([]store.LogMark{{Offset: pos, At: marks[i].At}}, marks[i+1:]...)
}
