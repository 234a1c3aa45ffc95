package handlers

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"kozmic/internal/testdb"
	"kozmic/internal/tmpfs"
)

// healthOf decodes a /healthz body.
func healthOf(t *testing.T, body string) health {
	t.Helper()
	var hl health
	if err := json.Unmarshal([]byte(body), &hl); err != nil {
		t.Fatalf("healthz body %q: %v", body, err)
	}
	return hl
}

// without is the health without its free bytes, which vary, for comparing.
func (hl health) without() health {
	hl.DiskFree = nil
	return hl
}

// While the runner's last ping of Docker failed, /healthz is 503 and says
// so, without the runner's sentence (or the engine's address).
func TestHealthzDockerUnreachable(t *testing.T) {
	s := newTestServer(t)
	s.Handler.jobs = unreachableJobs{Jobs: s.Handler.jobs, msg: "Docker is not reachable at unix:///secret/docker.sock — jobs will wait"}
	res, body := get(t, s, "/healthz")
	if res.StatusCode != 503 || healthOf(t, body).without() != (health{Status: "unavailable", Database: "ok", Docker: "unreachable", Writes: "ok", Disk: "ok"}) {
		t.Errorf("Docker down: %d %s", res.StatusCode, body)
	}
	if strings.Contains(body, "secret") {
		t.Error("healthz shows the runner's message")
	}
	if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", res.Header)
	}
	s.db.Close()
	if res, body := get(t, s, "/healthz"); res.StatusCode != 503 ||
		healthOf(t, body).without() != (health{Status: "unavailable", Database: "unavailable", Docker: "unreachable", Writes: "ok", Disk: "ok"}) {
		t.Errorf("both down: %d %s", res.StatusCode, body)
	}
}

// newTmpfsServer is a testServer whose database lives on a real tmpfs of
// size bytes, with local accounts and the minimum free disk space minFree;
// it returns the tmpfs's directory too.
func newTmpfsServer(t *testing.T, size int64, minFree uint64) (*testServer, string) {
	t.Helper()
	dir := tmpfs.Mount(t, size)
	db := testdb.OpenAt(t, filepath.Join(dir, "kozmic.db"))
	s := newTestServerWith(t, false, func(d *Deps) { d.DB = db; d.Sessions = db.Sessions(); d.MinFreeDisk = minFree })
	s.db = db
	return s, dir
}

// A write the full disk refuses makes /healthz 503 with "writes":"failing"
// (the database still answers reads), until a write succeeds again once
// there is space.
func TestHealthzFailsWhileWritesFail(t *testing.T) {
	ctx := context.Background()
	s, dir := newTmpfsServer(t, 8<<20, 0)
	if res, body := get(t, s, "/healthz"); res.StatusCode != 200 {
		t.Fatalf("before: %d %s", res.StatusCode, body)
	}
	unfill := tmpfs.Fill(t, dir)
	if _, err := s.db.CreateLocalUser(ctx, "ann", "hash", false); err == nil {
		t.Fatal("a write on the full disk succeeded")
	}
	res, body := get(t, s, "/healthz")
	hl := healthOf(t, body)
	if res.StatusCode != 503 || hl.without() != (health{Status: "unavailable", Database: "ok", Docker: "ok", Writes: "failing", Disk: "ok"}) ||
		hl.DiskFree == nil || *hl.DiskFree != 0 {
		t.Errorf("writes failing: %d %s", res.StatusCode, body)
	}
	if strings.Contains(body, "full") {
		t.Error("healthz shows the database's error")
	}

	unfill()
	if res, body := get(t, s, "/healthz"); res.StatusCode != 503 {
		t.Errorf("space again but no write since: %d %s, want still 503", res.StatusCode, body)
	}
	if _, err := s.db.CreateLocalUser(ctx, "ann", "hash", false); err != nil {
		t.Fatal(err)
	}
	if res, body := get(t, s, "/healthz"); res.StatusCode != 200 || healthOf(t, body).Writes != "ok" {
		t.Errorf("after a write landed: %d %s", res.StatusCode, body)
	}
}

// Less free space in the database's directory than the minimum makes
// /healthz 503 with "disk":"low" and the free bytes: an 8 MiB tmpfs is
// below a 16 MiB minimum, and above a 1 MiB one.
func TestHealthzFailsOnLowDisk(t *testing.T) {
	s, _ := newTmpfsServer(t, 8<<20, 16<<20)
	res, body := get(t, s, "/healthz")
	hl := healthOf(t, body)
	if res.StatusCode != 503 || hl.without() != (health{Status: "unavailable", Database: "ok", Docker: "ok", Writes: "ok", Disk: "low"}) ||
		hl.DiskFree == nil || *hl.DiskFree == 0 || *hl.DiskFree > 8<<20 {
		t.Errorf("8 MiB disk, 16 MiB minimum: %d %s", res.StatusCode, body)
	}

	s, _ = newTmpfsServer(t, 8<<20, 1<<20)
	if res, body := get(t, s, "/healthz"); res.StatusCode != 200 || healthOf(t, body).Disk != "ok" {
		t.Errorf("8 MiB disk, 1 MiB minimum: %d %s", res.StatusCode, body)
	}
}
