package store

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"

	"kozmic/migrations"
)

// errBoom stands for the error of a trigger that says boom.
var errBoom = errors.New("boom")

// holdWriter takes the writer's only connection until the returned
// function gives it back, and counts the commits made on that connection
// from then on.
func holdWriter(t *testing.T, db *DB) (release func(), commits *atomic.Int32) {
	t.Helper()
	conn, err := db.write.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	commits = new(atomic.Int32)
	err = conn.Raw(func(c any) error {
		c.(sqlite.HookRegisterer).RegisterCommitHook(func() int32 {
			commits.Add(1)
			return 0 // commit
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return func() { conn.Close() }, commits
}

// waitQueued returns once n CreateBuild calls wait in db's queue.
func waitQueued(db *DB, n int) {
	for {
		db.builds.mu.Lock()
		queued := len(db.builds.pending)
		db.builds.mu.Unlock()
		if queued == n {
			return
		}
		runtime.Gosched()
	}
}

// Builds asked for while the writer is busy are written together in one
// commit once it is free: those that fail (a delivery seen before, a
// project without hooks, a missing project, a caller that gave up, and one
// that fails halfway through its writes) get their own error and leave
// nothing behind, and the others are committed whole.
func TestQueuedBuildsShareOneCommitAndFailAlone(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	bare := newFixture(t, db, "acme/bare")
	for _, h := range bare.hooks {
		if err := db.DeleteHook(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "seen", DeliveryID: "d-seen"}); err != nil {
		t.Fatal(err)
	}
	// A build of "boom" fails after its build row is written.
	if _, err := db.write.ExecContext(ctx, `CREATE TEMP TRIGGER boom BEFORE INSERT ON hook_calls
		WHEN (SELECT sha FROM builds WHERE id = NEW.build_id) = 'boom' BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	calls := []struct {
		ctx  context.Context
		nb   NewBuild
		want error
	}{
		{ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "a", DeliveryID: "d-a"}, nil},
		{ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "boom", DeliveryID: "d-boom"}, errBoom},
		{ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "x", DeliveryID: "d-seen"}, ErrSeenDelivery},
		{ctx, NewBuild{ProjectID: bare.project.ID, Ref: "refs/heads/main", SHA: "b", DeliveryID: "d-b"}, ErrNoHooks},
		{ctx, NewBuild{ProjectID: 999, Ref: "refs/heads/main", SHA: "c"}, ErrNotFound},
		{gaveUp, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "y", DeliveryID: "d-y"}, context.Canceled},
		{ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "d", DeliveryID: "d-d"}, nil},
	}
	release, commits := holdWriter(t, db)
	builds := make([]Build, len(calls))
	jobs := make([][]Job, len(calls))
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { builds[i], jobs[i], errs[i] = db.CreateBuild(c.ctx, c.nb) })
	}
	waitQueued(db, len(calls))
	release()
	wg.Wait()

	if n := commits.Load(); n != 1 {
		t.Errorf("%d commits for %d queued builds, want 1", n, len(calls))
	}
	var numbers []int
	for i, c := range calls {
		switch {
		case c.want == nil && (errs[i] != nil || len(jobs[i]) != 2 || builds[i].SHA != c.nb.SHA):
			t.Errorf("build of %s: %+v with %d jobs, %v; want it with 2 jobs", c.nb.SHA, builds[i], len(jobs[i]), errs[i])
		case c.want == nil:
			numbers = append(numbers, builds[i].Number)
		case c.want == errBoom && (errs[i] == nil || !strings.Contains(errs[i].Error(), "boom")):
			t.Errorf("build of %s: err = %v, want the trigger's", c.nb.SHA, errs[i])
		case c.want != errBoom && !errors.Is(errs[i], c.want):
			t.Errorf("build of %s: err = %v, want %v", c.nb.SHA, errs[i], c.want)
		}
	}
	// The failed ones took no number: the two good ones follow the first build.
	if slices.Sort(numbers); !slices.Equal(numbers, []int{2, 3}) {
		t.Errorf("numbers of the committed builds = %v, want [2 3]", numbers)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM builds`); n != 3 {
		t.Errorf("builds = %d, want 3", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM jobs`); n != 6 {
		t.Errorf("jobs = %d, want 6", n)
	}
	if n := count(t, db, `SELECT last_build_number FROM projects WHERE id = ?`, bare.project.ID); n != 0 {
		t.Errorf("the project without hooks used %d build numbers", n)
	}
	var kept []string
	for _, id := range []string{"d-seen", "d-a", "d-boom", "d-b", "d-y", "d-d"} {
		if count(t, db, `SELECT COUNT(*) FROM webhook_deliveries WHERE delivery_id = ?`, id) == 1 {
			kept = append(kept, id)
		}
	}
	if !slices.Equal(kept, []string{"d-seen", "d-a", "d-d"}) {
		t.Errorf("deliveries recorded = %v, want those of the committed builds", kept)
	}
}

// Migration 00014 drops the webhook bodies hook calls kept; the builds,
// their jobs and the adding of jobs for new hooks to a build from before
// (which copied the body) go on as before.
func TestPayloadMigrationDropsWebhookBodiesAndKeepsBuilds(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	b, jobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/pull/7/head", SHA: "abc", Author: "Ann",
		Message: "Fix the widget", Trigger: Trigger{Kind: TriggerPullRequest, PR: 7, User: "ann"}, DeliveryID: "d-1", Event: "pull_request"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 13); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `UPDATE hook_calls SET payload = json_object('body', hex(zeroblob(4096)))`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM pragma_table_info('hook_calls') WHERE name = 'payload'`); n != 0 {
		t.Fatal("hook calls keep their webhook bodies")
	}
	got, err := db.BuildByID(ctx, b.ID)
	if err != nil || got != b {
		t.Errorf("build after the migration = %+v, %v; want %+v", got, err, b)
	}
	gotJobs, err := db.Jobs(ctx, b.ID)
	if err != nil || !slices.Equal(gotJobs, jobs) {
		t.Errorf("jobs after the migration = %+v, %v; want %+v", gotJobs, err, jobs)
	}
	if _, err := db.CreateHook(ctx, Hook{ProjectID: f.project.ID, Title: "vet", DockerImage: "busybox", BuildScript: "#!/bin/sh\n"}); err != nil {
		t.Fatal(err)
	}
	run, err := db.RunBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/pull/7/head", SHA: "abc",
		Trigger: Trigger{Kind: TriggerManual}}, false)
	if err != nil || !run.Existed || run.Added != 1 || len(run.Jobs) != 1 || run.Jobs[0].HookTitle != "vet" {
		t.Errorf("Run build of the commit after a new hook: %+v, %v; want one job of vet", run, err)
	}
}

// WebhookProject reads a project's webhook secret and default branch in one
// prepared statement, prepared at the first webhook and reused after it.
func TestWebhookProjectIsOnePreparedRead(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	if err := db.SetDefaultBranch(ctx, f.project.ID, "trunk"); err != nil {
		t.Fatal(err)
	}
	prepared := func() int {
		db.reads.mu.Lock()
		defer db.reads.mu.Unlock()
		return len(db.reads.stmts)
	}
	for range 2 {
		wp, err := db.WebhookProject(ctx, f.project.ID)
		if err != nil || wp != (WebhookProject{Secret: "whsec-acme/widget", DefaultBranch: "trunk"}) {
			t.Errorf("WebhookProject = %+v, %v", wp, err)
		}
		if n := prepared(); n != 1 {
			t.Errorf("prepared reads = %d, want 1", n)
		}
	}
	if _, err := db.WebhookProject(ctx, f.project.ID+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing project: %v, want ErrNotFound", err)
	}
}

// Close writes the builds waiting for the writer before it closes the
// database, and a build asked for after Close fails and writes nothing.
func TestCloseWritesQueuedBuildsAndRefusesLaterOnes(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	release, _ := holdWriter(t, db)
	queued := make(chan error, 1)
	go func() {
		_, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "queued"})
		queued <- err
	}()
	waitQueued(db, 1)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	release()
	if err := <-queued; err != nil {
		t.Errorf("the build queued at Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "late"}); !errors.Is(err, errClosed) {
		t.Errorf("a build after Close: %v, want errClosed", err)
	}
	reopened, err := openAt(t, db.path, testKey, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := reopened.Builds(ctx, f.project.ID, BuildQuery{})
	if err != nil || len(bs) != 1 || bs[0].SHA != "queued" {
		t.Errorf("builds after reopening: %+v, %v; want the queued one alone", bs, err)
	}
}
