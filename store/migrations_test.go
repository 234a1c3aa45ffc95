package store

import (
	"bytes"
	"compress/flate"
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"

	"kozmic/migrations"
)

// Migration 00013 starts a project from before it at the branch of its
// newest trusted branch build, so its badge keeps showing a branch (not
// "unknown", and never a pull request) until a webhook tells the real one.
func TestDefaultBranchMigrationStartsFromTheNewestTrustedBranchBuild(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	built := newFixture(t, db, "acme/widget")
	never := newFixture(t, db, "acme/unbuilt")
	for i, nb := range []NewBuild{
		{Ref: "refs/heads/main"},
		{Ref: "refs/heads/release"},
		{Ref: "refs/heads/main", FromFork: true, ForkRepo: "mallory/widget", ForkRepoID: 7},
		{Ref: "refs/pull/3/head"},
	} {
		nb.ProjectID, nb.SHA = built.project.ID, strings.Repeat(string(rune('a'+i)), 40)
		if _, _, err := db.CreateBuild(ctx, nb); err != nil {
			t.Fatal(err)
		}
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		f    fixture
		want string
	}{{built, "release"}, {never, ""}} {
		got, err := db.ProjectByID(ctx, tt.f.project.ID)
		if err != nil || got.DefaultBranch != tt.want {
			t.Errorf("%s after the migration: default branch %q, %v; want %q", tt.f.project.FullName, got.DefaultBranch, err, tt.want)
		}
	}
}

// Migration 00015 moves the logs stored before it into frames: a log
// compressed then reads back byte for byte at once, a plain one once
// CompressFinishedLogs converted it; a log in frames survives going down
// and up again.
func TestLogFramesMigrationReadsOldLogsIdentically(t *testing.T) {
	ctx := context.Background()
	db, f, _, jobs := newBuildFixture(t)
	_, more, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "def"})
	if err != nil {
		t.Fatal(err)
	}
	framed, compressed, plain := jobs[0].ID, jobs[1].ID, more[0].ID
	logs := map[int64][]byte{framed: writeLog(t, db, framed, 3*logSegmentSize+5, 1)}
	for _, id := range []int64{framed, compressed, plain} {
		finishJob(t, db, id)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.write, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 14); err != nil {
		t.Fatal(err)
	}
	// As CompressLog stored a finished log: a complete deflate stream per
	// segment, in a chunk at the segment's offset.
	old := logLines(rand.New(rand.NewPCG(2, 2)), 0, 2*logSegmentSize+777)
	logs[compressed] = old
	if _, err := db.write.Exec(`INSERT INTO job_logs (job_id, size, compressed, updated_at) VALUES (?, ?, 1, 0)`, compressed, len(old)); err != nil {
		t.Fatal(err)
	}
	for pos := 0; pos < len(old); pos += logSegmentSize {
		var z bytes.Buffer
		zw, _ := flate.NewWriter(&z, flate.DefaultCompression)
		zw.Write(old[pos:min(pos+logSegmentSize, len(old))])
		zw.Close()
		if _, err := db.write.Exec(`INSERT INTO job_log_chunks (job_id, pos, data) VALUES (?, ?, ?)`, compressed, pos, z.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	logs[plain] = writePlainLog(t, db, plain, logSegmentSize+333, 3)
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `PRAGMA auto_vacuum`); n != 2 {
		t.Errorf("auto_vacuum = %d after the migration, want 2 (incremental)", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_log_chunks WHERE job_id <> ?`, plain); n != 0 {
		t.Errorf("%d compressed chunks left", n)
	}
	checkReads(t, db, framed, logs[framed])
	checkReads(t, db, compressed, logs[compressed])
	checkReads(t, db, plain, logs[plain]) // read plain until converted
	if n, err := db.CompressFinishedLogs(ctx, 10); err != nil || n != 1 {
		t.Fatalf("CompressFinishedLogs = %d, %v; want the plain log", n, err)
	}
	for id, want := range logs {
		checkReads(t, db, id, want)
		if li, err := db.LogInfoOf(ctx, id); err != nil || !li.Compressed || li.Size != int64(len(want)) {
			t.Errorf("job %d: log info %+v, %v", id, li, err)
		}
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_log_chunks`); n != 0 {
		t.Errorf("%d plain chunks left", n)
	}
}
