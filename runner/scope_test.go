package runner

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"kozmic/internal/testrepo"
	"kozmic/store"
)

// The install step records who ran it; who.txt is not a tracked file, so
// every build below has the same cache id, and only the scope keeps their
// images apart.
const (
	whoInstall = "#!/bin/sh\necho \"installed from $(cat who.txt)\" > /installed\n"
	whoBuild   = "#!/bin/sh\necho \"build sees: $(cat /installed)\"\n"
)

// forkBuild creates a build of pull request n from the fork repository
// repo whose id is repoID, as a webhook from GitHub would, and wakes the
// runner.
func (h *harness) forkBuild(p store.Project, n int, repoID int64, repo, sha string) (store.Build, []store.Job) {
	h.t.Helper()
	b, jobs, err := h.db.CreateBuild(context.Background(), store.NewBuild{ProjectID: p.ID,
		Ref: "refs/pull/" + strconv.Itoa(n) + "/head", SHA: sha, FromFork: true, ForkRepoID: repoID, ForkRepo: repo})
	if err != nil {
		h.t.Fatal(err)
	}
	h.r.Enqueued()
	return b, jobs
}

// imagesByScope counts the harness's cache images of a project by scope.
func imagesByScope(t testing.TB, h *harness, projectID int64) map[string]int {
	t.Helper()
	imgs, err := h.r.local().cacheImages(context.Background(), projectID)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, img := range imgs {
		n[img.Labels[LabelScope]]++
	}
	return n
}

func TestForkScopeServesOnlyBuildsOfTheSameFork(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"deps.txt": "lib 1\n", "who.txt": "main"})
	p, _ := h.project(rp, store.Hook{Title: "c", InstallScript: whoInstall, BuildScript: whoBuild, TrackedFiles: []string{"deps.txt"}})
	t.Cleanup(func() { removeCacheImages(t, h, p.ID) })
	main := rp.Git("rev-parse", "HEAD")
	eve1 := rp.Commit(map[string]string{"who.txt": "eve"}, nil)
	eve2 := rp.Commit(map[string]string{"who.txt": "eve again"}, nil)
	mallory := rp.Commit(map[string]string{"who.txt": "mallory"}, nil)

	wait := func(jobs []store.Job) (store.Job, string) {
		t.Helper()
		j := h.waitJob(jobs[0].ID, finished)
		if j.Status != store.JobSuccess {
			t.Fatalf("job %s; log:\n%s", j.Status, h.logOf(j.ID))
		}
		return j, h.logOf(j.ID)
	}
	check := func(name string, j store.Job, log string, cache store.CacheResult, scope store.CacheScope, sees string) {
		t.Helper()
		if j.Cache != cache || j.CacheScope != scope || !strings.Contains(log, "build sees: installed from "+sees+"\n") {
			t.Errorf("%s: cache %q in scope %q, want %q in %q, seeing %q; log:\n%s", name, j.Cache, j.CacheScope, cache, scope, sees, log)
		}
	}

	_, jobs := h.forkBuild(p, 1, 101, "eve/app", eve1)
	first, log := wait(jobs)
	check("eve's first build", first, log, store.CacheMiss, store.ForkCacheScope(101), "eve")
	if !strings.Contains(log, "Using the install cache of the fork eve/app, which trusted builds never use") {
		t.Errorf("the log does not say which cache the fork uses:\n%s", log)
	}
	_, jobs = h.forkBuild(p, 1, 101, "eve/app", eve2)
	j, log := wait(jobs)
	check("eve's second build", j, log, store.CacheHit, store.ForkCacheScope(101), "eve")
	_, jobs = h.forkBuild(p, 2, 202, "mallory/app", mallory)
	j, log = wait(jobs)
	check("mallory's build", j, log, store.CacheMiss, store.ForkCacheScope(202), "mallory")
	_, jobs = h.build(p, "refs/heads/main", main)
	j, log = wait(jobs)
	check("the trusted build", j, log, store.CacheMiss, store.CacheScopeProject, "main")
	if j.CacheID != first.CacheID {
		t.Errorf("cache ids %.12s and %.12s differ: the scopes were not put to the test", j.CacheID, first.CacheID)
	}

	want := map[string]int{"project": 1, "fork-id:101": 1, "fork-id:202": 1}
	if got := imagesByScope(t, h, p.ID); len(got) != len(want) || got["project"] != 1 || got["fork-id:101"] != 1 || got["fork-id:202"] != 1 {
		t.Errorf("cache images by scope = %v, want %v", got, want)
	}
}

// A fork's scope is its repository's id, not its full name: whoever takes
// over a freed account name and makes a repository of the same name gets a
// scope of their own, while the fork, renamed, keeps its images.
func TestForkScopeFollowsRepositoryIDNotName(t *testing.T) {
	h := newHarness(t, Config{})
	rp := testrepo.New(t, map[string]string{"deps.txt": "lib 1\n", "who.txt": "main"})
	p, _ := h.project(rp, store.Hook{Title: "c", InstallScript: whoInstall, BuildScript: whoBuild, TrackedFiles: []string{"deps.txt"}})
	t.Cleanup(func() { removeCacheImages(t, h, p.ID) })
	alice := rp.Commit(map[string]string{"who.txt": "alice"}, nil)
	heir := rp.Commit(map[string]string{"who.txt": "heir"}, nil)
	renamed := rp.Commit(map[string]string{"who.txt": "alice renamed"}, nil)

	for _, tt := range []struct {
		name   string
		n      int
		id     int64
		repo   string
		sha    string
		cache  store.CacheResult
		sees   string
		logged string
	}{
		{"alice's build", 1, 101, "alice/app", alice, store.CacheMiss, "alice", "alice/app"},
		{"the build of the name's new owner", 2, 303, "alice/app", heir, store.CacheMiss, "heir", "alice/app"},
		{"alice's build after a rename", 1, 101, "alice/app-old", renamed, store.CacheHit, "alice", "alice/app-old"},
	} {
		_, jobs := h.forkBuild(p, tt.n, tt.id, tt.repo, tt.sha)
		j := h.waitJob(jobs[0].ID, finished)
		log := h.logOf(j.ID)
		if j.Status != store.JobSuccess || j.Cache != tt.cache || j.CacheScope != store.ForkCacheScope(tt.id) ||
			!strings.Contains(log, "build sees: installed from "+tt.sees+"\n") ||
			!strings.Contains(log, "Using the install cache of the fork "+tt.logged+",") {
			t.Errorf("%s: %s, cache %q in scope %q, want %q in %q, seeing %q; log:\n%s",
				tt.name, j.Status, j.Cache, j.CacheScope, tt.cache, store.ForkCacheScope(tt.id), tt.sees, log)
		}
	}
	if got := imagesByScope(t, h, p.ID); len(got) != 2 || got["fork-id:101"] != 1 || got["fork-id:303"] != 1 {
		t.Errorf("cache images by scope = %v, want one of each repository id", got)
	}
}

// A project's forks have a cache image limit of their own: however many
// images their builds make, the trusted builds' images stay.
func TestForkImagesNeverEvictTrustedOnes(t *testing.T) {
	h := newHarness(t, Config{CachedImagesLimit: 1})
	rp := testrepo.New(t, map[string]string{"deps.txt": "v1", "who.txt": "main"})
	p, _ := h.project(rp, store.Hook{Title: "c", InstallScript: whoInstall, BuildScript: whoBuild, TrackedFiles: []string{"deps.txt"}})
	t.Cleanup(func() { removeCacheImages(t, h, p.ID) })
	main := h.runOK(p, rp.Git("rev-parse", "HEAD"))
	for i, deps := range []string{"v2", "v3"} {
		_, jobs := h.forkBuild(p, 5, 101, "eve/app", rp.Commit(map[string]string{"deps.txt": deps, "who.txt": "eve"}, nil))
		if j := h.waitJob(jobs[0].ID, finished); j.Status != store.JobSuccess || j.Cache != store.CacheMiss {
			t.Fatalf("fork build %d: %s, cache %q; log:\n%s", i, j.Status, j.Cache, h.logOf(j.ID))
		}
	}
	if got := imagesByScope(t, h, p.ID); got["project"] != 1 || got["fork-id:101"] != 1 {
		t.Errorf("cache images by scope = %v, want 1 of the project's and 1 of the fork's", got)
	}
	again := h.runOK(p, rp.Commit(map[string]string{"deps.txt": "v1", "who.txt": "main"}, nil))
	if again.Cache != store.CacheHit || again.CacheID != main.CacheID {
		t.Errorf("the trusted build after the forks' builds: cache %q, want a hit of its image %.12s", again.Cache, main.CacheID)
	}
}
