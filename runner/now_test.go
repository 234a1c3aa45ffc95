package runner

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/store"

	docker "github.com/fsouza/go-dockerclient"
)

// release lets job id, running testimage.HeldScript, end.
func (h *harness) release(id int64) {
	h.t.Helper()
	h.releaseOn(h.dc, id)
}

// releaseOn lets job id, running testimage.HeldScript on the engine dc
// reaches, end.
func (h *harness) releaseOn(dc *docker.Client, id int64) {
	h.t.Helper()
	if err := testimage.Release(dc, LabelJob+"="+strconv.FormatInt(id, 10), LabelInstance+"="+h.db.InstanceID()); err != nil {
		h.t.Fatal(err)
	}
}

// waitSlots polls until the runner's slots satisfy ok, for up to a minute.
func (h *harness) waitSlots(what string, ok func([]int64) bool) []int64 {
	h.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s := h.r.Slots()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("slots are %v, not %s; runner log:\n%s", s, what, h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each job a worker runs holds that worker's slot, one job a slot, from
// its claim until its result is recorded; then the slot is free again and
// the other job keeps its own. Two real jobs on Docker, each held until
// the test lets it end.
func TestSlotsNameTheJobEachWorkerRunsUntilItEnds(t *testing.T) {
	h := newHarness(t, Config{Workers: 2})
	if s := h.r.Slots(); !slices.Equal(s, []int64{0, 0}) {
		t.Fatalf("idle slots = %v, want two empty ones", s)
	}
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp, store.Hook{Title: "held", BuildScript: testimage.HeldScript})
	_, first := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	_, second := h.build(p, "refs/heads/main", rp.Commit(map[string]string{"README": "y"}, nil))
	a, b := first[0].ID, second[0].ID
	for _, id := range []int64{a, b} {
		h.waitJob(id, func(j store.Job) bool { return strings.Contains(h.logOf(j.ID), "holding") })
	}
	both := h.r.Slots()
	if len(both) != 2 || !slices.Contains(both, a) || !slices.Contains(both, b) {
		t.Fatalf("slots while both run = %v, want jobs %d and %d", both, a, b)
	}
	slotB := slices.Index(both, b)

	h.release(a)
	if j := h.waitJob(a, finished); j.Status != store.JobSuccess {
		t.Fatalf("job %d: %s; log:\n%s", a, j.Status, h.logOf(a))
	}
	after := h.waitSlots("free of the finished job", func(s []int64) bool { return !slices.Contains(s, a) })
	if after[slotB] != b || after[1-slotB] != 0 {
		t.Errorf("slots after job %d ended = %v; want %d still in slot %d, the other free", a, after, b, slotB+1)
	}
	if j, _ := h.db.JobByID(context.Background(), b); j.Status != store.JobRunning {
		t.Errorf("job %d is %s while it still holds its slot", b, j.Status)
	}

	h.release(b)
	h.waitJob(b, finished)
	h.waitSlots("all free", func(s []int64) bool { return slices.Equal(s, []int64{0, 0}) })
}
