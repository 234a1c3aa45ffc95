package runner

import (
	"context"
	"testing"

	"kozmic/internal/testrepo"
	"kozmic/store"
)

// Run build knows nothing of a commit on another machine but its id: the
// first job's checkout reads the commit's author and subject for its build,
// and leaves a webhook's build as the webhook described it.
func TestManualBuildGetsItsCommitFromTheJobsCheckout(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"README": "one"})
	rp.Git("commit", "-q", "--allow-empty", "--author", "Ben Hill <ben@example.com>", "-m", "Make the login page faster")
	p, _ := h.project(rp, store.Hook{Title: "test", BuildScript: "#!/bin/sh\ntrue\n"})
	ctx := context.Background()
	manual, _, err := h.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: rp.Git("rev-parse", "HEAD"),
		Trigger: store.Trigger{Kind: store.TriggerManual, User: "ann"}})
	if err != nil {
		t.Fatal(err)
	}
	pushed, _, err := h.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/old", SHA: rp.Git("rev-parse", "HEAD~1")})
	if err != nil {
		t.Fatal(err)
	}
	h.r.Enqueued()
	if got := h.waitBuild(manual); got.Status != store.BuildSuccess || got.Author != "Ben Hill" || got.Message != "Make the login page faster" {
		t.Errorf("manual build = %s by %q: %q; want success by Ben Hill: Make the login page faster", got.Status, got.Author, got.Message)
	}
	if got := h.waitBuild(pushed); got.Status != store.BuildSuccess || got.Author != "" || got.Message != "" {
		t.Errorf("pushed build = %s by %q: %q; want success, its webhook's (empty) description kept", got.Status, got.Author, got.Message)
	}
}
