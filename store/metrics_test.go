package store

import (
	"context"
	"strings"
	"testing"
)

func TestJobCounts(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	check := func(when string, enqueued, running int) {
		t.Helper()
		e, r, err := db.JobCounts(ctx)
		if err != nil || e != enqueued || r != running {
			t.Errorf("%s: JobCounts = %d enqueued, %d running, %v; want %d, %d", when, e, r, err, enqueued, running)
		}
	}
	check("new build", len(jobs), 0)
	if _, ok, err := db.ClaimJob(ctx); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	check("one claimed", len(jobs)-1, 1)
	running, err := db.JobByID(ctx, jobs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateJob(ctx, running.ID, JobUpdate{Status: JobSuccess}); err != nil {
		t.Fatal(err)
	}
	check("one finished", len(jobs)-1, 0)
}

// JobCounts reads the partial indexes, not the jobs table.
func TestJobCountsUsesIndexes(t *testing.T) {
	db := newTestDB(t)
	plan := queryPlan(t, db, jobCountsQuery)
	all := strings.Join(plan, "\n")
	if !strings.Contains(all, "jobs_enqueued") || !strings.Contains(all, "jobs_running") {
		t.Errorf("plan does not use both partial indexes:\n%s", all)
	}
}
