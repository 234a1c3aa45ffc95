package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"kozmic/migrations"
)

var testKey = []byte("0123456789abcdef0123456789abcdef-test")

func openAt(t testing.TB, path string, key []byte, fsys fs.FS) (*DB, error) {
	t.Helper()
	db, err := Open(context.Background(), path, Options{SecretKey: key, Migrations: fsys})
	if err == nil {
		t.Cleanup(func() { db.Close() })
	}
	return db, err
}

func newTestDB(t testing.TB) *DB {
	t.Helper()
	db, err := openAt(t, filepath.Join(t.TempDir(), "kozmic.db"), testKey, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// fixture is a project with one user, two hooks and nothing else.
type fixture struct {
	owner   User
	project Project
	hooks   []Hook
}

func newFixture(t testing.TB, db *DB, name string) fixture {
	t.Helper()
	ctx := context.Background()
	owner, err := db.CreateLocalUser(ctx, "owner-of-"+strings.ReplaceAll(name, "/", "-"), "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.CreateProject(ctx, NewProject{OwnerID: owner.ID, Source: SourceGit, FullName: name,
		GitURL: "/srv/git/" + name, WebhookSecret: "whsec-" + name})
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{owner: owner, project: p}
	for _, title := range []string{"lint", "test"} {
		h, err := db.CreateHook(ctx, Hook{ProjectID: p.ID, Title: title, DockerImage: "busybox",
			InstallScript: "#!/bin/sh\necho install", BuildScript: "#!/bin/sh\necho " + title,
			TrackedFiles: []string{"go.sum", "go.mod"}})
		if err != nil {
			t.Fatal(err)
		}
		f.hooks = append(f.hooks, h)
	}
	return f
}

// newBuildFixture is a fresh database with a fixture project and one build
// of refs/heads/main at commit abc.
func newBuildFixture(t testing.TB) (*DB, fixture, Build, []Job) {
	t.Helper()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	b, jobs, err := db.CreateBuild(context.Background(), NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	return db, f, b, jobs
}

// latestVersion is the number of the newest migration file.
func latestVersion(t testing.TB) int64 {
	t.Helper()
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	var v int64
	fmt.Sscanf(names[len(names)-1], "%d_", &v)
	return v
}

func count(t testing.TB, db *DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.read.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestOpenMigratesAndReopens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "k.db")
	db, err := openAt(t, path, testKey, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	v, err := db.SchemaVersion(ctx)
	if want := latestVersion(t); err != nil || v != want {
		t.Fatalf("schema version = %d, %v; want %d", v, err, want)
	}
	var mode string
	if err := db.write.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := db.read.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("reader foreign_keys = %d, %v; want 1", fk, err)
	}
	if _, err := db.read.Exec(`INSERT INTO meta (key, value) VALUES ('x', 'y')`); err == nil {
		t.Error("the reader pool accepted a write")
	}
	f := newFixture(t, db, "acme/widget")
	db.Close()

	// Re-running the migrations is a no-op that keeps the data.
	db2, err := openAt(t, path, testKey, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := db2.SchemaVersion(ctx); v != latestVersion(t) {
		t.Errorf("schema version after reopen = %d, want %d", v, latestVersion(t))
	}
	if _, err := db2.ProjectByID(ctx, f.project.ID); err != nil {
		t.Errorf("project lost on reopen: %v", err)
	}
}

func TestFailedMigrationLeavesDatabaseUnchanged(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "k.db")
	db, err := openAt(t, path, testKey, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, db, "acme/widget")
	db.Close()

	broken := fstest.MapFS{}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		data, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		broken[name] = &fstest.MapFile{Data: data}
	}
	// Creates a table and changes rows, then fails: all of it must roll back.
	broken["99999_broken.sql"] = &fstest.MapFile{Data: []byte(`-- +goose Up
CREATE TABLE half_done (id INTEGER PRIMARY KEY);
UPDATE projects SET full_name = 'changed/by-broken-migration';
INSERT INTO no_such_table VALUES (1);
-- +goose Down
DROP TABLE half_done;
`)}
	if _, err := openAt(t, path, testKey, broken); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("Open with a broken migration: err = %v, want the failing statement's error", err)
	}

	db, err = openAt(t, path, testKey, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := db.SchemaVersion(ctx); v != latestVersion(t) {
		t.Errorf("schema version = %d after the failed migration, want %d", v, latestVersion(t))
	}
	if n := count(t, db, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'`); n != 0 {
		t.Error("the failed migration's table survived")
	}
	p, err := db.ProjectByID(ctx, f.project.ID)
	if err != nil || p.FullName != "acme/widget" {
		t.Errorf("project after failed migration = %q, %v; want acme/widget unchanged", p.FullName, err)
	}
}

func TestSecretsSealedAtRestAndWrongKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "k.db")
	db, err := openAt(t, path, testKey, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, db, "acme/widget")
	const (
		secretValue = "s3cr3t-value-that-must-not-be-on-disk"
		privateKey  = "-----BEGIN OPENSSH PRIVATE KEY----- not really"
		token       = "gho_accesstoken_plaintext_marker"
	)
	if err := db.SetSecret(ctx, f.project.ID, Secret{Name: "API_TOKEN", Value: secretValue}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetDeployKey(ctx, DeployKey{ProjectID: f.project.ID, PrivateKey: privateKey, PublicKey: "ssh-ed25519 AAAA"}); err != nil {
		t.Fatal(err)
	}
	u, err := db.UpsertGitHubUser(ctx, GitHubUser{ID: 42, Login: "octocat", AccessToken: token})
	if err != nil {
		t.Fatal(err)
	}

	secrets, err := db.Secrets(ctx, f.project.ID)
	if err != nil || len(secrets) != 1 || secrets[0].Value != secretValue {
		t.Fatalf("Secrets = %v, %v", secrets, err)
	}
	if k, err := db.DeployKeyOf(ctx, f.project.ID); err != nil || k.PrivateKey != privateKey {
		t.Fatalf("DeployKeyOf = %q, %v", k.PrivateKey, err)
	}
	if got, err := db.UserAccessToken(ctx, u.ID); err != nil || got != token {
		t.Fatalf("UserAccessToken = %q, %v", got, err)
	}
	if got, err := db.WebhookSecret(ctx, f.project.ID); err != nil || got != "whsec-acme/widget" {
		t.Fatalf("WebhookSecret = %q, %v", got, err)
	}
	db.Close()

	// No plaintext on disk, in the database file or its WAL.
	for _, suffix := range []string{"", "-wal"} {
		raw, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, plain := range []string{secretValue, privateKey, token, "whsec-acme/widget"} {
			if bytes.Contains(raw, []byte(plain)) {
				t.Errorf("%s holds %q in plaintext", filepath.Base(path+suffix), plain)
			}
		}
	}

	// Another key is refused at Open, before anything can be misread.
	_, err = openAt(t, path, []byte("another-key-another-key-another-key!"), migrations.FS)
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with another key: err = %v, want ErrWrongKey", err)
	}
	// A value sealed under one key does not open under another.
	s1, _ := newSealer(testKey)
	s2, _ := newSealer([]byte("another-key-another-key-another-key!"))
	sealed, err := s1.seal([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.open(sealed); !errors.Is(err, ErrWrongKey) {
		t.Errorf("open under another key: err = %v, want ErrWrongKey", err)
	}
	if _, err := newSealer([]byte("short")); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}

func TestUniqueConstraintsAreConflicts(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")

	_, err := db.CreateProject(ctx, NewProject{OwnerID: f.owner.ID, Source: SourceGit, FullName: "ACME/Widget",
		GitURL: "/x", WebhookSecret: "s"})
	if !errors.Is(err, ErrConflict) {
		t.Errorf("same name in other case: err = %v, want ErrConflict", err)
	}
	gh := NewProject{OwnerID: f.owner.ID, Source: SourceGitHub, GitHubID: 77, FullName: "acme/one", WebhookSecret: "s"}
	if _, err := db.CreateProject(ctx, gh); err != nil {
		t.Fatal(err)
	}
	gh.FullName = "acme/two"
	if _, err := db.CreateProject(ctx, gh); !errors.Is(err, ErrConflict) {
		t.Errorf("same GitHub id: err = %v, want ErrConflict", err)
	}
	if _, err := db.CreateHook(ctx, Hook{ProjectID: f.project.ID, Title: "lint", DockerImage: "x", BuildScript: "x"}); !errors.Is(err, ErrConflict) {
		t.Errorf("same hook title: err = %v, want ErrConflict", err)
	}
	if _, err := db.CreateLocalUser(ctx, f.owner.Username, "h", false); !errors.Is(err, ErrConflict) {
		t.Errorf("same username: err = %v, want ErrConflict", err)
	}
	if err := db.DeleteUser(ctx, f.owner.ID); !errors.Is(err, ErrConflict) {
		t.Errorf("deleting a project owner: err = %v, want ErrConflict", err)
	}
	if _, err := db.CreateHook(ctx, Hook{ProjectID: 9999, Title: "t", DockerImage: "x", BuildScript: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("hook for a missing project: err = %v, want ErrNotFound", err)
	}
	if _, err := db.CreateHook(ctx, Hook{ProjectID: f.project.ID, Title: " ", DockerImage: "x", BuildScript: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("blank hook title: err = %v, want ErrInvalid", err)
	}

	// Tracked files: unique per hook, case-sensitive, blanks and repeats dropped.
	h, err := db.UpdateHook(ctx, Hook{ID: f.hooks[0].ID, Title: "lint", DockerImage: "busybox", BuildScript: "x",
		TrackedFiles: []string{"README", "readme", " README ", "", "a/b.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(h.TrackedFiles); got != "[README a/b.txt readme]" {
		t.Errorf("tracked files = %s, want [README a/b.txt readme]", got)
	}
	if _, err := db.write.Exec(`INSERT INTO tracked_files (hook_id, path) VALUES (?, 'README')`, h.ID); err == nil {
		t.Error("the schema let a tracked path repeat")
	}
}

func TestDeleteProjectRemovesEverything(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	doomed := newFixture(t, db, "acme/doomed")
	kept := newFixture(t, db, "acme/kept")

	for _, f := range []fixture{doomed, kept} {
		member, err := db.CreateLocalUser(ctx, "member-"+f.project.FullName[5:], "h", false)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.SetMembership(ctx, Membership{ProjectID: f.project.ID, UserID: member.ID}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetSecret(ctx, f.project.ID, Secret{Name: "TOKEN", Value: "v"}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetDeployKey(ctx, DeployKey{ProjectID: f.project.ID, PrivateKey: "priv", PublicKey: "pub"}); err != nil {
			t.Fatal(err)
		}
		_, jobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.AppendLog(ctx, jobs[0].ID, []byte("hello\n"), false); err != nil {
			t.Fatal(err)
		}
		// Deliveries and the status outbox get their store methods with the
		// GitHub issue; rows written directly here check the cascade.
		if _, err := db.write.Exec(`INSERT INTO webhook_deliveries (delivery_id, project_id, event, received_at) VALUES (?, ?, 'push', 0)`,
			"d-"+f.project.FullName, f.project.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := db.write.Exec(`INSERT INTO status_outbox (project_id, job_id, repo_full_name, sha, context, state, next_attempt_at, created_at)
			VALUES (?, ?, ?, 'abc', 'kozmic/lint', 'pending', 0, 0)`, f.project.ID, jobs[0].ID, f.project.FullName); err != nil {
			t.Fatal(err)
		}
	}

	if err := db.DeleteProject(ctx, doomed.project.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteProject(ctx, doomed.project.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}

	perProject := map[string]string{
		"hooks":              `SELECT COUNT(*) FROM hooks WHERE project_id = ?`,
		"tracked_files":      `SELECT COUNT(*) FROM tracked_files t JOIN hooks h ON h.id = t.hook_id WHERE h.project_id = ?`,
		"builds":             `SELECT COUNT(*) FROM builds WHERE project_id = ?`,
		"hook_calls":         `SELECT COUNT(*) FROM hook_calls c JOIN builds b ON b.id = c.build_id WHERE b.project_id = ?`,
		"jobs":               `SELECT COUNT(*) FROM jobs j JOIN builds b ON b.id = j.build_id WHERE b.project_id = ?`,
		"memberships":        `SELECT COUNT(*) FROM memberships WHERE project_id = ?`,
		"project_secrets":    `SELECT COUNT(*) FROM project_secrets WHERE project_id = ?`,
		"deploy_keys":        `SELECT COUNT(*) FROM deploy_keys WHERE project_id = ?`,
		"webhook_deliveries": `SELECT COUNT(*) FROM webhook_deliveries WHERE project_id = ?`,
		"status_outbox":      `SELECT COUNT(*) FROM status_outbox WHERE project_id = ?`,
	}
	for table, q := range perProject {
		if n := count(t, db, q, doomed.project.ID); n != 0 {
			t.Errorf("%s: %d rows of the deleted project remain", table, n)
		}
		if n := count(t, db, q, kept.project.ID); n == 0 {
			t.Errorf("%s: the other project's rows were deleted too", table)
		}
	}
	// Logs hang off jobs; with the doomed project's jobs gone only the kept one's remain.
	if n := count(t, db, `SELECT COUNT(*) FROM job_logs`); n != 1 {
		t.Errorf("job_logs rows = %d, want 1 (the kept project's)", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM job_log_frames`); n != 1 {
		t.Errorf("job_log_frames rows = %d, want 1", n)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM users`); n != 4 {
		t.Errorf("users = %d, want 4: deleting a project keeps people", n)
	}
}

func TestDeleteHookKeepsHistory(t *testing.T) {
	ctx := context.Background()
	db, f, b, jobs := newBuildFixture(t)
	if err := db.DeleteHook(ctx, f.hooks[0].ID); err != nil {
		t.Fatal(err)
	}
	got, err := db.Jobs(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(jobs) {
		t.Fatalf("jobs after hook delete = %d, want %d", len(got), len(jobs))
	}
	if got[0].HookID != 0 || got[0].HookTitle != "lint" {
		t.Errorf("job of the deleted hook: HookID = %d, HookTitle = %q; want 0, lint", got[0].HookID, got[0].HookTitle)
	}
	if got[1].HookID != f.hooks[1].ID {
		t.Errorf("job of the kept hook lost its hook: %+v", got[1])
	}
	if n := count(t, db, `SELECT COUNT(*) FROM tracked_files WHERE hook_id = ?`, f.hooks[0].ID); n != 0 {
		t.Errorf("tracked files of the deleted hook remain: %d", n)
	}
	// The next build has only the remaining hook.
	_, jobs2, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "def"})
	if err != nil || len(jobs2) != 1 || jobs2[0].HookTitle != "test" {
		t.Errorf("next build jobs = %+v, %v; want one job for hook test", jobs2, err)
	}
}

func TestCreateBuild(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	nb := NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "abc123", Author: "Ann", Message: "fix"}

	b, jobs, err := db.CreateBuild(ctx, nb)
	if err != nil {
		t.Fatal(err)
	}
	if b.Number != 1 || b.Status != BuildEnqueued || b.Branch() != "main" || b.Author != "Ann" {
		t.Errorf("build = %+v", b)
	}
	if len(jobs) != 2 || jobs[0].HookTitle != "lint" || jobs[0].Attempt != 1 || jobs[0].Status != JobEnqueued {
		t.Errorf("jobs = %+v", jobs)
	}

	// Same ref and SHA: the same build, no new rows.
	again, jobs2, err := db.CreateBuild(ctx, nb)
	if err != nil || again.ID != b.ID || jobs2 != nil {
		t.Errorf("second CreateBuild = %d, %d jobs, %v; want build %d and no jobs", again.ID, len(jobs2), err, b.ID)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM jobs`); n != 2 {
		t.Errorf("jobs after a repeated build = %d, want 2", n)
	}
	// Another ref for the same SHA is another build.
	other, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/pull/7/head", SHA: "abc123"})
	if err != nil || other.Number != 2 {
		t.Errorf("build for another ref: number %d, %v; want 2", other.Number, err)
	}
	if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: 999, Ref: "r", SHA: "s"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing project: err = %v, want ErrNotFound", err)
	}
	for _, h := range f.hooks {
		if err := db.DeleteHook(ctx, h.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "r", SHA: "s"}); !errors.Is(err, ErrNoHooks) {
		t.Errorf("no hooks: err = %v, want ErrNoHooks", err)
	}

	got, err := db.BuildByNumber(ctx, f.project.ID, 2)
	if err != nil || got.Ref != "refs/pull/7/head" {
		t.Errorf("BuildByNumber(2) = %+v, %v", got, err)
	}
	if _, err := db.BuildByNumber(ctx, f.project.ID, 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("BuildByNumber(3): err = %v, want ErrNotFound", err)
	}
}

func TestConcurrentBuildNumbers(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	const n = 50
	numbers := make([]int, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: fmt.Sprintf("sha%d", i)})
			numbers[i], errs[i] = b.Number, err
		})
	}
	wg.Wait()
	seen := map[int]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if seen[numbers[i]] {
			t.Errorf("build number %d given twice", numbers[i])
		}
		seen[numbers[i]] = true
	}
	for k := 1; k <= n; k++ {
		if !seen[k] {
			t.Errorf("build number %d never given", k)
		}
	}
	if c := count(t, db, `SELECT COUNT(*) FROM jobs`); c != 2*n {
		t.Errorf("jobs = %d, want %d", c, 2*n)
	}
}

func TestUpdateJobDerivesBuildStatus(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	lint, test := jobs[0].ID, jobs[1].ID
	zero, one := 0, 1

	steps := []struct {
		job       int64
		update    JobUpdate
		wantBuild BuildStatus
	}{
		{lint, JobUpdate{Status: JobRunning, ContainerID: "c1"}, BuildPending},
		{lint, JobUpdate{Status: JobSuccess, ExitCode: &zero, Cache: CacheMiss, CacheID: "abc"}, BuildPending},
		{test, JobUpdate{Status: JobRunning}, BuildPending},
		{test, JobUpdate{Status: JobFailure, ExitCode: &one, Cache: CacheHit}, BuildFailure},
	}
	for i, s := range steps {
		ch, err := db.UpdateJob(ctx, s.job, s.update)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		j, b := ch.Job, ch.Build
		if j.Status != s.update.Status || b.Status != s.wantBuild {
			t.Errorf("step %d: job %s, build %s; want %s, %s", i, j.Status, b.Status, s.update.Status, s.wantBuild)
		}
		if b.StartedAt.IsZero() {
			t.Errorf("step %d: build has no start time", i)
		}
		if b.Status.Finished() == b.FinishedAt.IsZero() {
			t.Errorf("step %d: build %s with finished_at %v", i, b.Status, b.FinishedAt)
		}
	}
	j, err := db.JobByID(ctx, lint)
	if err != nil {
		t.Fatal(err)
	}
	if j.ExitCode == nil || *j.ExitCode != 0 || j.Cache != CacheMiss || j.CacheID != "abc" || j.ContainerID != "c1" ||
		j.StartedAt.IsZero() || j.FinishedAt.IsZero() {
		t.Errorf("finished job = %+v", j)
	}
	if _, err := db.UpdateJob(ctx, lint, JobUpdate{Status: JobRunning}); !errors.Is(err, ErrConflict) {
		t.Errorf("finished job back to running: err = %v, want ErrConflict", err)
	}
	if j2, _ := db.JobByID(ctx, lint); j2.Status != JobSuccess {
		t.Errorf("refused update changed the job to %s", j2.Status)
	}
	if _, err := db.UpdateJob(ctx, 9999, JobUpdate{Status: JobRunning}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing job: err = %v, want ErrNotFound", err)
	}
}

func TestLogs(t *testing.T) {
	ctx := context.Background()
	db, _, _, jobs := newBuildFixture(t)
	id := jobs[0].ID
	if li, err := db.LogInfoOf(ctx, id); err != nil || li.Size != 0 {
		t.Fatalf("empty log info = %+v, %v", li, err)
	}
	var all []byte
	for i := range 20 {
		chunk := []byte(strings.Repeat(fmt.Sprintf("line %d\n", i), i+1))
		size, err := db.AppendLog(ctx, id, chunk, false)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, chunk...)
		if size != int64(len(all)) {
			t.Fatalf("size after chunk %d = %d, want %d", i, size, len(all))
		}
	}
	if _, err := db.AppendLog(ctx, id, []byte("[log truncated]\n"), true); err != nil {
		t.Fatal(err)
	}
	all = append(all, "[log truncated]\n"...)
	li, err := db.LogInfoOf(ctx, id)
	if err != nil || li.Size != int64(len(all)) || !li.Truncated {
		t.Errorf("log info = %+v, %v; want size %d, truncated", li, err, len(all))
	}
	// Reading from every offset gives exactly the rest of the log.
	for from := 0; from <= len(all); from += 7 {
		got, err := db.ReadLog(ctx, id, int64(from), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, all[from:]) {
			t.Fatalf("ReadLog(from %d) = %d bytes, want %d", from, len(got), len(all)-from)
		}
	}
	// Small pages joined end to end are the log: no gaps, no repeats.
	var paged []byte
	for {
		page, err := db.ReadLog(ctx, id, int64(len(paged)), 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
	}
	if !bytes.Equal(paged, all) {
		t.Errorf("paged read differs from the log")
	}
	if _, err := db.AppendLog(ctx, 9999, []byte("x"), false); !errors.Is(err, ErrNotFound) {
		t.Errorf("log of a missing job: err = %v, want ErrNotFound", err)
	}
}

func TestWriteTxRollsBack(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	insert := func(tx txn, name string) {
		if _, err := tx.Exec(`INSERT INTO users (username, created_at) VALUES (?, 0)`, name); err != nil {
			t.Fatal(err)
		}
	}
	err := db.writeTx(ctx, func(tx txn) error {
		insert(tx, "half-done")
		return errors.New("second step failed")
	})
	if err == nil {
		t.Fatal("writeTx returned nil for a failing step")
	}
	func() {
		defer func() { recover() }()
		db.writeTx(ctx, func(tx txn) error {
			insert(tx, "panicked")
			panic("boom")
		})
	}()
	if n := count(t, db, `SELECT COUNT(*) FROM users`); n != 0 {
		t.Errorf("users after rolled-back transactions = %d, want 0", n)
	}
	// The writer connection is usable after both.
	if _, err := db.CreateLocalUser(ctx, "after", "h", false); err != nil {
		t.Errorf("write after rollback: %v", err)
	}
}

// The listings the UI needs are served by indexes, not table scans or sorts.
func TestListingsUseIndexes(t *testing.T) {
	db := newTestDB(t)
	queries := map[string]string{
		"builds of a project": `SELECT id FROM builds WHERE project_id = 1 AND number < 100 ORDER BY number DESC LIMIT 50`,
		"builds of a branch":  `SELECT id FROM builds WHERE project_id = 1 AND number < 100 AND ref = 'refs/heads/main' ORDER BY number DESC LIMIT 50`,
		"builds by status":    `SELECT id FROM builds WHERE project_id = 1 AND number < 100 AND status = 'failure' ORDER BY number DESC LIMIT 50`,
		"builds by trigger":   `SELECT id FROM builds WHERE project_id = 1 AND number < 100 AND trigger_kind = 'manual' ORDER BY number DESC LIMIT 50`,
		"a branch's badge build": `SELECT id FROM builds WHERE project_id = 1 AND ref = 'refs/heads/main' AND NOT from_fork
			AND ref NOT LIKE 'refs/pull/%' AND ref NOT LIKE 'refs/merge-requests/%' ORDER BY number DESC LIMIT 1`,
		"jobs of a build":          `SELECT id FROM jobs WHERE build_id = 1`,
		"enqueued jobs in order":   `SELECT id FROM jobs WHERE status = 'enqueued' ORDER BY id LIMIT 1`,
		"projects of a member":     `SELECT project_id FROM memberships WHERE user_id = 1`,
		"statuses due":             `SELECT id FROM status_outbox WHERE failed = 0 AND next_attempt_at <= 5 ORDER BY next_attempt_at`,
		"hook calls of a hook":     `SELECT id FROM hook_calls WHERE hook_id = 1`,
		"expired sessions":         `SELECT token_hash FROM sessions WHERE expiry < 5`,
		"a user's sessions":        `SELECT token_hash FROM sessions WHERE user_id = 1`,
		"log segments from offset": strings.NewReplacer("?1", "1", "?2", "10").Replace(segmentsQuery),
		"deliveries by age":        `SELECT delivery_id FROM webhook_deliveries WHERE received_at < 5`,
		"projects owned by a user": `SELECT id FROM projects WHERE owner_id = 1`,
		"logs past retention": `SELECT j.id, l.size FROM jobs j LEFT JOIN job_logs l ON l.job_id = j.id
			WHERE j.log_deleted_at IS NULL AND j.finished_at < 5 ORDER BY j.finished_at LIMIT 100`,
		"uncompressed logs": `SELECT l.job_id FROM job_logs l JOIN jobs j ON j.id = l.job_id
			WHERE l.compressed = 0 AND j.status IN ('success', 'failure', 'error') ORDER BY l.job_id LIMIT 5`,
	}
	for name, q := range queries {
		plan := queryPlan(t, db, q)
		for _, step := range plan {
			// Scanning the partial index of enqueued jobs reads only the
			// queue; that of uncompressed logs, only running jobs' logs.
			partial := strings.Contains(step, "INDEX jobs_enqueued") || strings.Contains(step, "INDEX job_logs_uncompressed")
			if strings.Contains(step, "SCAN ") && !partial || strings.Contains(step, "TEMP B-TREE") {
				t.Errorf("%s: plan %q scans or sorts", name, strings.Join(plan, "; "))
			}
		}
	}
}

// Builds narrows its list by ref, status and how a build was started, all
// at once, newest first and a page at a time.
func TestBuildsFilterByStatusAndTrigger(t *testing.T) {
	db := newTestDB(t)
	f := newFixture(t, db, "acme/filters")
	ctx := context.Background()
	type made struct {
		ref     string
		trigger Trigger
		status  JobStatus
	}
	for i, m := range []made{
		{"refs/heads/main", Trigger{Kind: TriggerPush}, JobSuccess},                // 1
		{"refs/heads/main", Trigger{Kind: TriggerManual, User: "ann"}, JobFailure}, // 2
		{"refs/pull/7/head", Trigger{Kind: TriggerPullRequest, PR: 7}, JobFailure}, // 3
		{"refs/heads/dev", Trigger{Kind: TriggerPush}, JobFailure},                 // 4
		{"refs/heads/main", Trigger{Kind: TriggerPush}, JobFailure},                // 5
		{"refs/heads/main", Trigger{Kind: TriggerManual, User: "ann"}, ""},         // 6: still enqueued
	} {
		_, jobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: m.ref, SHA: fmt.Sprintf("%040d", i), Trigger: m.trigger})
		if err != nil {
			t.Fatal(err)
		}
		if m.status == "" {
			continue
		}
		for _, j := range jobs {
			if _, err := db.UpdateJob(ctx, j.ID, JobUpdate{Status: JobRunning}); err != nil {
				t.Fatal(err)
			}
			if _, err := db.UpdateJob(ctx, j.ID, JobUpdate{Status: m.status}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tt := range []struct {
		q    BuildQuery
		want []int
	}{
		{BuildQuery{}, []int{6, 5, 4, 3, 2, 1}},
		{BuildQuery{Status: BuildFailure}, []int{5, 4, 3, 2}},
		{BuildQuery{Trigger: TriggerManual}, []int{6, 2}},
		{BuildQuery{Status: BuildFailure, Trigger: TriggerPush}, []int{5, 4}},
		{BuildQuery{Status: BuildFailure, Trigger: TriggerPush, Ref: "refs/heads/main"}, []int{5}},
		{BuildQuery{Status: BuildFailure, Limit: 2}, []int{5, 4}},
		{BuildQuery{Status: BuildFailure, Before: 4, Limit: 2}, []int{3, 2}},
		{BuildQuery{Status: BuildEnqueued}, []int{6}},
		{BuildQuery{Trigger: TriggerPullRequest, Status: BuildSuccess}, nil},
	} {
		bs, err := db.Builds(ctx, f.project.ID, tt.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, b := range bs {
			got = append(got, b.Number)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Builds(%+v) = %v, want %v", tt.q, got, tt.want)
		}
	}
}

func TestWriterStatementsArePreparedAfterFirstUse(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	prepared := func() int {
		db.stmts.mu.Lock()
		defer db.stmts.mu.Unlock()
		return len(db.stmts.stmts)
	}
	before := prepared()
	if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "r", SHA: "1"}); err != nil {
		t.Fatal(err)
	}
	after := prepared()
	if after <= before {
		t.Fatalf("prepared statements: %d before the first build, %d after; want more", before, after)
	}
	// The second build runs on the prepared statements and adds none.
	b, jobs, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "r", SHA: "2"})
	if err != nil || b.Number != 2 || len(jobs) != 2 {
		t.Fatalf("second build = %d with %d jobs, %v", b.Number, len(jobs), err)
	}
	if n := prepared(); n != after {
		t.Errorf("prepared statements grew from %d to %d on a repeated operation", after, n)
	}
}

func TestCreateBuildRecordsDeliveryOnce(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	f := newFixture(t, db, "acme/widget")
	nb := NewBuild{ProjectID: f.project.ID, Ref: "refs/heads/main", SHA: "abc", DeliveryID: "d-1", Event: "push"}
	b, jobs, err := db.CreateBuild(ctx, nb)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("first delivery: %d jobs, %v", len(jobs), err)
	}
	if _, _, err := db.CreateBuild(ctx, nb); !errors.Is(err, ErrSeenDelivery) || !errors.Is(err, ErrConflict) {
		t.Errorf("same delivery again: err = %v, want ErrSeenDelivery", err)
	}
	// Another delivery of the same commit reuses the build and is recorded.
	nb.DeliveryID = "d-2"
	again, jobs, err := db.CreateBuild(ctx, nb)
	if err != nil || again.ID != b.ID || jobs != nil {
		t.Errorf("second delivery of the commit: build %d, %d jobs, %v", again.ID, len(jobs), err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM webhook_deliveries WHERE project_id = ?`, f.project.ID); n != 2 {
		t.Errorf("deliveries = %d, want 2", n)
	}
	if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: 999, Ref: "r", SHA: "s", DeliveryID: "d-3"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("delivery for a missing project: err = %v, want ErrNotFound", err)
	}
	// A failed build creation (no hooks) does not keep its delivery.
	for _, h := range f.hooks {
		db.DeleteHook(ctx, h.ID)
	}
	if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: f.project.ID, Ref: "r", SHA: "s", DeliveryID: "d-4"}); !errors.Is(err, ErrNoHooks) {
		t.Fatalf("no hooks: %v", err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM webhook_deliveries WHERE delivery_id = 'd-4'`); n != 0 {
		t.Error("the delivery of a rolled-back build was kept")
	}
}

// TestNewWebhookSecret checks that a fresh secret has 256 bits in hex and
// is new each time.
func TestSetDefaultBranch(t *testing.T) {
	db := newTestDB(t)
	ctx := context.Background()
	f := newFixture(t, db, "acme/app")
	if f.project.DefaultBranch != "" {
		t.Errorf("a new project's default branch = %q, want unknown", f.project.DefaultBranch)
	}
	for _, bad := range []string{"", "refs/heads/main", "a b", "a\nb", strings.Repeat("b", MaxBranch+1)} {
		if err := db.SetDefaultBranch(ctx, f.project.ID, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetDefaultBranch(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := db.SetDefaultBranch(ctx, f.project.ID+100, "main"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing project: %v, want ErrNotFound", err)
	}
	if err := db.SetDefaultBranch(ctx, f.project.ID, "release/2.x"); err != nil {
		t.Fatal(err)
	}
	if p, err := db.ProjectByID(ctx, f.project.ID); err != nil || p.DefaultBranch != "release/2.x" {
		t.Errorf("default branch %q, %v; want release/2.x", p.DefaultBranch, err)
	}
}

func TestNewWebhookSecret(t *testing.T) {
	a, b := NewWebhookSecret(), NewWebhookSecret()
	if len(a) != 64 || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("secret %q is not 64 hex digits", a)
	}
	if a == b {
		t.Errorf("two secrets are both %q", a)
	}
}

// WriteTransactions counts each write transaction once, committed or
// rolled back, and reads not at all: what tests that a page view writes
// nothing rely on.
func TestWriteTransactionsCountsWritesAndNotReads(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	s := db.Sessions()
	before := db.WriteTransactions()
	if err := s.CommitCtx(ctx, "token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateLocalUser(ctx, "ann", "hash", false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateLocalUser(ctx, "ann", "hash", false); !errors.Is(err, ErrConflict) {
		t.Fatalf("second ann: %v, want ErrConflict", err)
	}
	if got := db.WriteTransactions() - before; got != 3 {
		t.Errorf("three writes (one rolled back) counted %d", got)
	}
	before = db.WriteTransactions()
	if _, found, err := s.FindCtx(ctx, "token"); !found || err != nil {
		t.Fatalf("find session: %v %v", found, err)
	}
	if _, err := db.ProjectsWithLatestBuild(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got := db.WriteTransactions() - before; got != 0 {
		t.Errorf("reads counted as %d writes", got)
	}
}

// queryPlan is SQLite's plan of query q with args, a step a line of
// EXPLAIN QUERY PLAN's details.
func queryPlan(t testing.TB, db *DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.read.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}
