package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kozmic/internal/testdb"
	"kozmic/internal/testimage"
	"kozmic/internal/tmpfs"
	"kozmic/runner"
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

// healthParts is a health's words alone, for comparing.
type healthParts struct{ Status, Database, Docker, Writes, Disk string }

// without is the health without its free bytes, which vary, and its
// engines, for comparing.
func (hl health) without() healthParts {
	return healthParts{Status: hl.Status, Database: hl.Database, Docker: hl.Docker, Writes: hl.Writes, Disk: hl.Disk}
}

// While the runner's last ping of Docker failed, /healthz is 503 and says
// so, without the runner's sentence (or the engine's address).
func TestHealthzDockerUnreachable(t *testing.T) {
	s := newTestServer(t)
	s.Handler.jobs = unreachableJobs{Jobs: s.Handler.jobs, msg: "Docker is not reachable at unix:///secret/docker.sock — jobs will wait"}
	res, body := get(t, s, "/healthz")
	if res.StatusCode != 503 || healthOf(t, body).without() != (healthParts{Status: "unavailable", Database: "ok", Docker: "unreachable", Writes: "ok", Disk: "ok"}) {
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
		healthOf(t, body).without() != (healthParts{Status: "unavailable", Database: "unavailable", Docker: "unreachable", Writes: "ok", Disk: "ok"}) {
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
	if res.StatusCode != 503 || hl.without() != (healthParts{Status: "unavailable", Database: "ok", Docker: "ok", Writes: "failing", Disk: "ok"}) ||
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
	if res.StatusCode != 503 || hl.without() != (healthParts{Status: "unavailable", Database: "ok", Docker: "ok", Writes: "ok", Disk: "low"}) ||
		hl.DiskFree == nil || *hl.DiskFree == 0 || *hl.DiskFree > 8<<20 {
		t.Errorf("8 MiB disk, 16 MiB minimum: %d %s", res.StatusCode, body)
	}

	s, _ = newTmpfsServer(t, 8<<20, 1<<20)
	if res, body := get(t, s, "/healthz"); res.StatusCode != 200 || healthOf(t, body).Disk != "ok" {
		t.Errorf("8 MiB disk, 1 MiB minimum: %d %s", res.StatusCode, body)
	}
}

// deadEngine is an engine named name that never answers: nothing listens
// at its address.
func deadEngine(t testing.TB, name string) runner.EngineConfig {
	t.Helper()
	dc, err := runner.NewDockerClient("tcp://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	return runner.EngineConfig{Name: name, Client: dc, Slots: 1}
}

// liveServerWithDeadEngine is a live server whose jobs run on two Docker
// engines: "local", the test engine, and "builder2", which never answers.
// It skips the test without KOZMIC_TEST_DOCKER.
func liveServerWithDeadEngine(t testing.TB) *liveServer {
	t.Helper()
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run tests against a Docker engine")
	}
	return newLiveServerWith(t, deadEngine(t, "builder2"))
}

// signedInWithDeadEngine is liveServerWithDeadEngine with a browser signed
// in as octocat.
func signedInWithDeadEngine(t testing.TB) (*liveServer, *browser) {
	t.Helper()
	srv := liveServerWithDeadEngine(t)
	b := newBrowserAt(t, srv.url)
	b.signIn("/")
	return srv, b
}

// With one Docker engine of two not answering, /healthz stays 200 (jobs
// run on the other) with "docker":"degraded", and lists each engine by
// name with its status, jobs and slots, never its address.
func TestHealthzIsDegradedWhileOneEngineOfTwoIsDown(t *testing.T) {
	srv := liveServerWithDeadEngine(t)
	res, body := get(t, srv.handler, "/healthz")
	hl := healthOf(t, body)
	if res.StatusCode != 200 || hl.without() != (healthParts{Status: "ok", Database: "ok", Docker: "degraded", Writes: "ok", Disk: "ok"}) {
		t.Errorf("one engine of two down: %d %s", res.StatusCode, body)
	}
	want := []engineHealth{{Name: "local", Status: "ok", Busy: 0, Slots: 2}, {Name: "builder2", Status: "unreachable", Busy: 0, Slots: 1}}
	if !slices.Equal(hl.Engines, want) {
		t.Errorf("engines %+v, want %+v", hl.Engines, want)
	}
	for _, secret := range []string{"127.0.0.1", "tcp://", "unix://", testimage.Host()} {
		if strings.Contains(body, secret) {
			t.Errorf("healthz shows an engine's address (%q): %s", secret, body)
		}
	}
}

// With no Docker engine answering, of two, /healthz is 503 with
// "docker":"unreachable", each engine listed as unreachable by name alone.
func TestHealthzIsUnavailableWhileNoEngineAnswers(t *testing.T) {
	sock := "unix://" + filepath.Join(t.TempDir(), "secret-docker.sock")
	dc, err := runner.NewDockerClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServerWith(t, false, func(d *Deps) {
		jobs := runner.New(runner.Config{Engines: []runner.EngineConfig{deadEngine(t, "builder1"), {Name: "builder2", Client: dc, Slots: 3}}},
			d.DB, nil, nil, slog.New(slog.DiscardHandler))
		jobs.Start(context.Background())
		t.Cleanup(func() { jobs.Shutdown(context.Background()) })
		d.Jobs = jobs
	})
	res, body := get(t, s, "/healthz")
	hl := healthOf(t, body)
	if res.StatusCode != 503 || hl.without() != (healthParts{Status: "unavailable", Database: "ok", Docker: "unreachable", Writes: "ok", Disk: "ok"}) {
		t.Errorf("no engine answers: %d %s", res.StatusCode, body)
	}
	want := []engineHealth{{Name: "builder1", Status: "unreachable", Slots: 1}, {Name: "builder2", Status: "unreachable", Slots: 3}}
	if !slices.Equal(hl.Engines, want) {
		t.Errorf("engines %+v, want %+v", hl.Engines, want)
	}
	if strings.Contains(body, "127.0.0.1") || strings.Contains(body, "secret") {
		t.Errorf("healthz shows an engine's address: %s", body)
	}
}
