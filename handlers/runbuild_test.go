package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"kozmic/store"
	"kozmic/views"
)

// runBuildProject is a git project over a fresh repository, with ann, an
// admin, signed in as its owner, and the hooks titled.
func runBuildProject(t *testing.T, s *testServer, titles ...string) (store.Project, *browser) {
	t.Helper()
	ctx := context.Background()
	ann := localAdmin(t, s, "ann", "ann's password")
	a := newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	repo, _ := gitRepo(t, t.TempDir(), false)
	p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "team/app", GitURL: repo,
		WebhookSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range titles {
		if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: title, DockerImage: "busybox", BuildScript: "#!/bin/sh\n"}); err != nil {
			t.Fatal(err)
		}
	}
	return p, a
}

// finishJobs runs every enqueued job to success as a worker would, and
// waits until the clock has passed their start, so that a hook saved
// afterwards is edited since its job ran.
func finishJobs(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	var started time.Time
	for {
		ch, ok, err := db.ClaimJob(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		started = ch.Job.StartedAt
		if _, err := db.UpdateJob(ctx, ch.Job.ID, store.JobUpdate{Status: store.JobSuccess, ExitCode: new(0)}); err != nil {
			t.Fatal(err)
		}
	}
	for !time.Now().Truncate(time.Millisecond).After(started) {
		time.Sleep(time.Millisecond)
	}
}

// jobsOf is "title#attempt status" for every attempt of build n's jobs.
func jobsOf(t *testing.T, db *store.DB, p store.Project, n int) []string {
	t.Helper()
	ctx := context.Background()
	b, err := db.BuildByNumber(ctx, p.ID, n)
	if err != nil {
		t.Fatal(err)
	}
	js, err := db.Jobs(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, j := range js {
		out = append(out, fmt.Sprintf("%s#%d %s", j.HookTitle, j.Attempt, j.Status))
	}
	return out
}

// runMain submits the Run build form for main and returns where it leads.
func runMain(t *testing.T, a *browser, p store.Project, form url.Values) string {
	t.Helper()
	form.Set("ref", "main")
	res, page := a.do("POST", fmt.Sprintf("/projects/%d/builds", p.ID), form)
	if res.StatusCode != 303 {
		t.Fatalf("Run build of main: %d\n%s", res.StatusCode, page)
	}
	return res.Header.Get("Location")
}

func TestRunBuildOfBuiltCommitAddsJobsForNewHooks(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	p, a := runBuildProject(t, s, "test")
	buildURL := fmt.Sprintf("/projects/%d/builds/1", p.ID)
	if got := runMain(t, a, p, url.Values{}); got != buildURL {
		t.Fatalf("first Run build leads to %q", got)
	}
	finishJobs(t, s.db)

	res, _ := a.do("POST", fmt.Sprintf("/projects/%d/hooks", p.ID), url.Values{"title": {"lint"}, "image": {"busybox"},
		"build": {"#!/bin/sh\necho lint\n"}})
	if res.StatusCode != 303 {
		t.Fatalf("add the hook lint: %d", res.StatusCode)
	}
	woken := s.jobs.n.Load()
	if got := runMain(t, a, p, url.Values{}); got != buildURL+"?existing&added=1" {
		t.Errorf("Run build after adding a hook leads to %q, want the same build with one job added", got)
	}
	if got, want := strings.Join(jobsOf(t, s.db, p, 1), ", "), "lint#1 enqueued, test#1 success"; got != want {
		t.Errorf("jobs of build 1: %s, want %s", got, want)
	}
	if s.jobs.n.Load() != woken+1 {
		t.Error("the runner was not woken for the added job")
	}
	if b, _ := s.db.BuildByNumber(ctx, p.ID, 1); b.Status.Finished() || !b.FinishedAt.IsZero() {
		t.Errorf("build 1 with a job waiting is %s, finished at %v", b.Status, b.FinishedAt)
	}
	if _, err := s.db.BuildByNumber(ctx, p.ID, 2); err == nil {
		t.Error("a second build of the same commit was made")
	}
	_, page := a.do("GET", buildURL+"?existing&added=1", nil)
	doc := parse(t, page)
	if f := textOf(doc.Find("main > p.flash-ok")); !strings.HasPrefix(f, "This commit was built before") || !strings.Contains(f, "Added 1 job for hooks it had not run.") {
		t.Errorf("flash %q does not say a job was added", f)
	}
	if !strings.Contains(doc.Find("#"+views.JobsTableID).Text(), "lint") {
		t.Error("the build page does not list the added job")
	}

	// Once every hook has its job, running it again adds nothing.
	if got := runMain(t, a, p, url.Values{}); got != buildURL+"?existing" {
		t.Errorf("Run build with no new hook leads to %q", got)
	}
	if n := len(jobsOf(t, s.db, p, 1)); n != 2 {
		t.Errorf("build 1 has %d jobs after a Run build with no new hook, want 2", n)
	}
}

func TestRunBuildOfBuiltCommitRerunsEditedHooksOnlyWhenAsked(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	p, a := runBuildProject(t, s, "lint", "test")
	buildURL := fmt.Sprintf("/projects/%d/builds/1", p.ID)
	runMain(t, a, p, url.Values{})
	finishJobs(t, s.db)
	hooks, err := s.db.Hooks(ctx, p.ID)
	if err != nil || len(hooks) != 2 || hooks[1].Title != "test" {
		t.Fatalf("hooks %v, %v", hooks, err)
	}
	res, _ := a.do("POST", fmt.Sprintf("/projects/%d/hooks/%d", p.ID, hooks[1].ID), url.Values{"title": {"test"}, "image": {"busybox"},
		"build": {"#!/bin/sh\necho fixed\n"}})
	if res.StatusCode != 303 {
		t.Fatalf("edit the hook test: %d", res.StatusCode)
	}

	// Not asked: nothing runs, and the page says what was left.
	if got := runMain(t, a, p, url.Values{}); got != buildURL+"?existing&edited=1" {
		t.Errorf("Run build without re-running edited hooks leads to %q", got)
	}
	if got, want := strings.Join(jobsOf(t, s.db, p, 1), ", "), "lint#1 success, test#1 success"; got != want {
		t.Errorf("jobs without asking: %s, want %s", got, want)
	}
	_, page := a.do("GET", buildURL+"?existing&edited=1", nil)
	if f := textOf(parse(t, page).Find("main > p.flash-ok")); !strings.Contains(f, "1 hook edited since its job ran was not re-run") {
		t.Errorf("flash %q does not say an edited hook was left", f)
	}

	// Asked: only the edited hook gets a new attempt, in the same build.
	if got := runMain(t, a, p, url.Values{"rerun_edited": {"1"}}); got != buildURL+"?existing&rerun=1" {
		t.Errorf("Run build re-running edited hooks leads to %q", got)
	}
	if got, want := strings.Join(jobsOf(t, s.db, p, 1), ", "), "lint#1 success, test#1 success, test#2 enqueued"; got != want {
		t.Errorf("jobs when asked: %s, want %s", got, want)
	}
	// Its new attempt has not run yet and will run the hook as it is now: asking again adds none.
	if got := runMain(t, a, p, url.Values{"rerun_edited": {"1"}}); got != buildURL+"?existing" {
		t.Errorf("Run build while the re-run waits leads to %q", got)
	}
	if n := len(jobsOf(t, s.db, p, 1)); n != 3 {
		t.Errorf("build 1 has %d attempts after asking twice, want 3", n)
	}
}

func TestWebhookRedeliveryAddsNoJobsForNewHooks(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	p, _ := webhookProjects(t, s.db)
	push := readFixture(t, "push_with-new-branch.json")
	if code, out := deliver(t, s, p.ID, "push", push, testSecret, "", "first"); code != 201 {
		t.Fatalf("push: %d %v", code, out)
	}
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "lint", DockerImage: "busybox", BuildScript: "#!/bin/sh\n"}); err != nil {
		t.Fatal(err)
	}
	// GitHub's redelivery, and another delivery of the same commit.
	for _, delivery := range []string{"first", "second"} {
		if code, out := deliver(t, s, p.ID, "push", push, testSecret, "", delivery); code != 200 {
			t.Errorf("delivery %s again: %d %v", delivery, code, out)
		}
	}
	if got, want := strings.Join(jobsOf(t, s.db, p, 1), ", "), "test#1 enqueued"; got != want {
		t.Errorf("jobs after the redeliveries: %s, want %s", got, want)
	}
	if n := rows(t, s.db, p.ID); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}
}

func TestSavingAHookOffersRunBuild(t *testing.T) {
	s := newLocalTestServer(t)
	p, a := runBuildProject(t, s)
	settingsURL := fmt.Sprintf("/projects/%d/settings", p.ID)
	_, page := a.do("GET", settingsURL, nil)
	if parse(t, page).Find("form#"+views.RunBuildID).Length() != 0 {
		t.Error("the settings of a project without hooks offer Run build")
	}
	res, _ := a.do("POST", fmt.Sprintf("/projects/%d/hooks", p.ID), url.Values{"title": {"test"}, "image": {"busybox"},
		"build": {"#!/bin/sh\necho hello\n"}})
	if loc := res.Header.Get("Location"); res.StatusCode != 303 || loc != settingsURL+"?flash=hook-saved" {
		t.Fatalf("save a hook: %d %q", res.StatusCode, loc)
	}
	_, page = a.do("GET", settingsURL+"?flash=hook-saved", nil)
	doc := parse(t, page)
	if f := textOf(doc.Find("main > p.flash-ok")); !strings.HasPrefix(f, "Hook saved. Run a build below") {
		t.Errorf("flash %q does not point to Run build", f)
	}
	form := doc.Find("form#" + views.RunBuildID)
	checkForm(t, "settings run build", form, fmt.Sprintf("/projects/%d/builds", p.ID), "Run build")
	if form.Find(`input[name="ref"]`).Length() != 1 || form.Find(`input[type="checkbox"][name="rerun_edited"]`).Length() != 1 {
		t.Errorf("the Run build form on settings lacks the ref or the re-run box:\n%s", textOf(form))
	}
	// The form works from there, and then names the branch just built.
	if got := runMain(t, a, p, url.Values{}); got != fmt.Sprintf("/projects/%d/builds/1", p.ID) {
		t.Errorf("Run build from settings leads to %q", got)
	}
	_, page = a.do("GET", settingsURL, nil)
	if got := parse(t, page).Find("form#"+views.RunBuildID+` input[name="ref"]`).AttrOr("value", ""); got != "main" {
		t.Errorf("the Run build form on settings names %q, want main, the branch of the newest build", got)
	}
}

// A refused Run build renders its form where the form posted to; that
// address, reloaded or copied, leads a member to the project's page rather
// than to a 404, and still tells nobody else of the project.
func TestFailedRunBuildLeavesAReloadableURL(t *testing.T) {
	s := newLocalTestServer(t)
	p, a := runBuildProject(t, s, "test")
	path := fmt.Sprintf("/projects/%d/builds", p.ID)
	res, page := a.do("POST", path, url.Values{"ref": {"no-such-branch"}})
	if res.StatusCode != 422 || !strings.Contains(parse(t, page).Find(`[role="alert"]`).Text(), "no branch, tag or commit no-such-branch") {
		t.Fatalf("refused Run build: %d\n%s", res.StatusCode, page)
	}
	reload, _ := a.do("GET", res.Request.URL.Path, nil)
	if loc := reload.Header.Get("Location"); reload.StatusCode != http.StatusSeeOther || loc != fmt.Sprintf("/projects/%d", p.ID) {
		t.Fatalf("GET %s: %d to %q, want 303 to the project", res.Request.URL.Path, reload.StatusCode, loc)
	}
	res, page = a.do("GET", reload.Header.Get("Location"), nil)
	if res.StatusCode != 200 || parse(t, page).Find("#"+views.RunBuildID).Length() != 1 {
		t.Errorf("the project page after the reload: %d", res.StatusCode)
	}

	localUser(t, s, "bob", "bob's password")
	b := newBrowser(t, s)
	login(b, "bob", "bob's password", "")
	if res, _ := b.do("GET", path, nil); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s by a stranger: %d, want 404", path, res.StatusCode)
	}
}
