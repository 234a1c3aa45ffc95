package runner

import (
	"context"
	"errors"
	"testing"
	"time"
)

// testPool is a pool of engines a (2 slots) and b (1 slot), without
// clients: placement asks nothing of an engine.
func testPool() (*pool, *member, *member) {
	a := &member{engine: newDockerEngine(nil, "a", nil), slots: 2, jobs: map[int64]context.CancelCauseFunc{}}
	b := &member{engine: newDockerEngine(nil, "b", nil), slots: 1, jobs: map[int64]context.CancelCauseFunc{}}
	return newPool([]*member{a, b}), a, b
}

// A seat is given only for a free slot of a ready engine that no other
// seat holds; a seat goes to the first preferred engine with a free slot,
// else to the one with the most free slots.
func TestPoolSeatsOnlyFreeSlotsOfReadyEnginesAndPlacesByPreference(t *testing.T) {
	p, a, b := testPool()
	if s := p.admit(); s != nil {
		t.Fatal("a seat while no engine is ready")
	}
	p.setReady(a, true, nil)
	s1, s2 := p.admit(), p.admit()
	if s1 == nil || s2 == nil || p.admit() != nil {
		t.Fatal("want exactly two seats for a's two slots")
	}
	p.setReady(b, true, nil)
	s3 := p.admit()
	if s3 == nil || p.admit() != nil {
		t.Fatal("want exactly one more seat for b's slot")
	}
	ctx := context.Background()
	noop := func(error) {}
	for i, tc := range []struct {
		s      *seat
		prefer []*member
		want   *member
	}{{s1, []*member{b}, b}, {s2, []*member{b}, a}, {s3, nil, a}} {
		m, err := tc.s.place(ctx, int64(i+1), tc.prefer, noop)
		if err != nil || m != tc.want {
			t.Errorf("seat %d placed on %v, %v; want %s", i+1, m.name(), err, tc.want.name())
		}
	}
	if st := (&Runner{pool: p}).Engines(); st[0].Busy != 2 || st[1].Busy != 1 || st[0].Started != 2 || !st[1].Ready {
		t.Errorf("engines %+v", st)
	}
	s1.release(1)
	if s := p.admit(); s == nil {
		t.Error("no seat for the slot b freed")
	} else if m, _ := s.place(ctx, 4, nil, noop); m != b {
		t.Errorf("placed on %s, want b, the only free one", m.name())
	}
}

// An engine found not ready cancels its jobs with engineLost and gives no
// seats; a seat taken before it was lost waits in place until a slot
// frees elsewhere.
func TestPoolLostEngineCancelsItsJobsAndAPlaceWaitsForASlot(t *testing.T) {
	p, a, b := testPool()
	p.setReady(a, true, nil)
	p.setReady(b, true, nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	onB := p.admit()
	if m, err := onB.place(ctx, 1, []*member{b}, cancel); m != b || err != nil {
		t.Fatalf("placed on %v, %v; want b", m, err)
	}
	full := []*seat{p.admit(), p.admit()} // a's two slots, seated, not yet placed
	p.setReady(b, false, engineLost{name: "b", endpoint: "tcp://b:2376"})
	if l, ok := lostEngine(context.Cause(ctx)); !ok || l.name != "b" {
		t.Fatalf("the job on b: cause %v, want engineLost", context.Cause(ctx))
	}
	onB.release(1)
	if p.admit() != nil {
		t.Error("a seat with a's slots seated and b lost")
	}
	for i, s := range full {
		if m, err := s.place(context.Background(), int64(10+i), nil, func(error) {}); m != a || err != nil {
			t.Fatalf("seat %d placed on %v, %v; want a", i, m, err)
		}
	}
	// b comes back: a seat taken then, and b lost again before it is
	// placed, waits until a slot of a frees.
	p.setReady(b, true, nil)
	late := p.admit()
	p.setReady(b, false, engineLost{name: "b"})
	placed := make(chan *member)
	go func() {
		m, _ := late.place(context.Background(), 20, nil, func(error) {})
		placed <- m
	}()
	select {
	case m := <-placed:
		t.Fatalf("placed on %s with no free slot", m.name())
	case <-time.After(50 * time.Millisecond):
	}
	full[0].release(10)
	if m := <-placed; m != a {
		t.Errorf("placed on %s once a's slot freed, want a", m.name())
	}
	waitCtx, stop := context.WithCancelCause(context.Background())
	stuck := p.admit()
	if stuck != nil {
		t.Fatal("a seat with every ready slot taken")
	}
	stop(errors.New("canceled by alice"))
	if _, err := (&seat{p: p}).place(waitCtx, 30, nil, func(error) {}); err == nil || err.Error() != "canceled by alice" {
		t.Errorf("a place whose job is canceled while it waits: %v", err)
	}
}
