package runner

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"kozmic/store"
)

// Live followers get each chunk with the arrival times of its bytes, the
// same, to the millisecond, as a read of the stored log gives for those
// bytes: also a follower that joins inside a published chunk, which gets
// the time in force where it joined.
func TestLiveChunksCarryTheArrivalTimesTheStoreKeeps(t *testing.T) {
	db, job := newTestStore(t)
	ctx := context.Background()
	b := NewBroker()
	l := newJobLog(context.Background(), db, b, job.ID, 1<<30, nil, slog.New(slog.DiscardHandler))
	type result struct {
		chunks []Chunk
		err    error
	}
	follow := func(from int64) chan result {
		ch := make(chan result, 1)
		go func() {
			var r result
			r.err = b.Follow(ctx, db, job.ID, from, func(c Chunk) error {
				r.chunks = append(r.chunks, c)
				return nil
			})
			ch <- r
		}()
		return ch
	}
	whole, inside := follow(0), follow(5)
	time.Sleep(50 * time.Millisecond) // let them subscribe
	for i := range 40 {
		l.Write(fmt.Appendf(nil, "line %d\n", i))
		time.Sleep(3 * time.Millisecond) // writes a few milliseconds apart: marks of their own
	}
	l.Close()
	finishJob(t, db, job.ID)
	b.end(job.ID)
	for name, ch := range map[string]chan result{"from the start": whole, "from inside a chunk": inside} {
		r := <-ch
		if r.err != nil || len(r.chunks) == 0 {
			t.Fatalf("%s: %d chunks, %v", name, len(r.chunks), r.err)
		}
		marks := 0
		for _, c := range r.chunks {
			_, want, err := db.ReadLogMarks(ctx, job.ID, c.Offset, len(c.Data))
			if err != nil {
				t.Fatal(err)
			}
			if got := msMarks(c.Marks); got != msMarks(want) || len(c.Marks) == 0 || c.Marks[0].Offset != c.Offset {
				t.Errorf("%s: chunk at %d has marks %s, the store %s", name, c.Offset, got, msMarks(want))
			}
			marks += len(c.Marks)
		}
		if marks < 2 {
			t.Errorf("%s: %d marks in all: the writes were not told apart", name, marks)
		}
	}
}

// msMarks writes marks as offset@milliseconds, the precision stored.
func msMarks(marks []store.LogMark) string {
	var s string
	for _, m := range marks {
		s += fmt.Sprintf("%d@%d ", m.Offset, m.At.Milliseconds())
	}
	return s
}
