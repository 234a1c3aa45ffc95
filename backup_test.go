package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"kozmic/store"
)

// serverLike opens the database as the server would and gives it a project
// with two hooks, so that builds can be made.
func serverLike(t *testing.T, dbPath, key string) (*store.DB, store.Project) {
	t.Helper()
	ctx := context.Background()
	db := openTestStore(t, dbPath, key)
	u, err := db.CreateLocalUser(ctx, "ann", "hash", true)
	if err != nil {
		t.Fatal(err)
	}
	p, err := db.CreateProject(ctx, store.NewProject{OwnerID: u.ID, Source: store.SourceGit, FullName: "ann/app",
		GitURL: "/srv/git/app", WebhookSecret: "whsec"})
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"lint", "test"} {
		if _, err := db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: title, DockerImage: "busybox",
			BuildScript: "#!/bin/sh\necho " + title}); err != nil {
			t.Fatal(err)
		}
	}
	return db, p
}

// openCopy opens a backup for reading with plain SQL.
func openCopy(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var wroteLine = regexp.MustCompile(`^wrote (\S+), a copy of \S+ \((\d+) bytes, schema version \d+, integrity checked\); restoring it needs the same KOZMIC_SECRET_KEY\n$`)

// A backup taken while builds are being created holds every build
// acknowledged before it began, whole, and passes the integrity check.
func TestBackupWhileBuildsArrive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "kozmic.db")
	key := strings.Repeat("k", 40)
	db, p := serverLike(t, dbPath, key)
	// Some log bytes, so that the copy takes a while.
	_, jobs, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "first"})
	if err != nil {
		t.Fatal(err)
	}
	line := bytes.Repeat([]byte("log line of the first build\n"), 1000)
	for range 100 {
		if _, err := db.AppendLog(ctx, jobs[0].ID, line, false); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu      sync.Mutex
		acked   []store.Build
		failed  error
		stop    = make(chan struct{})
		started = make(chan struct{})
		once    sync.Once
		wg      sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				b, _, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main",
					SHA: fmt.Sprintf("w%d-%d", w, i)})
				mu.Lock()
				if err != nil {
					failed = err
				} else {
					acked = append(acked, b)
				}
				if len(acked) >= 20 || err != nil {
					once.Do(func() { close(started) })
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	<-started
	mu.Lock()
	before := slices.Clone(acked)
	mu.Unlock()
	backup := filepath.Join(dir, "backup.db")
	code, out, errOut := runKozmic(ctx, []string{"backup", backup}, env(t, map[string]string{"KOZMIC_DATABASE": dbPath, "KOZMIC_SECRET_KEY": key}))
	close(stop)
	wg.Wait()
	if failed != nil {
		t.Fatalf("a build failed while the backup ran: %v", failed)
	}
	if code != 0 {
		t.Fatalf("backup: exit %d, %s", code, errOut)
	}
	t.Logf("%d builds acknowledged before the backup, %d by the end", len(before), len(acked))

	m := wroteLine.FindStringSubmatch(out)
	if m == nil || m[1] != backup {
		t.Fatalf("output %q, want a line naming %s", out, backup)
	}
	fi, err := os.Stat(backup)
	if err != nil || strconv.FormatInt(fi.Size(), 10) != m[2] || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v, size %d, mode %v; printed %s bytes, want mode 0600", err, fi.Size(), fi.Mode().Perm(), m[2])
	}
	if err := store.CheckIntegrity(ctx, backup); err != nil {
		t.Errorf("integrity of the backup: %v", err)
	}
	cp := openCopy(t, backup)
	have := map[int64]string{}
	rows, err := cp.Query(`SELECT id, sha FROM builds`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var sha string
		rows.Scan(&id, &sha)
		have[id] = sha
	}
	rows.Close()
	for _, b := range before {
		if have[b.ID] != b.SHA {
			t.Errorf("build %d (%s), acknowledged before the backup began, is not in it", b.ID, b.SHA)
		}
	}
	// Every build in the copy is whole: made in one transaction, copied from one snapshot.
	var partial int
	cp.QueryRow(`SELECT COUNT(*) FROM builds b WHERE (SELECT COUNT(*) FROM jobs WHERE build_id = b.id) <> 2
		OR (SELECT COUNT(*) FROM hook_calls WHERE build_id = b.id) <> 2`).Scan(&partial)
	if partial != 0 {
		t.Errorf("%d builds in the backup without their two jobs and hook calls", partial)
	}
	var logBytes int
	cp.QueryRow(`SELECT size FROM job_logs WHERE job_id = ?`, jobs[0].ID).Scan(&logBytes)
	if logBytes != 100*len(line) {
		t.Errorf("log in the backup: %d bytes, want %d", logBytes, 100*len(line))
	}
	// Nothing but the database's own files and the backup is left in the directory.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "kozmic.db") && e.Name() != "backup.db" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// Restored, it opens with the same key as a Kozmic database.
	restored := filepath.Join(t.TempDir(), "kozmic.db")
	b, _ := os.ReadFile(backup)
	os.WriteFile(restored, b, 0o600)
	rdb := openTestStore(t, restored, key)
	if got, err := rdb.BuildByID(ctx, before[0].ID); err != nil || got.SHA != before[0].SHA {
		t.Errorf("restored build = %+v, %v", got, err)
	}
}

func TestBackupCommandRefusals(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "kozmic.db")
	key := strings.Repeat("k", 40)
	db, p := serverLike(t, dbPath, key)
	e := env(t, map[string]string{"KOZMIC_DATABASE": dbPath, "KOZMIC_SECRET_KEY": key})
	oneLine := func(s string) bool { return strings.Count(s, "\n") == 1 && strings.HasSuffix(s, "\n") }

	for _, args := range [][]string{{"backup"}, {"backup", "-force"}, {"backup", "-database", dbPath}} {
		code, out, errOut := runKozmic(ctx, args, e)
		if code != 2 || out != "" || !oneLine(errOut) || !strings.Contains(errOut, "usage: kozmic backup FILE") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and one usage line", args, code, out, errOut)
		}
	}

	backup := filepath.Join(dir, "b.db")
	if code, _, errOut := runKozmic(ctx, []string{"backup", backup}, e); code != 0 {
		t.Fatalf("first backup: exit %d, %s", code, errOut)
	}
	first, _ := os.ReadFile(backup)
	if _, _, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "later"}); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runKozmic(ctx, []string{"backup", backup}, e)
	if code != 2 || !oneLine(errOut) || !strings.Contains(errOut, "exists; pass -force") {
		t.Errorf("existing file: exit %d, %q; want 2 and a line asking for -force", code, errOut)
	}
	if now, _ := os.ReadFile(backup); !bytes.Equal(now, first) {
		t.Error("a refused backup changed the existing file")
	}
	if code, _, errOut := runKozmic(ctx, []string{"backup", "-force", backup}, e); code != 0 {
		t.Fatalf("-force: exit %d, %s", code, errOut)
	}
	var later int
	openCopy(t, backup).QueryRow(`SELECT COUNT(*) FROM builds WHERE sha = 'later'`).Scan(&later)
	if later != 1 {
		t.Error("-force did not replace the backup with a new one")
	}

	// Never over the database or its key, not even with -force.
	keyFileDB := filepath.Join(t.TempDir(), "k.db")
	ek := env(t, map[string]string{"KOZMIC_DATABASE": keyFileDB})
	if code, _, errOut := runKozmic(ctx, []string{"migrate"}, ek); code != 0 {
		t.Fatalf("migrate: %d %s", code, errOut)
	}
	for _, target := range []string{keyFileDB, keyFileDB + ".key"} {
		before, _ := os.ReadFile(target)
		code, _, errOut := runKozmic(ctx, []string{"backup", target, "-force"}, ek)
		if code != 2 || !strings.Contains(errOut, "itself") {
			t.Errorf("backup over %s: exit %d, %q; want 2", target, code, errOut)
		}
		if after, _ := os.ReadFile(target); !bytes.Equal(before, after) {
			t.Errorf("%s changed", target)
		}
	}
	// With the key file, the output says where the key is.
	code, out, _ := runKozmic(ctx, []string{"backup", filepath.Join(t.TempDir(), "x.db")}, ek)
	if code != 0 || !strings.HasSuffix(out, "restoring it needs the key in "+keyFileDB+".key\n") {
		t.Errorf("backup with a key file: exit %d, %q", code, out)
	}

	// A wrong key: exit 2 naming the key. No key at all: exit 2 naming the
	// missing key file, which is not made up for a database that has another key.
	wrong := env(t, map[string]string{"KOZMIC_DATABASE": dbPath, "KOZMIC_SECRET_KEY": strings.Repeat("w", 40)})
	target := filepath.Join(t.TempDir(), "w.db")
	if code, _, errOut := runKozmic(ctx, []string{"backup", target}, wrong); code != 2 || !strings.HasPrefix(errOut, "kozmic: KOZMIC_SECRET_KEY: ") {
		t.Errorf("wrong key: exit %d, %q", code, errOut)
	}
	noKey := env(t, map[string]string{"KOZMIC_DATABASE": dbPath})
	if code, _, errOut := runKozmic(ctx, []string{"backup", target}, noKey); code != 2 || !oneLine(errOut) ||
		errOut != "kozmic: KOZMIC_SECRET_KEY: unset, and there is no key file "+dbPath+".key: the backup needs the database's key\n" {
		t.Errorf("no key: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(dbPath + ".key"); !os.IsNotExist(err) {
		t.Errorf("a key file was left beside a database with another key (%v)", err)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("refused backups wrote %s (%v)", target, err)
	}
	// A database that does not exist is not created.
	missing := filepath.Join(t.TempDir(), "missing.db")
	code, _, errOut = runKozmic(ctx, []string{"backup", target}, env(t, map[string]string{"KOZMIC_DATABASE": missing, "KOZMIC_SECRET_KEY": key}))
	if code != 2 || !oneLine(errOut) || !strings.HasPrefix(errOut, "kozmic: KOZMIC_DATABASE: there is no database at "+missing+";") {
		t.Errorf("missing database: exit %d, %q; want 2 naming %s", code, errOut, missing)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("backup created the database it was to copy (%v)", err)
	}
}
