package runner

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testrepo"
	"kozmic/store"
)

const printEnv = `#!/bin/sh
echo "pwd=$(pwd)"
echo "readme=$(cat README)"
for v in CI KOZMIC KOZMIC_PROJECT KOZMIC_BUILD_NUMBER KOZMIC_BUILD_ID KOZMIC_JOB_ID KOZMIC_COMMIT_SHA KOZMIC_REF KOZMIC_BRANCH KOZMIC_PULL_REQUEST API_TOKEN; do
  eval "echo $v=\${$v-unset}"
done
`

func TestJobSuccessWithEnvironment(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"README": "hello from the repo"})
	p, _ := h.project(rp, store.Hook{Title: "env", BuildScript: printEnv})
	ctx := context.Background()
	if err := h.db.SetSecret(ctx, p.ID, store.Secret{Name: "API_TOKEN", Value: "tok-12345-secret"}); err != nil {
		t.Fatal(err)
	}
	sha := rp.Git("rev-parse", "HEAD")
	b, jobs := h.build(p, "refs/heads/main", sha)
	if got := h.waitBuild(b); got.Status != store.BuildSuccess {
		t.Fatalf("build %s; log:\n%s", got.Status, h.logOf(jobs[0].ID))
	}
	j, _ := h.db.JobByID(ctx, jobs[0].ID)
	if j.ExitCode == nil || *j.ExitCode != 0 || j.Cache != store.CacheNone || j.ContainerID == "" {
		t.Errorf("job = %+v", j)
	}
	log := h.logOf(j.ID)
	for _, want := range []string{
		"pwd=/kozmic/src", "readme=hello from the repo", "CI=true", "KOZMIC=true",
		"KOZMIC_PROJECT=" + p.FullName, "KOZMIC_BUILD_NUMBER=1", "KOZMIC_JOB_ID=" + itoa(j.ID),
		"KOZMIC_BUILD_ID=" + itoa(b.ID), "KOZMIC_COMMIT_SHA=" + sha, "KOZMIC_REF=refs/heads/main",
		"KOZMIC_BRANCH=main", "KOZMIC_PULL_REQUEST=unset", "API_TOKEN=********",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "tok-12345-secret") {
		t.Error("the secret's value is in the log")
	}

	// A pull request from a fork: its number, and no secrets.
	fork, forkJobs, err := h.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/pull/7/head", SHA: sha, FromFork: true})
	if err != nil {
		t.Fatal(err)
	}
	h.r.Enqueued()
	h.waitBuild(fork)
	log = h.logOf(forkJobs[0].ID)
	for _, want := range []string{"KOZMIC_PULL_REQUEST=7", "API_TOKEN=unset", "KOZMIC_BRANCH=refs/pull/7/head"} {
		if !strings.Contains(log, want) {
			t.Errorf("fork log lacks %q:\n%s", want, log)
		}
	}
	// The notifier heard every step: running, then the result, for both builds.
	var statuses []string
	for _, ch := range h.notes.all() {
		if ch.Job.ID == jobs[0].ID {
			statuses = append(statuses, string(ch.Job.Status)+"/"+string(ch.Build.Status))
		}
	}
	if strings.Join(statuses, " ") != "running/pending success/success" {
		t.Errorf("notifications = %v", statuses)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestJobFailureAndMissingImage(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp,
		store.Hook{Title: "fails", BuildScript: "#!/bin/sh\necho about to fail\nexit 3\n"},
		store.Hook{Title: "no-image", DockerImage: "127.0.0.1:1/kozmic-test/absent:1", BuildScript: "#!/bin/sh\necho never\n"})
	b, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	if got := h.waitBuild(b); got.Status != store.BuildFailure {
		t.Errorf("build = %s, want failure (failure beats error)", got.Status)
	}
	fails, _ := h.db.JobByID(context.Background(), jobs[0].ID)
	if fails.Status != store.JobFailure || fails.ExitCode == nil || *fails.ExitCode != 3 {
		t.Errorf("failing job = %s exit %v", fails.Status, fails.ExitCode)
	}
	if log := h.logOf(fails.ID); !strings.Contains(log, "about to fail") || !strings.Contains(log, "exited with 3") {
		t.Errorf("failing job log:\n%s", log)
	}
	missing, _ := h.db.JobByID(context.Background(), jobs[1].ID)
	if missing.Status != store.JobError || missing.ExitCode != nil || !strings.Contains(missing.Error, "127.0.0.1:1/kozmic-test/absent:1") {
		t.Errorf("missing image job = %s, exit %v, error %q", missing.Status, missing.ExitCode, missing.Error)
	}
	if log := h.logOf(missing.ID); !strings.Contains(log, "could not be pulled and is not on this Docker engine") || strings.Contains(log, "never") {
		t.Errorf("missing image log:\n%s", log)
	}
}

const installScript = `#!/bin/sh
echo installing deps
cat deps.txt 2>/dev/null || echo no deps
echo done > /installed
echo scratch > /kozmic/scratch
`

const checkInstalled = `#!/bin/sh
test -f /installed || { echo install missing; exit 1; }
test ! -e /kozmic/scratch || { echo /kozmic was cached; exit 1; }
echo build ok
`

func TestInstallCache(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"deps.txt": "lib-a 1.0\n", "main.c": "v1"})
	p, hooks := h.project(rp, store.Hook{Title: "cached", InstallScript: installScript, BuildScript: checkInstalled,
		TrackedFiles: []string{"deps.txt", "vendor"}})
	run := func(sha string) store.Job { return h.runOK(p, sha) }
	first := run(rp.Git("rev-parse", "HEAD"))
	if first.Cache != store.CacheMiss || !strings.Contains(h.logOf(first.ID), "installing deps") {
		t.Errorf("first build: cache %q, log:\n%s", first.Cache, h.logOf(first.ID))
	}
	if _, err := h.dc.InspectImage(h.r.cacheImage(first.CacheID, p.ID, store.CacheScopeProject)); err != nil {
		t.Errorf("cache image missing: %v", err)
	}

	// A commit that leaves the tracked files alone reuses the image.
	second := run(rp.Commit(map[string]string{"main.c": "v2"}, nil))
	if second.Cache != store.CacheHit || second.CacheID != first.CacheID {
		t.Errorf("untouched tracked files: cache %q id %s, want hit %s", second.Cache, second.CacheID, first.CacheID)
	}
	if log := h.logOf(second.ID); !strings.Contains(log, SkippedInstall) || strings.Contains(log, "installing deps") {
		t.Errorf("cache hit log:\n%s", log)
	}

	// Changing, adding under a tracked directory, and removing all miss.
	ids := map[string]bool{first.CacheID: true}
	for name, sha := range map[string]func() string{
		"changed file": func() string { return rp.Commit(map[string]string{"deps.txt": "lib-a 2.0\n"}, nil) },
		"new file in a tracked directory": func() string {
			return rp.Commit(map[string]string{"vendor/lib.txt": "vendored"}, nil)
		},
		"removed file": func() string { return rp.Commit(nil, []string{"deps.txt"}) },
	} {
		j := run(sha())
		if j.Cache != store.CacheMiss || ids[j.CacheID] {
			t.Errorf("%s: cache %q id %.12s seen before: %v", name, j.Cache, j.CacheID, ids[j.CacheID])
		}
		ids[j.CacheID] = true
	}

	// Editing the install script misses too.
	hk := hooks[0]
	hk.InstallScript += "echo one more step\n"
	if _, err := h.db.UpdateHook(context.Background(), hk); err != nil {
		t.Fatal(err)
	}
	if j := run(rp.Commit(map[string]string{"main.c": "v3"}, nil)); j.Cache != store.CacheMiss || ids[j.CacheID] {
		t.Errorf("edited install script: cache %q", j.Cache)
	}
	t.Cleanup(func() { removeCacheImages(t, h, p.ID) })
}

func TestFailingInstallScriptFailsTheJob(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"deps.txt": "x"})
	p, _ := h.project(rp, store.Hook{Title: "bad-install", InstallScript: "#!/bin/sh\necho broken install\nexit 4\n",
		BuildScript: "#!/bin/sh\necho build ran\n", TrackedFiles: []string{"deps.txt"}})
	_, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	j := h.waitJob(jobs[0].ID, finished)
	if j.Status != store.JobFailure || j.ExitCode == nil || *j.ExitCode != 4 || j.Cache != store.CacheMiss {
		t.Errorf("job = %s exit %v cache %q", j.Status, j.ExitCode, j.Cache)
	}
	if log := h.logOf(j.ID); !strings.Contains(log, "broken install") || strings.Contains(log, "build ran") {
		t.Errorf("log:\n%s", log)
	}
	if _, err := h.dc.InspectImage(h.r.cacheImage(j.CacheID, p.ID, store.CacheScopeProject)); err == nil {
		t.Error("a failed install step was cached")
	}
}

// removeCacheImages removes the harness's cache images of a project (0: of
// all its projects). Only this instance's: other packages and worktrees test
// on the same engine, with the same project IDs.
func removeCacheImages(t testing.TB, h *harness, projectID int64) {
	imgs, _ := h.r.local().cacheImages(context.Background(), projectID)
	for _, img := range imgs {
		h.dc.RemoveImageExtended(img.ID, docker.RemoveImageOptions{Force: true})
	}
}

// cacheImages is the set of cache IDs of the harness's images of a project.
func cacheImages(t testing.TB, h *harness, projectID int64) map[string]bool {
	t.Helper()
	imgs, err := h.r.local().cacheImages(context.Background(), projectID)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, img := range imgs {
		ids[img.Labels[LabelCache]] = true
	}
	return ids
}

func TestCacheLimitDropsLeastRecentlyUsed(t *testing.T) {
	h := newHarness(t, Config{CachedImagesLimit: 2})
	rp := testrepo.New(t, map[string]string{"deps.txt": "v1"})
	p, _ := h.project(rp, store.Hook{Title: "c", InstallScript: "#!/bin/sh\ntrue\n", BuildScript: "#!/bin/sh\ntrue\n",
		TrackedFiles: []string{"deps.txt"}})
	t.Cleanup(func() { removeCacheImages(t, h, p.ID) })
	run := func(sha string) store.Job { return h.runOK(p, sha) }
	v1 := run(rp.Git("rev-parse", "HEAD"))
	v2 := run(rp.Commit(map[string]string{"deps.txt": "v2"}, nil))
	// Using v1 again makes v2 the least recently used.
	if again := run(rp.Commit(map[string]string{"deps.txt": "v1"}, nil)); again.Cache != store.CacheHit {
		t.Fatalf("back to v1: cache %q, want hit", again.Cache)
	}
	v3 := run(rp.Commit(map[string]string{"deps.txt": "v3"}, nil))
	got := cacheImages(t, h, p.ID)
	if len(got) != 2 || !got[v1.CacheID] || !got[v3.CacheID] || got[v2.CacheID] {
		t.Errorf("cache images = %v; want v1 %.8s and v3 %.8s, not v2 %.8s", got, v1.CacheID, v3.CacheID, v2.CacheID)
	}
	if !strings.Contains(h.logOf(v3.ID), "least recently used") {
		t.Errorf("pruning not reported in the log:\n%s", h.logOf(v3.ID))
	}
}

// An install image made again after its first one was evicted is not
// evicted at once for its id's old use: its job runs from it.
func TestCacheLimitKeepsTheImageTheJobJustMade(t *testing.T) {
	h := newHarness(t, Config{CachedImagesLimit: 1})
	rp := testrepo.New(t, map[string]string{"deps.txt": "v1"})
	p, _ := h.project(rp, store.Hook{Title: "c", InstallScript: "#!/bin/sh\ntouch /installed\n", BuildScript: checkInstalled,
		TrackedFiles: []string{"deps.txt"}})
	t.Cleanup(func() { removeCacheImages(t, h, p.ID) })
	v1 := h.runOK(p, rp.Git("rev-parse", "HEAD"))
	h.runOK(p, rp.Commit(map[string]string{"deps.txt": "v2"}, nil)) // evicts v1's image
	again := h.runOK(p, rp.Commit(map[string]string{"deps.txt": "v1"}, nil))
	if again.Cache != store.CacheMiss || again.CacheID != v1.CacheID {
		t.Errorf("back to v1: cache %q id %.12s, want a miss of %.12s", again.Cache, again.CacheID, v1.CacheID)
	}
	if got := cacheImages(t, h, p.ID); len(got) != 1 || !got[v1.CacheID] {
		t.Errorf("cache images = %v, want v1's alone", got)
	}
}

// A script without a #! line cannot be executed; the log must say what to
// add, for the build and for the install script, and not for a script that
// has one and fails on its own.
func TestExecFormatErrorExplainsShebang(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"README": "x"})
	p, _ := h.project(rp,
		store.Hook{Title: "no-shebang-build", BuildScript: "echo hello\n"},
		store.Hook{Title: "no-shebang-install", InstallScript: "echo deps\n", BuildScript: "#!/bin/sh\necho never\n"},
		store.Hook{Title: "shebang", BuildScript: "#!/bin/sh\necho exec format error\nexit 1\n"})
	b, jobs := h.build(p, "refs/heads/main", rp.Git("rev-parse", "HEAD"))
	h.waitBuild(b)
	for i, want := range []string{fmt.Sprintf(NoShebangMessage, "build"), fmt.Sprintf(NoShebangMessage, "install"), ""} {
		j, err := h.db.JobByID(context.Background(), jobs[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		log := h.logOf(j.ID)
		if j.Status != store.JobFailure {
			t.Errorf("job %q = %s, want failure; log:\n%s", j.HookTitle, j.Status, log)
		}
		if want == "" {
			if strings.Contains(log, "#! line") {
				t.Errorf("job %q has a #! line, but its log says it needs one:\n%s", j.HookTitle, log)
			}
		} else if !strings.Contains(log, want) {
			t.Errorf("job %q log lacks %q:\n%s", j.HookTitle, want, log)
		}
	}
}
