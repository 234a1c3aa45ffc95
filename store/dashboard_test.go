package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The now panel lists the running and waiting jobs of the projects a user
// may see (owned, member of, or public), each waiting one with its place in
// the whole queue, others' jobs ahead of it included; jobs of projects the
// user may not see are counted and never listed.
func TestActivityListsOnlyJobsTheUserMaySeeWithTheirPlaceInTheWholeQueue(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	mine := newFixture(t, db, "acme/mine")      // two hooks: two jobs a build
	shared := newFixture(t, db, "zed/shared")   // the user is a member
	hidden := newFixture(t, db, "zed/hidden")   // private, not the user's
	public := newFixture(t, db, "zed/public-x") // made public below
	if err := db.SetMembership(ctx, Membership{ProjectID: shared.project.ID, UserID: mine.owner.ID}); err != nil {
		t.Fatal(err)
	}
	pub, err := db.CreateProject(ctx, NewProject{OwnerID: public.owner.ID, Source: SourceGit, FullName: "zed/public",
		GitURL: "/srv/git/zed/public", IsPublic: true, WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateHook(ctx, Hook{ProjectID: pub.ID, Title: "pub", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	var jobs []Job // in the queue's order
	for i, p := range []int64{hidden.project.ID, mine.project.ID, hidden.project.ID, shared.project.ID, pub.ID} {
		_, js, err := db.CreateBuild(ctx, NewBuild{ProjectID: p, Ref: "refs/heads/main", SHA: fmt.Sprintf("%040d", i)})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, js...)
	}
	// The queue: hidden×2, mine×2, hidden×2, shared×2, public×1. The
	// first three are claimed: two of hidden's and one of mine run.
	for range 3 {
		if _, ok, err := db.ClaimJob(ctx); !ok || err != nil {
			t.Fatalf("claim: %v %v", ok, err)
		}
	}
	a, err := db.Activity(ctx, mine.owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.RunningAll != 3 || a.QueuedAll != len(jobs)-3 {
		t.Errorf("counted %d running, %d queued; want 3 and %d", a.RunningAll, a.QueuedAll, len(jobs)-3)
	}
	if len(a.Running) != 1 {
		t.Fatalf("running: %+v, want mine's first job alone", a.Running)
	}
	if r := a.Running[0]; r.ID != jobs[2].ID || r.Status != JobRunning || r.Project != "acme/mine" || r.ProjectID != mine.project.ID ||
		r.BuildNumber != 1 || r.Hook != "lint" || r.StartedAt.IsZero() || r.CreatedAt.IsZero() || r.Position != 0 {
		t.Errorf("running job = %+v", r)
	}
	type place struct {
		id      int64
		project string
		pos     int
	}
	var got []place
	for _, q := range a.Queued {
		if q.Status != JobEnqueued || !q.StartedAt.IsZero() {
			t.Errorf("queued job %+v", q)
		}
		got = append(got, place{q.ID, q.Project, q.Position})
	}
	// Hidden's second build waits at places 2 and 3, unlisted.
	want := []place{{jobs[3].ID, "acme/mine", 1}, {jobs[6].ID, "zed/shared", 4}, {jobs[7].ID, "zed/shared", 5}, {jobs[8].ID, "zed/public", 6}}
	if !slices.Equal(got, want) {
		t.Errorf("queued = %+v, want %+v", got, want)
	}

	// The owner of the hidden project sees theirs, the public one's, and
	// nothing of acme/mine or zed/shared.
	a, err = db.Activity(ctx, hidden.owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range append(a.Running, a.Queued...) {
		names = append(names, j.Project)
	}
	if strings.Join(names, " ") != "zed/hidden zed/hidden zed/hidden zed/hidden zed/public" || a.RunningAll != 3 {
		t.Errorf("the hidden project's owner sees %v (of %d running)", names, a.RunningAll)
	}
}

// The queue listing stops at ActivityQueued jobs and looks no deeper than
// QueueScanned places, however long the queue.
func TestActivityListsABoundedPartOfALongQueue(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	mine := newFixture(t, db, "acme/mine")
	add := func(p Project, n int, from int) {
		for i := range n {
			if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: fmt.Sprintf("%040d", from+i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(mine.project, ActivityQueued, 0) // 2 × ActivityQueued jobs
	a, err := db.Activity(ctx, mine.owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Queued) != ActivityQueued || a.Queued[ActivityQueued-1].Position != ActivityQueued || a.QueuedAll != 2*ActivityQueued {
		t.Errorf("listed %d, the last at %d, of %d", len(a.Queued), a.Queued[len(a.Queued)-1].Position, a.QueuedAll)
	}
	// Behind QueueScanned of others' jobs, the user's are counted only.
	db = newTestDB(t)
	other := newFixture(t, db, "zed/other")
	mine = newFixture(t, db, "acme/mine")
	add(other.project, QueueScanned/2, 0)
	add(mine.project, 1, QueueScanned)
	a, err = db.Activity(ctx, mine.owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Queued) != 0 || a.QueuedAll != QueueScanned+2 {
		t.Errorf("behind %d others' jobs: listed %+v of %d", QueueScanned, a.Queued, a.QueuedAll)
	}
}

// A dashboard project comes with its ten newest builds, oldest first, and
// the newest build of its default branch that is no untrusted pull
// request's, as its badge shows; a project without builds, or whose
// default branch is unknown, with none.
func TestDashboardProjectsCarryTheirTenNewestBuildsAndDefaultBranchBuild(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	empty := newFixture(t, db, "acme/empty")
	if err := db.SetMembership(ctx, Membership{ProjectID: empty.project.ID, UserID: f.owner.ID}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetDefaultBranch(ctx, f.project.ID, "main"); err != nil {
		t.Fatal(err)
	}
	refs := []string{"refs/heads/main", "refs/heads/dev", "refs/heads/main", "refs/pull/3/head"}
	var statuses []BuildStatus
	for i := range 13 {
		nb := NewBuild{ProjectID: f.project.ID, Ref: refs[i%len(refs)], SHA: fmt.Sprintf("%040d", i)}
		if i == 12 { // the newest: a fork's pull request of a branch called main
			nb.Ref, nb.FromFork = "refs/heads/main", true
		}
		_, jobs, err := db.CreateBuild(ctx, nb)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // builds 1, 4, 7, 10, 13 fail; the others wait
			db.UpdateJob(ctx, jobs[0].ID, JobUpdate{Status: JobRunning})
			db.UpdateJob(ctx, jobs[0].ID, JobUpdate{Status: JobFailure})
		}
		b, err := db.BuildByID(ctx, jobs[0].BuildID)
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, b.Status)
	}
	got, err := db.ProjectsWithLatestBuild(ctx, f.owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].FullName != "acme/empty" || got[1].FullName != "acme/widget" {
		t.Fatalf("projects %+v", got)
	}
	if e := got[0]; e.Default != nil || len(e.Recent) != 0 {
		t.Errorf("a project without builds: default %+v, recent %+v", e.Default, e.Recent)
	}
	w := got[1]
	var numbers []int
	for i, m := range w.Recent {
		numbers = append(numbers, m.Number)
		if want := refs[(m.Number-1)%len(refs)]; m.Number != 13 && m.Ref != want || m.Status != statuses[m.Number-1] {
			t.Errorf("mark %d = %+v, want ref %s, status %s", i, m, want, statuses[m.Number-1])
		}
	}
	if !slices.Equal(numbers, []int{4, 5, 6, 7, 8, 9, 10, 11, 12, 13}) {
		t.Errorf("strip = builds %v, want 4 to 13 oldest first", numbers)
	}
	want, err := db.BranchBuild(ctx, f.project.ID, "refs/heads/main")
	if err != nil {
		t.Fatal(err)
	}
	if w.Default == nil || *w.Default != want || want.Number != 11 {
		t.Errorf("default branch build = %+v, want #11 (the badge's, %+v)", w.Default, want)
	}
	// A project whose default branch is unknown has no default build, and
	// its strip all the same.
	unknown := newFixture(t, db, "acme/unknown")
	if err := db.SetMembership(ctx, Membership{ProjectID: unknown.project.ID, UserID: f.owner.ID}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: unknown.project.ID, Ref: "refs/heads/main", SHA: "u1"}); err != nil {
		t.Fatal(err)
	}
	if got, _ = db.ProjectsWithLatestBuild(ctx, f.owner.ID); len(got) != 3 || got[1].FullName != "acme/unknown" ||
		got[1].Default != nil || len(got[1].Recent) != 1 || got[1].Recent[0].Number != 1 {
		t.Errorf("without a default branch: %+v", got)
	}
}

// The dashboard's queries read builds and jobs through indexes, never a
// scan of either table or a sort, so that 100,000 builds in a project or
// finished jobs in the database cost nothing.
func TestDashboardQueriesUseIndexes(t *testing.T) {
	db := newTestDB(t)
	for name, q := range map[string]string{"running": runningQuery, "queued": queuedQuery,
		"default builds": defaultBuildsQuery, "recent builds": recentBuildsQuery} {
		plan := queryPlan(t, db, q, 1, 2, 3)
		for _, step := range plan {
			// The partial indexes hold running or enqueued jobs only; q is
			// at most QueueScanned of those.
			partial := strings.Contains(step, "INDEX jobs_enqueued") || strings.Contains(step, "INDEX jobs_running") || step == "SCAN q"
			if strings.Contains(step, "SCAN ") && !partial || strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("%s: plan %q scans or sorts", name, strings.Join(plan, "; "))
			}
		}
	}
}
