package runner

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testrepo"
	"kozmic/store"
)

// heldScript runs until the file /tmp/go appears in its container, which
// the test makes (release) when it wants the job to end.
const heldScript = "#!/bin/sh\necho holding\nwhile [ ! -e /tmp/go ]; do sleep 0.1; done\necho released\n"

// release makes /tmp/go in the running build container of job id, so that
// heldScript ends.
func (h *harness) release(id int64) {
	h.t.Helper()
	cs, err := h.dc.ListContainers(docker.ListContainersOptions{Filters: map[string][]string{
		"label": {LabelJob + "=" + strconv.FormatInt(id, 10), LabelInstance + "=" + h.db.InstanceID()}, "status": {"running"}}})
	if err != nil || len(cs) != 1 {
		h.t.Fatalf("job %d's running containers: %d, %v", id, len(cs), err)
	}
	ex, err := h.dc.CreateExec(docker.CreateExecOptions{Container: cs[0].ID, Cmd: []string{"touch", "/tmp/go"}})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.dc.StartExec(ex.ID, docker.StartExecOptions{}); err != nil {
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
	p, _ := h.project(rp, store.Hook{Title: "held", BuildScript: heldScript})
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
