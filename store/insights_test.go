package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"kozmic/migrations"
)

// buildAt makes a build of ref in f's project at the database clock's now,
// and moves each of its jobs through running (at now+ran's start) to st
// (ran later); st enqueued leaves them queued, running leaves them running.
func buildAt(t *testing.T, db *DB, f fixture, nb NewBuild, now time.Time, ran time.Duration, st JobStatus) Build {
	t.Helper()
	ctx := context.Background()
	setClock(db, now)
	nb.ProjectID = f.project.ID
	if nb.SHA == "" {
		nb.SHA = fmt.Sprintf("%040x", now.UnixNano())
	}
	b, jobs, err := db.CreateBuild(ctx, nb)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if st == JobEnqueued {
			break
		}
		if st == JobError && ran == 0 {
			// Canceled in the queue: finished without starting.
			if _, err := db.UpdateJob(ctx, j.ID, JobUpdate{Status: JobError}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		setClock(db, now.Add(time.Second))
		if _, err := db.UpdateJob(ctx, j.ID, JobUpdate{Status: JobRunning}); err != nil {
			t.Fatal(err)
		}
		if st != JobRunning {
			setClock(db, now.Add(time.Second+ran))
			if _, err := db.UpdateJob(ctx, j.ID, JobUpdate{Status: st}); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err = db.BuildByID(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// numbersOf lists the builds as "ref#number status".
func numbersOf(bs []Build) string {
	var out []string
	for _, b := range bs {
		out = append(out, fmt.Sprintf("%s#%d %s", b.Ref, b.Number, b.Status))
	}
	return strings.Join(out, ", ")
}

// The default branch comes first, then the other branches by their newest
// build, newest first, each with that build's status as it is now; pull
// requests are listed apart, tags and commits built by hand nowhere, and
// each list stops at its limit, saying there are more.
func TestBranchesDefaultFirstThenNewestAndPullRequestsApart(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	other := newFixture(t, db, "acme/other")
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	step := func() time.Time { at = at.Add(time.Minute); return at }

	got, err := db.BranchesOfProject(ctx, f.project.ID, 2)
	if err != nil || got.Default.Number != 0 || len(got.Others)+len(got.PullRequests) != 0 || got.MoreOthers || got.MorePullRequests {
		t.Fatalf("no builds: %+v, %v", got, err)
	}

	pr := func(n int) NewBuild {
		return NewBuild{Ref: fmt.Sprintf("refs/pull/%d/head", n), Trigger: Trigger{Kind: TriggerPullRequest, PR: n}, FromFork: true}
	}
	buildAt(t, db, f, NewBuild{Ref: "refs/heads/main"}, step(), time.Second, JobSuccess)
	buildAt(t, db, f, NewBuild{Ref: "refs/heads/a"}, step(), time.Second, JobFailure)
	buildAt(t, db, f, pr(7), step(), time.Second, JobSuccess)
	buildAt(t, db, f, NewBuild{Ref: "refs/heads/b"}, step(), time.Second, JobSuccess)
	buildAt(t, db, f, NewBuild{Ref: "refs/tags/v1.0"}, step(), time.Second, JobSuccess)
	buildAt(t, db, f, NewBuild{Ref: strings.Repeat("c", 40), Trigger: Trigger{Kind: TriggerManual}}, step(), time.Second, JobSuccess)
	buildAt(t, db, f, pr(8), step(), time.Second, JobFailure)
	buildAt(t, db, f, NewBuild{Ref: "refs/heads/a"}, step(), time.Second, JobSuccess) // a again: it moves up
	buildAt(t, db, f, NewBuild{Ref: "refs/heads/c"}, step(), 0, JobEnqueued)
	buildAt(t, db, f, pr(9), step(), 0, JobRunning)
	buildAt(t, db, f, NewBuild{Ref: "refs/heads/main"}, step(), 0, JobRunning)
	buildAt(t, db, other, NewBuild{Ref: "refs/heads/elsewhere"}, step(), time.Second, JobSuccess)

	// Unknown default branch: every branch is another one.
	got, err = db.BranchesOfProject(ctx, f.project.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got.Default.Number != 0 {
		t.Errorf("unknown default branch: default build #%d", got.Default.Number)
	}
	if s := numbersOf(got.Others); s != "refs/heads/main#11 pending, refs/heads/c#9 enqueued, refs/heads/a#8 success, refs/heads/b#4 success" {
		t.Errorf("branches: %s", s)
	}
	if s := numbersOf(got.PullRequests); s != "refs/pull/9/head#10 pending, refs/pull/8/head#7 failure, refs/pull/7/head#3 success" {
		t.Errorf("pull requests: %s", s)
	}

	if err := db.SetDefaultBranch(ctx, f.project.ID, "main"); err != nil {
		t.Fatal(err)
	}
	got, err = db.BranchesOfProject(ctx, f.project.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s := numbersOf([]Build{got.Default}); s != "refs/heads/main#11 pending" {
		t.Errorf("default branch: %s", s)
	}
	if s := numbersOf(got.Others); s != "refs/heads/c#9 enqueued, refs/heads/a#8 success" || !got.MoreOthers {
		t.Errorf("branches but the default, 2 at most: %s, more %v", s, got.MoreOthers)
	}
	if s := numbersOf(got.PullRequests); s != "refs/pull/9/head#10 pending, refs/pull/8/head#7 failure" || !got.MorePullRequests {
		t.Errorf("pull requests, 2 at most: %s, more %v", s, got.MorePullRequests)
	}
	got, err = db.BranchesOfProject(ctx, f.project.ID, 3)
	if err != nil || len(got.Others) != 3 || got.MoreOthers || len(got.PullRequests) != 3 || got.MorePullRequests {
		t.Errorf("exactly 3 of each: %+v, %v", got, err)
	}

	// A default branch never built.
	if err := db.SetDefaultBranch(ctx, f.project.ID, "trunk"); err != nil {
		t.Fatal(err)
	}
	if got, err = db.BranchesOfProject(ctx, f.project.ID, 10); err != nil || got.Default.Number != 0 || len(got.Others) != 4 {
		t.Errorf("default branch never built: default #%d, %d others, %v", got.Default.Number, len(got.Others), err)
	}

	if _, err := db.BranchesOfProject(ctx, f.project.ID+100, 10); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing project: %v, want ErrNotFound", err)
	}
	if _, err := db.BranchesOfProject(ctx, f.project.ID, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("limit 0: %v, want ErrInvalid", err)
	}
}

// Migration 00019 lists the branches of builds made before it as they
// would be listed had they been made after it.
func TestBranchesMigrationListsBuildsMadeBeforeIt(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for i, ref := range []string{"refs/heads/main", "refs/heads/a", "refs/pull/3/head", "refs/heads/main", "refs/tags/v1"} {
		nb := NewBuild{Ref: ref}
		if strings.HasPrefix(ref, "refs/pull/") {
			nb.Trigger = Trigger{Kind: TriggerPullRequest, PR: 3}
		}
		buildAt(t, db, f, nb, at.Add(time.Duration(i)*time.Minute), time.Second, JobSuccess)
	}
	// Made with today's store, they are then taken back to before 00019,
	// which drops its table, and up again.
	if _, err := p.DownTo(ctx, 18); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := db.BranchesOfProject(ctx, f.project.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if s := numbersOf(got.Others) + " / " + numbersOf(got.PullRequests); s != "refs/heads/main#4 success, refs/heads/a#2 success / refs/pull/3/head#3 success" {
		t.Errorf("after the migration: %s", s)
	}
}

// The stats of a branch count its builds of the window only: passed ones
// among the finished, and the median time of those that ran; builds
// queued or running, of other branches, or from before the window count
// for nothing, and errored builds (canceled, or not run) are finished but
// untimed.
func TestBuildStatsCountTheWindowsFinishedBuilds(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	since := now.Add(-30 * 24 * time.Hour)
	main := NewBuild{Ref: "refs/heads/main"}

	st, err := db.BuildStats(ctx, f.project.ID, main.Ref, since)
	if err != nil || st != (BuildStats{}) {
		t.Fatalf("no builds: %+v, %v", st, err)
	}
	buildAt(t, db, f, main, since.Add(-time.Hour), time.Hour, JobFailure) // before the window
	buildAt(t, db, f, main, since.Add(time.Hour), 10*time.Second, JobSuccess)
	buildAt(t, db, f, main, since.Add(2*time.Hour), 40*time.Second, JobFailure)
	buildAt(t, db, f, main, since.Add(3*time.Hour), 20*time.Second, JobSuccess)
	buildAt(t, db, f, main, since.Add(4*time.Hour), 30*time.Second, JobSuccess)
	buildAt(t, db, f, main, since.Add(5*time.Hour), 0, JobError)           // canceled before it ran
	buildAt(t, db, f, main, since.Add(6*time.Hour), 3*time.Hour, JobError) // could not run
	buildAt(t, db, f, main, now.Add(-2*time.Minute), 0, JobRunning)
	buildAt(t, db, f, main, now.Add(-time.Minute), 0, JobEnqueued)
	buildAt(t, db, f, NewBuild{Ref: "refs/heads/other"}, now.Add(-time.Hour), 2*time.Hour, JobFailure)

	st, err = db.BuildStats(ctx, f.project.ID, main.Ref, since)
	if err != nil {
		t.Fatal(err)
	}
	// Timed: 10s, 20s, 30s, 40s; the median is between 20s and 30s.
	want := BuildStats{Finished: 6, Passed: 3, Median: 25 * time.Second, Timed: 4}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	// An odd count has a middle build.
	buildAt(t, db, f, main, now.Add(-3*time.Minute), 50*time.Second, JobSuccess)
	if st, err = db.BuildStats(ctx, f.project.ID, main.Ref, since); err != nil || st.Median != 30*time.Second || st.Timed != 5 || st.Passed != 4 {
		t.Errorf("with a fifth timed build: %+v, %v", st, err)
	}
	if st, err := db.BuildStats(ctx, f.project.ID, "refs/heads/nothing", since); err != nil || st != (BuildStats{}) {
		t.Errorf("a branch never built: %+v, %v", st, err)
	}
}

// A branch built more than MaxStatsBuilds times in the window is summed
// up over its newest MaxStatsBuilds builds, and says so.
func TestBuildStatsReadTheNewestBuildsOnly(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	// The oldest build failed; the newer MaxStatsBuilds passed.
	buildAt(t, db, f, NewBuild{Ref: "refs/heads/main"}, now.Add(-time.Hour), time.Second, JobFailure)
	for i := range MaxStatsBuilds {
		buildAt(t, db, f, NewBuild{Ref: "refs/heads/main"}, now.Add(time.Duration(i)*time.Millisecond), time.Second, JobSuccess)
	}
	st, err := db.BuildStats(ctx, f.project.ID, "refs/heads/main", now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := (BuildStats{Finished: MaxStatsBuilds, Passed: MaxStatsBuilds, Median: time.Second, Timed: MaxStatsBuilds, Capped: true}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

// Each insights query reads through an index that hands it its rows in
// order: none scans a project's builds or refs, so a page costs the same
// with 100,000 builds as with 100 (BenchmarkProjectPageInsights).
func TestInsightsQueriesReadThroughIndexes(t *testing.T) {
	db := newTestDB(t)
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{newestOfRefsQuery, []string{"SEARCH build_refs USING COVERING INDEX build_refs_recent (project_id=? AND kind=?)",
			"SEARCH builds USING INDEX sqlite_autoindex_builds_1 (project_id=? AND number=?)"}},
		{newestOfRefQuery, []string{"SEARCH build_refs USING PRIMARY KEY (project_id=? AND ref=?)",
			"SEARCH builds USING INDEX sqlite_autoindex_builds_1 (project_id=? AND number=?)"}},
		{buildStatsQuery, []string{"SEARCH builds USING COVERING INDEX builds_by_ref_created (project_id=? AND ref=? AND created_at>?)"}},
	} {
		plan := queryPlan(t, db, tt.query, 1, "branch", "refs/heads/main", 10)
		all := strings.Join(plan, "\n")
		for _, w := range tt.want {
			if !strings.Contains(all, w) {
				t.Errorf("plan of\n%s\nlacks %q:\n%s", tt.query, w, all)
			}
		}
		// The stats sort the durations they read, at most MaxStatsBuilds.
		if strings.Contains(all, "SCAN builds") || strings.Contains(all, "SCAN build_refs") ||
			tt.query != buildStatsQuery && strings.Contains(all, "TEMP B-TREE") {
			t.Errorf("plan of\n%s\nscans or sorts:\n%s", tt.query, all)
		}
	}
}
