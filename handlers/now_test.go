package handlers

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/chromedp/chromedp"

	"kozmic/internal/paths"
	"kozmic/internal/testdb"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

// gitProject makes a private project of a git URL owned by owner, with
// its default branch main.
func gitProject(t *testing.T, db *store.DB, owner store.User, name, gitURL string) store.Project {
	t.Helper()
	p, err := db.CreateProject(context.Background(), store.NewProject{OwnerID: owner.ID, Source: store.SourceGit, FullName: name,
		GitURL: gitURL, DefaultBranch: "main", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// nowRows are the rows of the now panel in doc, as their text.
func nowRows(doc *goquery.Document) []string {
	var rows []string
	doc.Find("#" + views.NowID + " ul.now-jobs > li").Each(func(_ int, li *goquery.Selection) { rows = append(rows, textOf(li)) })
	return rows
}

// The now panel lists the running and waiting jobs of the viewer's
// projects, each waiting one with its place in the whole queue and what it
// waits for; another team's jobs are counted, never named. Without scripts
// GET /now leads to the dashboard; htmx gets the panel alone.
func TestNowPanelListsTheViewersJobsWithTheirPlaceAndNeverAnotherTeams(t *testing.T) {
	s := newLocalTestServer(t)
	ann, annB := signInLocal(t, s, "ann")
	bob, bobB := signInLocal(t, s, "bob")
	annP := gitProject(t, s.db, ann, "ann/app", "https://git.example.com/ann/app.git")
	bobP := gitProject(t, s.db, bob, "bob/secret-plans", "https://git.example.com/bob/secret-plans.git")

	doc, _ := fetchPage(t, annB, "/", 200)
	panel := doc.Find("#" + views.NowID)
	for k, v := range map[string]string{"hx-get": "/now", "hx-trigger": "every 3s", "hx-swap": "outerHTML"} {
		if got := attrOf(panel, k); got != v {
			t.Errorf("panel %s=%q, want %q", k, got, v)
		}
	}
	if got := textOf(panel.Find("p.muted")); got != "Nothing is running." || panel.Find("li").Length() != 0 ||
		textOf(panel.Find(".workers")) != "0 of 2 workers busy" {
		t.Errorf("idle panel: %q", textOf(panel))
	}

	// The queue: ann's #1 (then running), bob's #1, ann's #2.
	_, running := buildWithLog(t, s, annP, "refs/heads/main", "a1", "m", "", store.JobRunning)
	_, bobs := buildWithLog(t, s, bobP, "refs/heads/main", "b1", "m", "", store.JobEnqueued)
	_, waiting := buildWithLog(t, s, annP, "refs/heads/main", "a2", "m", "", store.JobEnqueued)

	doc, body := fetchPage(t, annB, "/", 200)
	want := []string{"running ann/app #1 test", "enqueued ann/app #2 test #2 in the queue · starting ·"}
	rows := nowRows(doc)
	if len(rows) != 2 || !strings.HasPrefix(rows[0], want[0]) || !strings.HasPrefix(rows[1], want[1]) {
		t.Errorf("ann's panel rows = %q, want them to start %q", rows, want)
	}
	li := doc.Find("#" + views.NowID + " ul.now-jobs > li")
	if a := li.Eq(0).Find("a.hook"); attrOf(a, "href") != paths.Job(annP.ID, 1, running.ID) {
		t.Errorf("the running job links to %q", attrOf(a, "href"))
	}
	if a := li.Eq(1).Find("a.hook"); attrOf(a, "href") != paths.Job(annP.ID, 2, waiting.ID) {
		t.Errorf("the waiting job links to %q", attrOf(a, "href"))
	}
	for i, el := range []*goquery.Selection{li.Eq(0).Find("time.elapsed"), li.Eq(1).Find("time.elapsed")} {
		if _, ticks := el.Attr("data-since"); !ticks || !strings.HasPrefix(attrOf(el, "datetime"), "PT") {
			t.Errorf("row %d's time does not tick: %q", i, attrOf(el, "data-since"))
		}
	}
	if got := textOf(doc.Find("#" + views.NowID + " .unlisted")); !strings.HasPrefix(got, "Not listed: 1 waiting") {
		t.Errorf("ann's note on bob's job: %q", got)
	}
	if strings.Contains(body, "secret-plans") || strings.Contains(body, paths.Job(bobP.ID, 1, bobs.ID)) {
		t.Error("ann's dashboard shows bob's project or job")
	}

	// Bob sees his own, first in the queue, and nothing of ann's.
	poll := fetchPoll(t, bobB, "/now", views.NowID)
	rows = nowRows(poll)
	if len(rows) != 1 || !strings.HasPrefix(rows[0], "enqueued bob/secret-plans #1 test #1 in the queue · starting") {
		t.Errorf("bob's panel rows = %q", rows)
	}
	if got := textOf(poll.Find(".unlisted")); !strings.HasPrefix(got, "Not listed: 1 running and 1 waiting") {
		t.Errorf("bob's note: %q", got)
	}
	if html, _ := poll.Html(); strings.Contains(html, "ann/app") {
		t.Error("bob's panel shows ann's project")
	}

	// While Docker does not answer, a waiting job says it waits for it.
	s.Handler.jobs = unreachableJobs{Jobs: s.Handler.jobs, msg: "Docker is not reachable"}
	if rows = nowRows(fetchPoll(t, annB, "/now", views.NowID)); len(rows) != 2 || !strings.Contains(rows[1], "#2 in the queue · waiting for Docker") {
		t.Errorf("rows while Docker is down = %q", rows)
	}

	// Without htmx, /now is the dashboard; signed out, the sign-in page.
	if res, _ := annB.do("GET", "/now", nil); res.StatusCode != 303 || res.Header.Get("Location") != "/" {
		t.Errorf("GET /now without htmx: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	anon := newBrowser(t, s)
	anon.header.Set("HX-Request", "true")
	if res, _ := anon.do("GET", "/now", nil); res.StatusCode != 303 || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Errorf("GET /now signed out: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
}

// Under each project on the dashboard: its default branch's newest build
// (status word, number, age) and its last ten results, oldest first, each a
// link to its build named by number, status word and branch; a project
// without builds says so.
func TestDashboardStripShowsTheLastTenResultsInOrderLinkingToTheirBuilds(t *testing.T) {
	s := newLocalTestServer(t)
	ann, b := signInLocal(t, s, "ann")
	p := gitProject(t, s.db, ann, "ann/app", "https://git.example.com/ann/app.git")
	idle := gitProject(t, s.db, ann, "ann/idle", "https://git.example.com/ann/idle.git")
	devOnly := gitProject(t, s.db, ann, "ann/dev-only", "https://git.example.com/ann/dev-only.git")
	buildWithLog(t, s, devOnly, "refs/heads/dev", "d1", "m", "", store.JobSuccess)
	statuses := []store.JobStatus{store.JobSuccess, store.JobFailure, store.JobError, store.JobSuccess}
	var builds []store.Build
	for i := range 12 {
		ref := "refs/heads/main"
		if i%4 == 3 {
			ref = "refs/heads/dev"
		}
		st := statuses[i%len(statuses)]
		if i == 11 {
			st = store.JobRunning
		}
		build, _ := buildWithLog(t, s, p, ref, fmt.Sprintf("%040x", i), "m", "", st)
		builds = append(builds, build)
	}
	doc, _ := fetchPage(t, b, "/", 200)
	for _, where := range []*goquery.Selection{doc.Find("#" + views.DashboardID), fetchPoll(t, b, "/", views.DashboardID).Find("#" + views.DashboardID)} {
		row := where.Find(fmt.Sprintf(`a[href="%s"]`, paths.Project(p.ID))).Closest("li")
		marks := row.Find(".trend ol.strip > li > a.mark")
		if marks.Length() != 10 {
			t.Fatalf("%d marks, want 10", marks.Length())
		}
		marks.Each(func(i int, a *goquery.Selection) {
			want := builds[i+2]
			word := views.BuildStatus(want.Status).Word
			label := fmt.Sprintf("#%d %s, %s", want.Number, word, want.Branch())
			if attrOf(a, "href") != paths.Build(p.ID, want.Number) || attrOf(a, "aria-label") != label || attrOf(a, "title") != label ||
				!a.HasClass(views.BuildStatus(want.Status).Class) {
				t.Errorf("mark %d = %s %q %q, want build %d: %q", i, attrOf(a, "href"), attrOf(a, "aria-label"), attrOf(a, "class"), want.Number, label)
			}
		})
		if got := attrOf(row.Find("ol.strip"), "aria-label"); got != "The last 10 builds, oldest first" {
			t.Errorf("strip label %q", got)
		}
		// The newest, #12, runs on dev: main's newest is #11.
		def := row.Find(".default-build")
		if got := textOf(def); got != "main error #11 just now" {
			t.Errorf("default branch build %q", got)
		}
		if a := def.Find("a"); attrOf(a, "href") != paths.Build(p.ID, 11) {
			t.Errorf("default build link %q", attrOf(a, "href"))
		}
		idleRow := where.Find(fmt.Sprintf(`a[href="%s"]`, paths.Project(idle.ID))).Closest("li")
		if got := textOf(idleRow.Find(".trend")); got != "No builds yet" || idleRow.Find(".strip").Length() != 0 {
			t.Errorf("a project without builds: %q", got)
		}
		devRow := where.Find(fmt.Sprintf(`a[href="%s"]`, paths.Project(devOnly.ID))).Closest("li")
		if got := textOf(devRow.Find(".default-build")); got != "main no builds yet" || devRow.Find(".strip a.mark").Length() != 1 {
			t.Errorf("a project with no build of its default branch: %q", got)
		}
	}
}

// A job that holds a worker is on the panel with that worker's number, the
// jobs behind it wait for a free worker, and once the jobs are done the
// panel is empty again: a real runner on Docker, its only worker held
// right after its claim.
func TestNowPanelShowsTheWorkerOfARunningJobUntilItEnds(t *testing.T) {
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run jobs on a Docker engine")
	}
	ctx := context.Background()
	db := testdb.Open(t)
	s, jobs, gate, runnerLog := gatedServer(t, db)
	ann, b := signInLocal(t, s, "ann")
	repo := testrepo.New(t, map[string]string{"README": "x"})
	p := gitProject(t, db, ann, "ann/held", repo.Path)
	if _, err := db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: testimage.Name, BuildScript: "#!/bin/sh\necho done\n"}); err != nil {
		t.Fatal(err)
	}
	first, _, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: repo.Git("rev-parse", "HEAD")})
	if err != nil {
		t.Fatal(err)
	}
	jobs.Enqueued()
	select {
	case <-gate.claimed:
	case <-time.After(90 * time.Second):
		t.Fatalf("no job was claimed; runner log:\n%s", runnerLog)
	}
	second, _, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: repo.Commit(map[string]string{"README": "y"}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	poll := fetchPoll(t, b, "/now", views.NowID)
	rows := nowRows(poll)
	if len(rows) != 2 || !strings.HasPrefix(rows[0], fmt.Sprintf("running ann/held #%d test worker 1 ·", first.Number)) ||
		!strings.HasPrefix(rows[1], fmt.Sprintf("enqueued ann/held #%d test #1 in the queue · waiting for a free worker ·", second.Number)) {
		t.Errorf("panel while the worker is held: %q", rows)
	}
	if got := textOf(poll.Find(".workers")); got != "1 of 1 workers busy" {
		t.Errorf("workers: %q", got)
	}

	close(gate.released)
	for deadline := time.Now().Add(90 * time.Second); ; {
		poll = fetchPoll(t, b, "/now", views.NowID)
		if len(nowRows(poll)) == 0 && textOf(poll.Find(".workers")) == "0 of 1 workers busy" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the panel still shows %q; runner log:\n%s", textOf(poll.Selection), runnerLog)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := textOf(poll.Find("p.muted")); got != "Nothing is running." {
		t.Errorf("the panel once the jobs are done: %q", got)
	}
	for _, n := range []int{first.Number, second.Number} {
		bs, _ := db.Builds(ctx, p.ID, store.BuildQuery{})
		for _, bl := range bs {
			if bl.Number == n && bl.Status != store.BuildSuccess {
				t.Errorf("build %d: %s; runner log:\n%s", n, bl.Status, runnerLog)
			}
		}
	}
}

// The now panel in Chromium, on a phone and on a desktop: with no script of
// the test's, it shows held jobs appear on both workers with one waiting,
// their times tick, and once they are let go it says nothing is running;
// under the project, the strip's marks lead to their builds; the page fits.
func TestBrowserNowPanelFollowsJobsAndTheStripLinksToBuilds(t *testing.T) {
	srv, ctx := signedInBrowser(t)
	bg := context.Background()
	octocat, err := srv.db.UserByID(bg, 1)
	if err != nil {
		t.Fatal(err)
	}
	repo := testrepo.New(t, map[string]string{"README": "x"})
	p := gitProject(t, srv.db, octocat, "octocat/hello-world", repo.Path)
	site := gitProject(t, srv.db, octocat, "octocat/website", t.TempDir())
	gitProject(t, srv.db, octocat, "octocat/new-idea", t.TempDir())
	for _, pr := range []store.Project{p, site} {
		if _, err := srv.db.CreateHook(bg, store.Hook{ProjectID: pr.ID, Title: "test", DockerImage: testimage.Name, BuildScript: testimage.HeldScript}); err != nil {
			t.Fatal(err)
		}
	}
	// Finished builds for the strips, made finished at once: nothing wakes
	// the runner meanwhile, so it leaves them alone.
	history := func(pr store.Project, results ...store.JobStatus) {
		for i, st := range results {
			ref := "refs/heads/main"
			if i%3 == 2 {
				ref = "refs/heads/feature/strip"
			}
			_, jobs, err := srv.db.CreateBuild(bg, store.NewBuild{ProjectID: pr.ID, Ref: ref, SHA: fmt.Sprintf("%040x", i+1), Message: "m"})
			if err != nil {
				t.Fatal(err)
			}
			srv.db.UpdateJob(bg, jobs[0].ID, store.JobUpdate{Status: store.JobRunning})
			srv.db.UpdateJob(bg, jobs[0].ID, store.JobUpdate{Status: st})
		}
	}
	ok, fail, bad := store.JobSuccess, store.JobFailure, store.JobError
	history(p, ok, ok, fail, ok, bad, ok, fail, ok, ok)
	history(site, ok, fail, ok)

	const panel = "#" + views.NowID
	round := 0
	for _, size := range []struct {
		name          string
		width, height int64
		opts          []chromedp.EmulateViewportOption
	}{{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}}, {"desktop", 1280, 800, nil}} {
		round++
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, size.opts...),
			chromedp.Navigate(srv.url+"/"),
			waitText(panel, func(s string) bool { return strings.Contains(s, "Nothing is running.") })); err != nil {
			t.Fatal(err)
		}
		// Three held jobs: two run, one waits. The page is not reloaded.
		var held []int64
		for i := range 3 {
			sha := repo.Commit(map[string]string{"README": fmt.Sprintf("%s %d", size.name, i)}, nil)
			_, jobs, err := srv.db.CreateBuild(bg, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: sha, Message: "Hold a worker"})
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, jobs[0].ID)
		}
		srv.jobs.Enqueued()
		if err := chromedp.Do(ctx, waitText(panel, func(s string) bool {
			return strings.Contains(s, "worker 1") && strings.Contains(s, "worker 2") &&
				strings.Contains(s, "#1 in the queue · waiting for a free worker") && strings.Contains(s, "2 of 2 workers busy")
		})); err != nil {
			t.Fatalf("%s: %v\nserver log:\n%s", size.name, err, srv.logs)
		}
		// A running job's time ticks between polls and across them.
		const firstTime = panel + " ul.now-jobs > li:first-child time.elapsed"
		start, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(firstTime)))
		if err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, waitText(firstTime, func(s string) bool { return s != start && s != "" })); err != nil {
			t.Fatalf("%s: the running job's time stays at %q: %v", size.name, start, err)
		}
		if bad, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(fitCheck, size.width))); err != nil || bad != "" {
			t.Errorf("the dashboard with jobs on a %s (%d px): %v\n%s", size.name, size.width, err, bad)
		}
		// Each status mark shows an icon of its own, not colour alone.
		icons, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#dashboard .strip a.mark")).map(a =>
			a.className.replace("mark ", "") + "=" + getComputedStyle(a, "::before").content)`))
		if err != nil || len(icons) == 0 {
			t.Fatalf("marks: %v", err)
		}
		seen := map[string]string{}
		for _, ic := range icons {
			class, icon, _ := strings.Cut(ic, "=")
			if icon == "none" || icon == "" || seen[class] != "" && seen[class] != icon {
				t.Errorf("mark %s shows %q", class, icon)
			}
			seen[class] = icon
		}
		if seen["status-success"] == seen["status-failure"] || seen["status-success"] == seen["status-running"] {
			t.Errorf("statuses share an icon: %v", seen)
		}
		shot := "dashboard-now.png"
		if size.name == "phone" {
			shot = "phone-dashboard-now.png"
		}
		screenshot(t, ctx, shot)

		// Let them go: the running two, then the one that waited.
		for _, id := range held {
			if err := testimage.Release(srv.dc, runner.LabelJob+"="+strconv.FormatInt(id, 10), runner.LabelInstance+"="+srv.db.InstanceID()); err != nil {
				t.Fatal(err)
			}
		}
		if err := chromedp.Do(ctx, waitText(panel, func(s string) bool {
			return strings.Contains(s, "Nothing is running.") && strings.Contains(s, "0 of 2 workers busy")
		})); err != nil {
			t.Fatalf("%s: %v\nserver log:\n%s", size.name, err, srv.logs)
		}

		// The strip's newest mark is the last build, and leads to it.
		newest := 9 + 3*round
		sel := fmt.Sprintf(`#dashboard a.mark[href="%s"]`, paths.Build(p.ID, newest))
		if err := chromedp.Do(ctx, chromedp.WaitVisible(sel+`.status-success`), chromedp.Click(sel),
			waitText("h1", func(s string) bool { return s == fmt.Sprintf("Build #%d", newest) })); err != nil {
			t.Fatalf("%s: the strip's newest mark: %v", size.name, err)
		}
	}
}

// nowEngines are the now panel's engine loads in doc, as their text.
func nowEngines(doc *goquery.Document) []string {
	var loads []string
	doc.Find("#" + views.NowID + " ul.engines > li").Each(func(_ int, li *goquery.Selection) { loads = append(loads, textOf(li)) })
	return loads
}

// With two Docker engines, one not answering, the now panel shows each
// engine's load, the one that does not answer as such, and a waiting job
// starts on the other rather than waiting for Docker; with one engine the
// panel lists none.
func TestNowPanelShowsEachEnginesLoadAndAJobStartsOnTheOneThatAnswers(t *testing.T) {
	srv, b := signedInWithDeadEngine(t)
	ctx := context.Background()
	octocat, err := srv.db.UserByID(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := gitProject(t, srv.db, octocat, "octocat/app", t.TempDir())
	if _, err := srv.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: testimage.Name, BuildScript: "#!/bin/sh\n"}); err != nil {
		t.Fatal(err)
	}
	// Enqueued without waking the runner, so that it stays in the queue.
	if _, _, err := srv.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: strings.Repeat("a", 40)}); err != nil {
		t.Fatal(err)
	}
	poll := fetchPoll(t, b, "/now", views.NowID)
	if got, want := nowEngines(poll), []string{"local: 0 of 2", "builder2: not reachable"}; !slices.Equal(got, want) {
		t.Errorf("engines %q, want %q", got, want)
	}
	if down := poll.Find("ul.engines > li.down"); down.Length() != 1 || !strings.HasPrefix(textOf(down), "builder2") {
		t.Errorf("%d engines marked down: %q", down.Length(), textOf(down))
	}
	if got := textOf(poll.Find(".workers")); got != "0 of 3 workers busy" {
		t.Errorf("workers: %q", got)
	}
	if rows := nowRows(poll); len(rows) != 1 || !strings.HasPrefix(rows[0], "enqueued octocat/app #1 test #1 in the queue · starting ·") {
		t.Errorf("rows with one engine of two answering = %q", rows)
	}

	s := newLocalTestServer(t)
	_, ann := signInLocal(t, s, "ann")
	if got := nowEngines(fetchPoll(t, ann, "/now", views.NowID)); len(got) != 0 {
		t.Errorf("one engine, the panel lists %q", got)
	}
}
