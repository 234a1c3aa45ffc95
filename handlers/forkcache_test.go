package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

// The attack of issue 12: a pull request from a fork changes what the
// install step runs (here install.sh, which the hook's install script calls
// and which is not a tracked file), and its install writes a marker into
// the image. A later push of main, with the same install script and the same
// tracked files, must run its own install step and not see the marker. Both
// builds arrive as signed GitHub webhooks and run on the Docker engine.
func TestForkInstallNeverReachesTrustedCache(t *testing.T) {
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run jobs on a Docker engine")
	}
	ctx := context.Background()
	srv := newLiveServer(t)
	b := newBrowserAt(t, srv.url)
	if res := b.signIn("/"); res.StatusCode != 303 {
		t.Fatalf("sign in: %d", res.StatusCode)
	}
	repo := testrepo.New(t, map[string]string{"deps.txt": "lib 1.0\n", "install.sh": "echo installing lib 1.0\n"})
	mainSHA := repo.Git("rev-parse", "HEAD")
	forkSHA := repo.Commit(map[string]string{"install.sh": "echo installing lib 1.0\necho trojan > /marker\n"}, nil)
	p, err := srv.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGit,
		FullName: "lanternfish/harbor-lights", GitURL: repo.Path, WebhookSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.jobs.ClearCache(ctx, p.ID) })
	if _, err := srv.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: testimage.Name,
		InstallScript: "#!/bin/sh\nsh install.sh\n", TrackedFiles: []string{"deps.txt"},
		BuildScript: "#!/bin/sh\nif [ -e /marker ]; then echo \"marker: $(cat /marker)\"; else echo 'marker: absent'; fi\n"}); err != nil {
		t.Fatal(err)
	}

	// GitHub's pull request, opened from the fork mallory/harbor-lights.
	var pr map[string]any
	if err := json.Unmarshal(readFixture(t, "pull_request_opened.json"), &pr); err != nil {
		t.Fatal(err)
	}
	head := pr["pull_request"].(map[string]any)["head"].(map[string]any)
	head["sha"] = forkSHA
	fork := head["repo"].(map[string]any)
	fork["id"], fork["full_name"], fork["name"] = 999001, "mallory/harbor-lights", "harbor-lights"
	fork["owner"].(map[string]any)["login"] = "mallory"
	body, _ := json.Marshal(pr)
	forkJob := deliverAndWait(t, srv, p, "pull_request", body, "fork-1")
	push := fmt.Appendf(nil, `{"ref":"refs/heads/main","after":%q,"head_commit":{"message":"Bump","author":{"name":"Ann"}}}`, mainSHA)
	mainJob := deliverAndWait(t, srv, p, "push", push, "push-1")

	forkLog, mainLog := logText(t, srv.db, forkJob.ID), logText(t, srv.db, mainJob.ID)
	t.Logf("fork build: cache %s in %q, %q; main build: cache %s in %q, %q", forkJob.Cache, forkJob.CacheScope,
		lineWith(forkLog, "marker: "), mainJob.Cache, mainJob.CacheScope, lineWith(mainLog, "marker: "))
	if forkJob.Cache != store.CacheMiss || !strings.Contains(forkLog, "marker: trojan") {
		t.Fatalf("the fork's build did not run its install (cache %q); log:\n%s", forkJob.Cache, forkLog)
	}
	if mainJob.Cache != store.CacheMiss || !strings.Contains(mainLog, "Running the install script") || strings.Contains(mainLog, runner.SkippedInstall) {
		t.Errorf("main's build did not run its own install step (cache %q); log:\n%s", mainJob.Cache, mainLog)
	}
	if !strings.Contains(mainLog, "marker: absent") || strings.Contains(mainLog, "trojan") {
		t.Errorf("main's build sees the fork's marker; log:\n%s", mainLog)
	}
	if forkJob.CacheID != mainJob.CacheID {
		t.Errorf("cache ids %.12s and %.12s differ: the same install inputs should have met", forkJob.CacheID, mainJob.CacheID)
	}

	// The job pages say whose cache each used.
	for _, tt := range []struct {
		job  store.Job
		want string
	}{
		{forkJob, "Install cache: fork scope mallory/harbor-lights (never used by trusted builds) · miss, install script ran"},
		{mainJob, "Install cache: project cache · miss, install script ran"},
	} {
		res, page := b.do("GET", fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, buildNumber(t, srv.db, tt.job), tt.job.ID), nil)
		if got := strings.TrimSpace(parse(t, page).Find("#" + views.JobCacheID).Text()); res.StatusCode != 200 || got != tt.want {
			t.Errorf("job %d page: %d, cache %q, want %q", tt.job.ID, res.StatusCode, got, tt.want)
		}
	}

	// One image in each scope; Clear install cache removes both.
	scopes := map[string]int{}
	imgs := cacheImagesOf(t, srv, p.ID)
	for _, img := range imgs {
		scopes[img.Labels[runner.LabelScope]]++
	}
	t.Logf("cache images by scope: %v", scopes)
	if len(imgs) != 2 || scopes["project"] != 1 || scopes["fork-id:999001"] != 1 {
		t.Errorf("cache images by scope = %v, want one of the project's and one of the fork's", scopes)
	}
	// Right after the jobs: their containers may still be on their way out,
	// holding the images for a moment, which ClearCache waits for.
	if res, _ := b.do("POST", fmt.Sprintf("/projects/%d/cache/clear", p.ID), url.Values{}); res.StatusCode != 303 {
		t.Errorf("clear install cache: %d", res.StatusCode)
	}
	if left := cacheImagesOf(t, srv, p.ID); len(left) != 0 {
		t.Errorf("%d cache images left after Clear install cache", len(left))
	}
}

// deliverAndWait delivers a signed webhook that makes a build with one job,
// and returns that job once it has finished.
func deliverAndWait(t *testing.T, srv *liveServer, p store.Project, event string, body []byte, delivery string) store.Job {
	t.Helper()
	code, answer := deliver(t, srv.handler, p.ID, event, body, testSecret, "", delivery)
	if code != 201 {
		t.Fatalf("%s webhook: %d %v", event, code, answer)
	}
	bd, err := srv.db.BuildByNumber(context.Background(), p.ID, int(answer["build"].(float64)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		jobs, err := srv.db.Jobs(context.Background(), bd.ID)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("jobs of build %d: %v, %v", bd.Number, jobs, err)
		}
		if jobs[0].Status.Finished() {
			return jobs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s build never finished; server log:\n%s", event, srv.logs)
		}
	}
}

func logText(t *testing.T, db *store.DB, jobID int64) string {
	t.Helper()
	b, err := db.ReadLog(context.Background(), jobID, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lineWith is the first line of log that contains s, for the test's report.
func lineWith(log, s string) string {
	for line := range strings.Lines(log) {
		if strings.Contains(line, s) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func buildNumber(t *testing.T, db *store.DB, j store.Job) int {
	t.Helper()
	bd, err := db.BuildByID(context.Background(), j.BuildID)
	if err != nil {
		t.Fatal(err)
	}
	return bd.Number
}

// cacheImagesOf lists the live server's install cache images of a project.
func cacheImagesOf(t *testing.T, srv *liveServer, projectID int64) []docker.APIImages {
	t.Helper()
	imgs, err := srv.dc.ListImages(docker.ListImagesOptions{Filters: map[string][]string{"label": {
		runner.LabelCache, runner.LabelInstance + "=" + srv.db.InstanceID(), fmt.Sprintf("%s=%d", runner.LabelProject, projectID)}}})
	if err != nil {
		t.Fatal(err)
	}
	return imgs
}

// installHookProject is a test server, octocat's browser and a project
// of octocat's with one hook that has an install script.
func installHookProject(t *testing.T) (*testServer, *browser, store.Project) {
	t.Helper()
	s := newTestServer(t)
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	if _, err := s.db.CreateHook(context.Background(), store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox",
		InstallScript: "#!/bin/sh\ntrue\n", BuildScript: "#!/bin/sh\ntrue\n"}); err != nil {
		t.Fatal(err)
	}
	return s, b, p
}

// A job's page says whose install cache the job used, and whether it hit.
func TestJobPageNamesItsInstallCacheScope(t *testing.T) {
	s, b, p := installHookProject(t)
	ctx := context.Background()
	for _, tt := range []struct {
		build store.NewBuild
		cache store.CacheResult
		want  string // "": no note
	}{
		{store.NewBuild{Ref: "refs/heads/main", SHA: strings.Repeat("a", 40)}, store.CacheHit,
			"Install cache: project cache · hit, install script skipped"},
		{store.NewBuild{Ref: "refs/pull/7/head", SHA: strings.Repeat("b", 40), FromFork: true, ForkRepo: "alice/repo", ForkRepoID: 77}, store.CacheMiss,
			"Install cache: fork scope alice/repo (never used by trusted builds) · miss, install script ran"},
		{store.NewBuild{Ref: "refs/pull/8/head", SHA: strings.Repeat("c", 40), FromFork: true}, store.CacheHit,
			"Install cache: fork scope refs/pull/8/head (never used by trusted builds) · hit, install script skipped"},
		{store.NewBuild{Ref: "refs/heads/dev", SHA: strings.Repeat("d", 40)}, store.CacheNone, ""}, // ended before its install step
		// A job from before scopes followed ids kept its fork's name in its scope.
		{store.NewBuild{Ref: "refs/pull/9/head", SHA: strings.Repeat("e", 40), FromFork: true, ForkRepo: "bob/repo"}, store.CacheHit,
			"Install cache: fork scope bob/repo (never used by trusted builds) · hit, install script skipped"},
	} {
		tt.build.ProjectID = p.ID
		bd, jobs, err := s.db.CreateBuild(ctx, tt.build)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning}); err != nil {
			t.Fatal(err)
		}
		u := store.JobUpdate{Status: store.JobSuccess, Cache: tt.cache}
		if tt.cache != store.CacheNone {
			u.CacheID, u.CacheScope = "c0ffee", bd.CacheScope()
			if bd.ForkRepo != "" && bd.ForkRepoID == 0 {
				u.CacheScope = store.CacheScope("fork:" + bd.ForkRepo)
			}
		}
		if _, err := s.db.UpdateJob(ctx, jobs[0].ID, u); err != nil {
			t.Fatal(err)
		}
		res, page := b.do("GET", fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, bd.Number, jobs[0].ID), nil)
		note := parse(t, page).Find("#" + views.JobCacheID)
		if res.StatusCode != 200 || strings.TrimSpace(note.Text()) != tt.want || (tt.want == "") != (note.Length() == 0) {
			t.Errorf("%s: %d, cache note %q (%d), want %q", tt.build.Ref, res.StatusCode, note.Text(), note.Length(), tt.want)
		}
	}
}

// A job's page names the Docker engine the job was placed on, beside its
// install cache's hit; a job never placed on one names none.
func TestJobPageNamesTheEngineTheJobRanOn(t *testing.T) {
	s, b, p := installHookProject(t)
	ctx := context.Background()
	for _, engine := range []string{"builder2", ""} {
		bd, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: newCacheID()[:40]})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning}); err != nil {
			t.Fatal(err)
		}
		if engine != "" {
			if err := s.db.PlaceJob(ctx, jobs[0].ID, engine); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobSuccess, Cache: store.CacheHit,
			CacheID: "c0ffee", CacheScope: store.CacheScopeProject}); err != nil {
			t.Fatal(err)
		}
		res, page := b.do("GET", fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, bd.Number, jobs[0].ID), nil)
		head := parse(t, page).Find("#" + views.JobHeadID)
		on, cache := head.Find("#"+views.JobEngineID), head.Find("#"+views.JobCacheID)
		switch {
		case res.StatusCode != 200:
			t.Errorf("engine %q: %d", engine, res.StatusCode)
		case engine != "" && (on.Length() != 1 || textOf(on) != "on engine "+engine):
			t.Errorf("placed on %s: the head says %q (%d)", engine, textOf(on), on.Length())
		case engine == "" && on.Length() != 0:
			t.Errorf("never placed: the head names an engine, %q", textOf(on))
		case textOf(cache) != "Install cache: project cache · hit, install script skipped":
			t.Errorf("engine %q: cache note %q", engine, textOf(cache))
		}
	}
}

// Real jobs on two Docker engines, one of which does not answer, run on
// the other: the second job's page names that engine beside its install
// cache's hit, and the admin page counts both jobs as started there.
func TestJobsOnTheEngineThatAnswersSayWhereTheyRanAndCount(t *testing.T) {
	srv, b := signedInWithDeadEngine(t)
	ctx := context.Background()
	makeAdmin(t, srv.db)
	repo := testrepo.New(t, map[string]string{"deps.txt": "lib 1.0\n", "README": "one\n"})
	first := repo.Git("rev-parse", "HEAD")
	second := repo.Commit(map[string]string{"README": "two\n"}, nil)
	p, err := srv.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGit, FullName: "octocat/placed",
		GitURL: repo.Path, WebhookSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.jobs.ClearCache(ctx, p.ID) })
	if _, err := srv.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: testimage.Name,
		InstallScript: "#!/bin/sh\necho installing\n", TrackedFiles: []string{"deps.txt"}, BuildScript: "#!/bin/sh\ncat README\n"}); err != nil {
		t.Fatal(err)
	}
	var jobs []store.Job
	for i, sha := range []string{first, second} {
		push := fmt.Appendf(nil, `{"ref":"refs/heads/main","after":%q,"head_commit":{"message":"m","author":{"name":"Ann"}}}`, sha)
		jobs = append(jobs, deliverAndWait(t, srv, p, "push", push, fmt.Sprintf("push-%d", i)))
	}
	for i, want := range []store.CacheResult{store.CacheMiss, store.CacheHit} {
		if j := jobs[i]; j.Status != store.JobSuccess || j.Engine != "local" || j.Cache != want {
			t.Fatalf("job %d: %s on %q, cache %q; want success on local, cache %q; log:\n%s", i+1, j.Status, j.Engine, j.Cache, want, logText(t, srv.db, j.ID))
		}
	}
	doc, _ := fetchPage(t, b, fmt.Sprintf("/projects/%d/builds/2/jobs/%d", p.ID, jobs[1].ID), 200)
	if on, cache := textOf(doc.Find("#"+views.JobEngineID)), textOf(doc.Find("#"+views.JobCacheID)); on != "on engine local" ||
		cache != "Install cache: project cache · hit, install script skipped" {
		t.Errorf("the second job's head: %q, %q", on, cache)
	}
	doc, _ = fetchPage(t, b, views.AdminPath, 200)
	if local, builder2 := factsOf(doc.Find("#"+views.AdminEngineID(0))), factsOf(doc.Find("#"+views.AdminEngineID(1))); local["Jobs since the start"] != "2 started, 0 failed" ||
		builder2["Jobs since the start"] != "0 started, 0 failed" {
		t.Errorf("jobs since the start: local %q, builder2 %q", local["Jobs since the start"], builder2["Jobs since the start"])
	}
}
