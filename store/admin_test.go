package store

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"kozmic/migrations"
)

// checkLogTotals compares what Stats says of the logs with the logs as
// they are stored, counted the slow way.
func checkLogTotals(t *testing.T, db *DB, when string) DBStats {
	t.Helper()
	s, err := db.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bytes := count(t, db, `SELECT COALESCE(SUM(length(data)), 0) FROM job_log_frames`)
	logs := count(t, db, `SELECT COUNT(*) FROM job_logs`)
	if s.LogBytes != int64(bytes) || s.Logs != int64(logs) {
		t.Errorf("%s: Stats says %d log bytes of %d logs; stored are %d bytes of %d logs", when, s.LogBytes, s.Logs, bytes, logs)
	}
	return s
}

// The log storage the admin page shows is kept as logs are written, when
// the migration comes to a database that has logs, and as logs go by
// retention and with a deleted project; it never reads a log.
func TestLogTotalsFollowWritesRetentionAndProjectDeletion(t *testing.T) {
	ctx := context.Background()
	db, f, _, jobs := newBuildFixture(t)
	other := newFixture(t, db, "acme/other")
	_, otherJobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: other.project.ID, Ref: "refs/heads/main", SHA: "def"})
	if err != nil {
		t.Fatal(err)
	}
	writeLog(t, db, jobs[0].ID, 2*logSegmentSize+11, 1)
	finishJob(t, db, jobs[0].ID)
	// Written before the migration: it counts them once it runs.
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 20); err != nil {
		t.Fatal(err)
	}
	writeLog(t, db, jobs[1].ID, 5000, 2)
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if s := checkLogTotals(t, db, "after the migration"); s.Logs != 2 || s.LogBytes == 0 {
		t.Errorf("after the migration: %d logs", s.Logs)
	}
	// Written since, also appended to a log that has frames.
	writeLog(t, db, otherJobs[0].ID, logSegmentSize+7, 3)
	if _, err := db.AppendLog(ctx, jobs[1].ID, []byte("one more line\n"), false); err != nil {
		t.Fatal(err)
	}
	before := checkLogTotals(t, db, "after more output")
	if before.Logs != 3 {
		t.Errorf("%d logs, want 3", before.Logs)
	}
	// Retention deletes the finished job's log.
	if n, err := db.DeleteLogsBefore(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteLogsBefore = %d, %v", n, err)
	}
	if s := checkLogTotals(t, db, "after retention"); s.Logs != 2 || s.LogBytes >= before.LogBytes {
		t.Errorf("after retention: %d logs of %d bytes, before %d bytes", s.Logs, s.LogBytes, before.LogBytes)
	}
	// A deleted project's logs go by cascade.
	if err := db.DeleteProject(ctx, other.project.ID); err != nil {
		t.Fatal(err)
	}
	if s := checkLogTotals(t, db, "after deleting a project"); s.Logs != 1 {
		t.Errorf("after deleting a project: %d logs, want 1", s.Logs)
	}
	if err := db.DeleteProject(ctx, f.project.ID); err != nil {
		t.Fatal(err)
	}
	if s := checkLogTotals(t, db, "after deleting every project"); s.Logs != 0 || s.LogBytes != 0 {
		t.Errorf("no logs left, yet Stats says %d of %d bytes", s.Logs, s.LogBytes)
	}
}

// Stats gives the file's size as SQLite counts its pages, and the
// write-ahead log's as the file system does.
func TestStatsMeasureTheFileAndItsWriteAheadLog(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	writeLog(t, db, jobs[0].ID, 3*logSegmentSize, 4)
	s, err := db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int64(count(t, db, `PRAGMA page_size`))
	if s.FileBytes == 0 || s.FileBytes%pageSize != 0 || s.FreeBytes%pageSize != 0 || s.FreeBytes > s.FileBytes {
		t.Errorf("file %d bytes, %d free, pages of %d", s.FileBytes, s.FreeBytes, pageSize)
	}
	wal, err := os.Stat(db.path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if s.WALBytes != wal.Size() || s.WALBytes == 0 {
		t.Errorf("WAL %d bytes, the file system says %d", s.WALBytes, wal.Size())
	}
	if s.LogBytes == 0 || s.LogBytes >= 3*logSegmentSize {
		t.Errorf("%d bytes of compressed log for %d written", s.LogBytes, 3*logSegmentSize)
	}
}

// JobQueue counts the waiting jobs, says since when the oldest waits, and
// names each running job by its project, build and hook.
func TestJobQueueNamesRunningJobsAndTheOldestWait(t *testing.T) {
	ctx := context.Background()
	db, f, b, jobs := newBuildFixture(t)
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	db.now = func() time.Time { return t0 }
	_, more, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "def"})
	if err != nil {
		t.Fatal(err)
	}
	db.now = func() time.Time { return t0.Add(time.Minute) }
	if _, err := db.UpdateJob(ctx, jobs[1].ID, JobUpdate{Status: JobRunning}); err != nil {
		t.Fatal(err)
	}
	finishJob(t, db, jobs[0].ID)
	q, err := db.JobQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The first build's jobs are running and done: the second's wait, since t0.
	if q.Queued != len(more) || !q.OldestQueued.Equal(t0) {
		t.Errorf("queued %d since %v, want %d since %v", q.Queued, q.OldestQueued, len(more), t0)
	}
	want := RunningJob{JobID: jobs[1].ID, ProjectID: f.project.ID, Project: "acme/widget", BuildNumber: b.Number,
		HookTitle: jobs[1].HookTitle, StartedAt: t0.Add(time.Minute)}
	if len(q.Running) != 1 || q.Running[0] != want {
		t.Errorf("running %+v, want %+v", q.Running, want)
	}
	// Nothing waiting: no oldest.
	for _, j := range more {
		finishJob(t, db, j.ID)
	}
	if q, err := db.JobQueue(ctx); err != nil || q.Queued != 0 || !q.OldestQueued.IsZero() {
		t.Errorf("empty queue: %+v, %v", q, err)
	}
}

// CacheLastUsedOf finds, per project, the newest start of a job with an
// install cache image, though two projects share its cache id (the same
// image and script); an image no job used is absent.
func TestCacheLastUsedOfKeepsProjectsApart(t *testing.T) {
	ctx := context.Background()
	db, f, _, jobs := newBuildFixture(t)
	other := newFixture(t, db, "acme/other")
	_, otherJobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: other.project.ID, Ref: "refs/heads/main", SHA: "def"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	run := func(id int64, at time.Time) {
		db.now = func() time.Time { return at }
		if _, err := db.UpdateJob(ctx, id, JobUpdate{Status: JobRunning}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.UpdateJob(ctx, id, JobUpdate{Status: JobSuccess, CacheID: "c1", Cache: CacheHit, CacheScope: CacheScopeProject}); err != nil {
			t.Fatal(err)
		}
	}
	run(jobs[0].ID, t0)
	run(jobs[1].ID, t0.Add(time.Hour))
	run(otherJobs[0].ID, t0.Add(2*time.Hour))
	mine := ProjectCacheUse{ProjectID: f.project.ID, CacheUse: CacheUse{Scope: CacheScopeProject, ID: "c1"}}
	theirs := ProjectCacheUse{ProjectID: other.project.ID, CacheUse: mine.CacheUse}
	unused := ProjectCacheUse{ProjectID: f.project.ID, CacheUse: CacheUse{Scope: CacheScopeProject, ID: "c2"}}
	m, err := db.CacheLastUsedOf(ctx, []ProjectCacheUse{mine, theirs, unused})
	if err != nil {
		t.Fatal(err)
	}
	if !m[mine].Equal(t0.Add(time.Hour)) || !m[theirs].Equal(t0.Add(2*time.Hour)) || len(m) != 2 {
		t.Errorf("last used %v, want %v for the project and %v for the other", m, t0.Add(time.Hour), t0.Add(2*time.Hour))
	}
	names, err := db.ProjectNames(ctx, []int64{f.project.ID, other.project.ID, 999})
	if err != nil || len(names) != 2 || names[f.project.ID] != "acme/widget" || names[other.project.ID] != "acme/other" {
		t.Errorf("ProjectNames = %v, %v", names, err)
	}
}

// CacheLastUsedOf reads an image's last use through the index
// jobs_cache_use, newest first, so that it costs the same however many
// builds the project has (SQLite, without statistics, would otherwise walk
// every build of the project and sort their jobs).
func TestCacheLastUsedOfReadsThroughItsIndex(t *testing.T) {
	db := newTestDB(t)
	plan := queryPlan(t, db, cacheLastUsedQuery, "c1", CacheScopeProject, 1)
	joined := strings.Join(plan, "\n")
	if !strings.HasPrefix(joined, "SEARCH j USING INDEX jobs_cache_use (cache_id=? AND cache_scope=?") ||
		strings.Contains(joined, "TEMP B-TREE") || strings.Contains(joined, "project_id=?") {
		t.Errorf("the plan:\n%s", joined)
	}
}
