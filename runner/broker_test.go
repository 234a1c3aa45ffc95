package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"kozmic/store"
)

// A follower that reads slowly is dropped by the broker and resumes from the
// store: it sees every byte once and in order, live and after the end.
func TestFollowSurvivesBeingDropped(t *testing.T) {
	db, job := newTestStore(t)
	ctx := context.Background()
	b := NewBroker()
	l := newJobLog(context.Background(), db, b, job.ID, 1<<30, nil, slog.New(slog.DiscardHandler))

	var want bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&want, "line %06d of the log\r\n", i)
	}
	type result struct {
		data    []byte
		offsets []int64
		err     error
	}
	follow := func(from int64, slow bool) chan result {
		ch := make(chan result, 1)
		go func() {
			var r result
			r.err = b.Follow(ctx, db, job.ID, from, func(c Chunk) error {
				if c.Offset != from+int64(len(r.data)) {
					return fmt.Errorf("chunk at %d after %d bytes", c.Offset, len(r.data))
				}
				r.data = append(r.data, c.Data...)
				r.offsets = append(r.offsets, c.Offset)
				if slow {
					time.Sleep(3 * time.Millisecond)
				}
				return nil
			})
			ch <- r
		}()
		return ch
	}
	fast, slow, late := follow(0, false), follow(0, true), follow(1000, false)
	time.Sleep(50 * time.Millisecond) // let them subscribe
	// Thousands of small chunks through the log writer's own append: far
	// more than the slow follower's buffer holds.
	data := want.Bytes()
	for len(data) > 0 {
		n := min(240, len(data))
		l.append(batch{data: data[:n]})
		data = data[n:]
	}
	l.Close()
	finishJob(t, db, job.ID)
	b.end(job.ID) // as Runner.finish does once the job's end is recorded

	for name, ch := range map[string]chan result{"fast": fast, "slow": slow} {
		r := <-ch
		if r.err != nil || !bytes.Equal(r.data, want.Bytes()) {
			t.Errorf("%s follower: %v, %d of %d bytes", name, r.err, len(r.data), want.Len())
		}
	}
	if b.Dropped() == 0 {
		t.Error("the slow follower was never dropped: the test did not test resuming")
	}
	if r := <-late; r.err != nil || !bytes.Equal(r.data, want.Bytes()[1000:]) {
		t.Errorf("follower from offset 1000: %v, %d bytes", r.err, len(r.data))
	}
	// After the end, a new follower gets the stored log and returns.
	if r := <-follow(int64(want.Len()-10), false); r.err != nil || string(r.data) != string(want.Bytes()[want.Len()-10:]) {
		t.Errorf("follower after the end: %v, %q", r.err, r.data)
	}
	// A follower stops when its context ends, even while the job runs.
	db2, job2 := newTestStore(t)
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := b.Follow(cctx, db2, job2.ID, 0, func(Chunk) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("follow with an ending context: %v", err)
	}
}

func finishJob(t testing.TB, db *store.DB, id int64) {
	t.Helper()
	ctx := context.Background()
	for _, s := range []store.JobStatus{store.JobRunning, store.JobSuccess} {
		if _, err := db.UpdateJob(ctx, id, store.JobUpdate{Status: s}); err != nil {
			t.Fatal(err)
		}
	}
}

// The live followers of a job are passed each published chunk with one
// Shared, so that what they make of it is made once for all of them: one
// value for each chunk passed shared, however many followers it reached. A
// follower dropped for reading slowly catches up from the store with chunks
// of its own and then shares again. Every follower still sees every byte
// once and in order.
func TestLiveFollowersShareOneValuePerPublishedChunk(t *testing.T) {
	db, job := newTestStore(t)
	ctx := context.Background()
	b := NewBroker()
	l := newJobLog(context.Background(), db, b, job.ID, 1<<30, nil, slog.New(slog.DiscardHandler))
	var made atomic.Int64
	type result struct {
		data       []byte
		shared     map[int64]bool // offsets of the chunks passed shared
		own        int
		wrongValue bool
		err        error
	}
	follow := func(slow bool) chan result {
		ch := make(chan result, 1)
		go func() {
			r := result{shared: map[int64]bool{}}
			r.err = b.Follow(ctx, db, job.ID, 0, func(c Chunk) error {
				r.data = append(r.data, c.Data...)
				if c.Shared == nil {
					r.own++
				} else {
					r.shared[c.Offset] = true
					v := c.Shared.Do("copy", func() any { made.Add(1); return string(c.Data) })
					r.wrongValue = r.wrongValue || v != string(c.Data)
				}
				if slow {
					time.Sleep(3 * time.Millisecond)
				}
				return nil
			})
			ch <- r
		}()
		return ch
	}
	const followers = 4
	chans := []chan result{follow(true)}
	for range followers - 1 {
		chans = append(chans, follow(false))
	}
	for subscribed := 0; subscribed < followers; {
		b.mu.Lock()
		subscribed = len(b.subs[job.ID])
		b.mu.Unlock()
		runtime.Gosched()
	}
	var want bytes.Buffer
	for i := range 2000 {
		n := want.Len()
		fmt.Fprintf(&want, "line %06d of the log\r\n", i)
		l.append(batch{data: want.Bytes()[n:]})
	}
	l.Close()
	finishJob(t, db, job.ID)
	b.end(job.ID)
	union, passed := map[int64]bool{}, 0
	for i, ch := range chans {
		r := <-ch
		if r.err != nil || !bytes.Equal(r.data, want.Bytes()) || r.wrongValue {
			t.Errorf("follower %d: %v, %d of %d bytes, a value of another chunk: %t", i, r.err, len(r.data), want.Len(), r.wrongValue)
		}
		if i == 0 && (r.own == 0 || len(r.shared) == 0) {
			t.Errorf("the slow follower had %d chunks of its own and %d shared: it was not dropped, or did not share again", r.own, len(r.shared))
		}
		for off := range r.shared {
			union[off] = true
		}
		passed += len(r.shared)
	}
	// How many followers a chunk reaches shared depends on how many kept
	// up, which a loaded machine decides; some chunk must reach several.
	if made.Load() != int64(len(union)) || passed <= len(union) {
		t.Errorf("%d values made for %d chunks passed shared %d times to %d followers", made.Load(), len(union), passed, followers)
	}
}
