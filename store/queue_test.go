package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClaimJobIsFIFOAndExclusive(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	var want []int64
	for i := range 10 {
		_, jobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			want = append(want, j.ID)
		}
	}
	first, ok, err := db.ClaimJob(ctx)
	if err != nil || !ok || first.Job.ID != want[0] || first.Job.Status != JobRunning || first.Job.StartedAt.IsZero() {
		t.Fatalf("first claim = %+v, %v, %v; want job %d running", first.Job, ok, err, want[0])
	}
	if first.Build.Status != BuildPending || !first.BuildChanged {
		t.Errorf("build after claim = %s, changed %v; want pending, true", first.Build.Status, first.BuildChanged)
	}

	// Four workers claim the rest at once: each job exactly once.
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				ch, ok, err := db.ClaimJob(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				seen[ch.Job.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, id := range want[1:] {
		if seen[id] != 1 {
			t.Errorf("job %d claimed %d times", id, seen[id])
		}
	}
	if _, ok, err := db.ClaimJob(ctx); ok || err != nil {
		t.Errorf("claim on an empty queue: ok=%v, %v", ok, err)
	}
}

func TestRestartAndRerunFailed(t *testing.T) {
	ctx := context.Background()
	db, _, b, jobs := newBuildFixture(t)
	finish := func(id int64, s JobStatus) {
		t.Helper()
		if _, err := db.UpdateJob(ctx, id, JobUpdate{Status: JobRunning}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UpdateJob(ctx, id, JobUpdate{Status: s}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.RestartJob(ctx, jobs[0].ID, User{}); !errors.Is(err, ErrConflict) {
		t.Errorf("restart of an enqueued job: err = %v, want ErrConflict", err)
	}
	finish(jobs[0].ID, JobSuccess)
	finish(jobs[1].ID, JobFailure)

	ann, err := db.CreateLocalUser(ctx, "ann", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := db.RestartJob(ctx, jobs[0].ID, ann)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Job.Attempt != 2 || ch.Job.Status != JobEnqueued || ch.Job.HookCallID != jobs[0].HookCallID {
		t.Errorf("restarted job = %+v", ch.Job)
	}
	if ch.Build.RerunUser != "ann" || ch.Build.RerunUserID != ann.ID {
		t.Errorf("build after ann's restart re-run by %q (%d), want ann", ch.Build.RerunUser, ch.Build.RerunUserID)
	}
	// The failed test job still decides the build.
	if ch.Build.Status != BuildFailure {
		t.Errorf("build after restarting the passing job = %s, want failure", ch.Build.Status)
	}
	if _, err := db.RestartJob(ctx, jobs[0].ID, User{}); !errors.Is(err, ErrConflict) {
		t.Errorf("restart while the new attempt waits: err = %v, want ErrConflict", err)
	}

	re, err := db.RerunFailedJobs(ctx, b.ID, User{})
	if err != nil {
		t.Fatal(err)
	}
	if len(re) != 1 || re[0].Job.HookCallID != jobs[1].HookCallID || re[0].Job.Attempt != 2 {
		t.Fatalf("re-run = %+v; want attempt 2 of the failed job only", re)
	}
	if re[0].Build.Status != BuildEnqueued || !re[0].Build.FinishedAt.IsZero() {
		t.Errorf("build after re-run = %s finished %v; want enqueued, unfinished", re[0].Build.Status, re[0].Build.FinishedAt)
	}
	all, err := db.Jobs(ctx, b.ID)
	if err != nil || len(all) != 4 {
		t.Fatalf("attempts kept = %d, %v; want 4", len(all), err)
	}
	if again, err := db.RerunFailedJobs(ctx, b.ID, ann); err != nil || len(again) != 0 {
		t.Errorf("second re-run = %d jobs, %v; want none", len(again), err)
	}
	// A re-run with no job to run again records nobody.
	if got, err := db.BuildByID(ctx, b.ID); err != nil || got.RerunUser != "" || got.RerunUserID != 0 {
		t.Errorf("build re-run by %q (%d), %v; want nobody recorded", got.RerunUser, got.RerunUserID, err)
	}
}

func TestRecoverInterruptedJobsReRunsOnce(t *testing.T) {
	ctx := context.Background()
	db, _, b, jobs := newBuildFixture(t)
	for _, j := range jobs {
		if _, err := db.UpdateJob(ctx, j.ID, JobUpdate{Status: JobRunning}); err != nil {
			t.Fatal(err)
		}
	}
	changes, err := db.RecoverInterruptedJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 4 {
		t.Fatalf("changes = %d, want 2 interrupted + 2 new attempts", len(changes))
	}
	old, _ := db.JobByID(ctx, jobs[0].ID)
	if old.Status != JobError || old.Error != InterruptedMessage || old.FinishedAt.IsZero() {
		t.Errorf("interrupted job = %+v", old)
	}
	last := changes[len(changes)-1]
	if last.Job.Attempt != 2 || last.Job.Status != JobEnqueued || last.Build.Status != BuildEnqueued {
		t.Errorf("new attempt = %+v, build %s", last.Job, last.Build.Status)
	}

	// The re-runs are interrupted too: this time they are not re-run again.
	for {
		ch, ok, err := db.ClaimJob(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if ch.Job.Attempt != 2 {
			t.Fatalf("claimed attempt %d", ch.Job.Attempt)
		}
	}
	changes, err = db.RecoverInterruptedJobs(ctx)
	if err != nil || len(changes) != 2 {
		t.Fatalf("second recovery: %d changes, %v; want the 2 interrupted, no new attempts", len(changes), err)
	}
	if changes[1].Build.Status != BuildError {
		t.Errorf("build after a second interruption = %s, want error", changes[1].Build.Status)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM jobs WHERE build_id = ?`, b.ID); n != 4 {
		t.Errorf("jobs = %d, want 4", n)
	}
}

func TestJobRunOf(t *testing.T) {
	ctx := context.Background()
	db, f, _, jobs := newBuildFixture(t)
	if err := db.SetSecret(ctx, f.project.ID, Secret{Name: "TOKEN", Value: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetDeployKey(ctx, DeployKey{ProjectID: f.project.ID, PrivateKey: "PRIVATE", PublicKey: "pub"}); err != nil {
		t.Fatal(err)
	}
	r, err := db.JobRunOf(ctx, jobs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hook.Title != "lint" || r.Hook.BuildScript == "" || len(r.Hook.TrackedFiles) != 2 || r.Project.ID != f.project.ID ||
		r.Build.ID != jobs[0].BuildID || len(r.Secrets) != 1 || r.DeployKey != "PRIVATE" {
		t.Errorf("run = %+v", r)
	}

	fork, forkJobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/pull/3/head", SHA: "f00", FromFork: true})
	if err != nil || !fork.FromFork {
		t.Fatal(err)
	}
	r, err = db.JobRunOf(ctx, forkJobs[0].ID)
	if err != nil || len(r.Secrets) != 0 {
		t.Errorf("fork run secrets = %v, %v; want none", r.Secrets, err)
	}

	if err := db.DeleteHook(ctx, f.hooks[0].ID); err != nil {
		t.Fatal(err)
	}
	if r, err = db.JobRunOf(ctx, jobs[0].ID); err != nil || r.Hook.ID != 0 {
		t.Errorf("run of a deleted hook = hook %d, %v; want no hook and no error", r.Hook.ID, err)
	}
}

// JobRunOf reads one snapshot: while the project is deleted under it, it
// returns either the whole run, secrets and deploy key included, or the job
// as not found, never a job without its build, project or secrets.
func TestJobRunOfReadsOneSnapshot(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	for round := range 20 {
		f := newFixture(t, db, fmt.Sprintf("acme/widget-%d", round))
		if err := db.SetSecret(ctx, f.project.ID, Secret{Name: "TOKEN", Value: "s3cret"}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetDeployKey(ctx, DeployKey{ProjectID: f.project.ID, PrivateKey: "PRIVATE", PublicKey: "pub"}); err != nil {
			t.Fatal(err)
		}
		_, jobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		// Read the run again and again until the job is gone: whichever read
		// the deletion meets must see all of the run or none of it.
		read, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for n := 0; ; n++ {
				r, err := db.JobRunOf(ctx, jobs[0].ID)
				if n == 0 {
					close(read)
				}
				if err != nil {
					if n == 0 || !errors.Is(err, ErrNotFound) || !strings.HasPrefix(err.Error(), "get job:") {
						t.Errorf("round %d, read %d: %v; want the job not found after a whole read", round, n, err)
					}
					return
				}
				if r.Project.ID != f.project.ID || r.Hook.ID == 0 || len(r.Secrets) != 1 || r.DeployKey != "PRIVATE" {
					t.Errorf("round %d: a partial run: project %d, hook %d, secrets %v, deploy key %q",
						round, r.Project.ID, r.Hook.ID, r.Secrets, r.DeployKey)
					return
				}
			}
		}()
		<-read // one read is done: the deletion meets the next ones
		if err := db.DeleteProject(ctx, f.project.ID); err != nil {
			t.Fatal(err)
		}
		<-done
	}
}

// A build from a fork has its fork's install cache scope, and its jobs'
// use of an image counts apart from trusted jobs' use of the same cache id.
func TestForkBuildsHaveCacheScopesOfTheirOwn(t *testing.T) {
	ctx := context.Background()
	db, f, trusted, jobs := newBuildFixture(t)
	fork, forkJobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/pull/3/head", SHA: "f00",
		FromFork: true, ForkRepo: "eve/widget", ForkRepoID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/pull/4/head", SHA: "f01", FromFork: true})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := db.BuildByID(ctx, fork.ID); err != nil || again.ForkRepo != "eve/widget" || again.ForkRepoID != 4242 {
		t.Errorf("stored fork build = %+v, %v", again, err)
	}
	for _, tt := range []struct {
		b         Build
		want      CacheScope
		fork      string
		isForkOne bool
	}{
		{trusted, CacheScopeProject, "", false},
		{fork, "fork-id:4242", "eve/widget", true},
		{gone, "fork-ref:refs/pull/4/head", "refs/pull/4/head", true}, // the fork's repository is unknown
	} {
		scope := tt.b.CacheScope()
		name, isFork := tt.b.ScopeName(scope)
		if scope != tt.want || name != tt.fork || isFork != tt.isForkOne {
			t.Errorf("build %s: scope %q (fork %q, %v), want %q", tt.b.Ref, scope, name, isFork, tt.want)
		}
	}
	// A job from before scopes followed ids names its fork by the name it kept.
	if name, ok := fork.ScopeName("fork:eve/widget"); !ok || name != "eve/widget" {
		t.Errorf("name-keyed scope of an older job: %q, %v", name, ok)
	}

	before := count(t, db, `SELECT COUNT(*) FROM builds`)
	for _, nb := range []NewBuild{
		{ProjectID: f.project.ID, Ref: "refs/heads/x", SHA: "a1", ForkRepo: "eve/widget"}, // not from a fork
		{ProjectID: f.project.ID, Ref: "refs/heads/x", SHA: "a5", ForkRepoID: 4242},       // not from a fork
		{ProjectID: f.project.ID, Ref: "refs/pull/5/head", SHA: "a6", FromFork: true, ForkRepoID: -1},
		{ProjectID: f.project.ID, Ref: "refs/pull/5/head", SHA: "a2", FromFork: true, ForkRepo: "eve"},
		{ProjectID: f.project.ID, Ref: "refs/pull/5/head", SHA: "a3", FromFork: true, ForkRepo: "eve/../x"},
		{ProjectID: f.project.ID, Ref: "refs/pull/5/head", SHA: "a4", FromFork: true, ForkRepo: "eve/" + strings.Repeat("w", MaxForkRepo)},
	} {
		if _, _, err := db.CreateBuild(ctx, nb); !errors.Is(err, ErrInvalid) {
			t.Errorf("fork repository %q, id %d (from a fork: %v): err = %v, want ErrInvalid", nb.ForkRepo, nb.ForkRepoID, nb.FromFork, err)
		}
	}
	if after := count(t, db, `SELECT COUNT(*) FROM builds`); after != before {
		t.Errorf("refused builds were written: %d builds, want %d", after, before)
	}

	for _, j := range []struct {
		id    int64
		scope CacheScope
	}{{jobs[0].ID, CacheScopeProject}, {forkJobs[0].ID, fork.CacheScope()}} {
		if _, err := db.UpdateJob(ctx, j.id, JobUpdate{Status: JobRunning}); err != nil {
			t.Fatal(err)
		}
		ch, err := db.UpdateJob(ctx, j.id, JobUpdate{Status: JobSuccess, Cache: CacheMiss, CacheID: "same", CacheScope: j.scope})
		if err != nil || ch.Job.CacheScope != j.scope {
			t.Errorf("job %d: scope %q, %v; want %q", j.id, ch.Job.CacheScope, err, j.scope)
		}
	}
	used, err := db.CacheLastUsed(ctx, f.project.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(used) != 2 || used[CacheUse{CacheScopeProject, "same"}].IsZero() || used[CacheUse{"fork-id:4242", "same"}].IsZero() {
		t.Errorf("cache last used = %v, want the project's and the fork's use of \"same\" apart", used)
	}
}

func TestRunBuildLeavesRunningEditedJobsAndDeletedHooksAlone(t *testing.T) {
	ctx := context.Background()
	db, f, b, _ := newBuildFixture(t)
	nb := NewBuild{ProjectID: f.project.ID, Ref: b.Ref, SHA: b.SHA}
	lint, _, err := db.ClaimJob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	test, _, err := db.ClaimJob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateJob(ctx, test.Job.ID, JobUpdate{Status: JobSuccess}); err != nil {
		t.Fatal(err)
	}
	setClock(db, time.Now().Add(time.Hour)) // both hooks are edited after their jobs started
	for _, h := range f.hooks {
		h.BuildScript += "\necho edited"
		if _, err := db.UpdateHook(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	docs, err := db.CreateHook(ctx, Hook{ProjectID: f.project.ID, Title: "docs", DockerImage: "busybox", BuildScript: "#!/bin/sh\n"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := db.RunBuild(ctx, nb, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range run.Jobs {
		got = append(got, fmt.Sprintf("%s#%d %s", j.HookTitle, j.Attempt, j.Status))
	}
	if want := "docs#1 enqueued, test#2 enqueued"; strings.Join(got, ", ") != want || !run.Existed || run.Added != 1 || run.EditedLeft != 1 ||
		run.Build.ID != b.ID || run.Build.Status != BuildPending {
		t.Errorf("RunBuild = jobs %v, existed %v, added %d, edited left %d, build %d %s; want %s, the running lint left, build %d pending",
			got, run.Existed, run.Added, run.EditedLeft, run.Build.ID, run.Build.Status, want, b.ID)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM jobs WHERE hook_call_id = ?`, lint.Job.HookCallID); n != 1 {
		t.Errorf("the running lint job has %d attempts, want 1", n)
	}

	// A deleted hook's call is history, not a hook without a job; with no
	// hooks left, Run build of the commit shows its build.
	for _, id := range []int64{f.hooks[0].ID, f.hooks[1].ID, docs.ID} {
		if err := db.DeleteHook(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	jobs := count(t, db, `SELECT COUNT(*) FROM jobs`)
	if run, err := db.RunBuild(ctx, nb, true); err != nil || !run.Existed || len(run.Jobs) != 0 || run.EditedLeft != 0 {
		t.Errorf("RunBuild without hooks = %+v, %v; want the build, nothing added", run, err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM jobs`); n != jobs {
		t.Errorf("%d jobs after a Run build without hooks, want %d", n, jobs)
	}
}

// InterruptJob ends one running job as interrupted, with its message, and
// enqueues its next attempt, leaving the build's other running job alone;
// the attempt interrupted in turn is not enqueued again, as after a crash.
// A job that is not running is a conflict and changes nothing. PlaceJob's
// engine reads back with the job.
func TestInterruptJobReRunsOneJobOnce(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	if _, err := db.InterruptJob(ctx, jobs[0].ID, "gone"); !errors.Is(err, ErrConflict) {
		t.Fatalf("InterruptJob of an enqueued job: %v, want ErrConflict", err)
	}
	for _, j := range jobs {
		if _, err := db.UpdateJob(ctx, j.ID, JobUpdate{Status: JobRunning}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PlaceJob(ctx, jobs[0].ID, "builder2"); err != nil {
		t.Fatal(err)
	}
	changes, err := db.InterruptJob(ctx, jobs[0].ID, "The Docker engine builder2 stopped answering while this job ran.")
	if err != nil || len(changes) != 2 {
		t.Fatalf("InterruptJob = %d changes, %v; want the job and its new attempt", len(changes), err)
	}
	old, next := changes[0].Job, changes[1].Job
	if old.ID != jobs[0].ID || old.Status != JobError || old.Error != "The Docker engine builder2 stopped answering while this job ran." ||
		old.Engine != "builder2" || old.FinishedAt.IsZero() {
		t.Errorf("interrupted job = %+v", old)
	}
	if next.Attempt != 2 || next.Status != JobEnqueued || next.Engine != "" || next.HookCallID != old.HookCallID {
		t.Errorf("new attempt = %+v", next)
	}
	if other, _ := db.JobByID(ctx, jobs[1].ID); other.Status != JobRunning {
		t.Errorf("the build's other job is %s, want still running", other.Status)
	}
	if _, err := db.UpdateJob(ctx, next.ID, JobUpdate{Status: JobRunning}); err != nil {
		t.Fatal(err)
	}
	again, err := db.InterruptJob(ctx, next.ID, "gone again")
	if err != nil || len(again) != 1 || again[0].Job.Status != JobError {
		t.Fatalf("second interruption: %+v, %v; want the attempt ended, no new one", again, err)
	}
	if _, err := db.InterruptJob(ctx, next.ID, "once more"); !errors.Is(err, ErrConflict) {
		t.Errorf("InterruptJob of a finished job: %v, want ErrConflict", err)
	}
}
