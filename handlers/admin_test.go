package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	docker "github.com/fsouza/go-dockerclient"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

// makeAdmin makes the GitHub user octocat an admin, as KOZMIC_ADMINS would
// at the next start.
func makeAdmin(t testing.TB, db *store.DB) {
	t.Helper()
	if n, err := db.SetGitHubAdmins(context.Background(), []string{"octocat"}); err != nil || n != 1 {
		t.Fatalf("SetGitHubAdmins = %d, %v", n, err)
	}
}

// The admin page and its Clear are a page that does not exist to anyone
// but an admin, signed out too: the same 404 as an unknown page, never a
// redirect to sign in or a 403 that would tell it is there. Only an
// admin's top bar links it, on every page, the error page too.
func TestAdminPageIsNotFoundToAnyoneButAdmins(t *testing.T) {
	s := newTestServer(t)
	admin := newBrowser(t, s)
	p := ownedProject(t, s, admin, "octocat/Hello-World", 1296269)
	makeAdmin(t, s.db)
	member := newBrowser(t, s)
	signInAs(t, s, member, 3, "monalisa")
	anonymous := newBrowser(t, s)

	for name, b := range map[string]*browser{"signed out": anonymous, "not an admin": member} {
		_, unknown := b.do("GET", "/no/such/page", nil)
		for _, req := range []struct{ method, path string }{
			{"GET", views.AdminPath}, {"GET", views.AdminPath + "?cleared=3"},
			{"POST", fmt.Sprintf("%s/projects/%d/cache/clear", views.AdminPath, p.ID)},
		} {
			res, body := b.do(req.method, req.path, nil)
			if res.StatusCode != 404 || res.Header.Get("Location") != "" {
				t.Errorf("%s: %s %s = %d to %q, want 404", name, req.method, req.path, res.StatusCode, res.Header.Get("Location"))
			}
			if req.method == "GET" && body != unknown {
				t.Errorf("%s: GET %s differs from an unknown page's 404:\n%s", name, req.path, body)
			}
		}
	}
	if strings.Contains(s.logs.String(), "install cache cleared") || strings.Contains(s.logs.String(), "clear install cache") {
		t.Error("a Clear of someone who is no admin reached the runner")
	}

	adminLink := func(b *browser, path string, status int) int {
		doc, _ := fetchPage(t, b, path, status)
		return doc.Find(`header.top nav.session a[href="` + views.AdminPath + `"]`).Length()
	}
	for _, path := range []string{"/", "/account", fmt.Sprintf("/projects/%d", p.ID), fmt.Sprintf("/projects/%d/settings", p.ID), views.AdminPath} {
		if n := adminLink(admin, path, 200); n != 1 {
			t.Errorf("admin: %s has %d links to the admin page, want 1", path, n)
		}
	}
	if n := adminLink(admin, "/no/such/page", 404); n != 1 {
		t.Errorf("admin: the 404 page has %d links to the admin page, want 1", n)
	}
	for _, path := range []string{"/", "/account", "/no/such/page"} {
		status := 200
		if path == "/no/such/page" {
			status = 404
		}
		if n := adminLink(member, path, status); n != 0 {
			t.Errorf("not an admin: %s links the admin page", path)
		}
	}
}

// factsOf reads a section's <dl> as term → description, spaces made one.
func factsOf(s *goquery.Selection) map[string]string {
	m := map[string]string{}
	s.Find("dl dt").Each(func(_ int, dt *goquery.Selection) { m[textOf(dt)] = textOf(dt.Next()) })
	return m
}

// The admin page shows the workers in use, the queue with its oldest
// wait, each running job linked, the database's sizes and its logs, and
// the server's version and uptime; without a Docker engine it says the
// engine is unreachable and why, and shows no cache to clear.
func TestAdminPageShowsQueueDatabaseAndServer(t *testing.T) {
	s := newTestServerWith(t, true, func(d *Deps) {
		d.Version = "v1.2.3-test"
		d.Started = time.Now().Add(-2 * time.Hour)
	})
	b := newBrowser(t, s)
	p := ownedProject(t, s, b, "octocat/Hello-World", 1296269)
	makeAdmin(t, s.db)
	_, job := buildWithLog(t, s, p, "refs/heads/main", "abc", "m", strings.Repeat("a build line\n", 1000), store.JobSuccess)
	_, running := buildWithLog(t, s, p, "refs/heads/main", "def", "m", "", store.JobRunning)
	if _, _, err := s.db.CreateBuild(context.Background(), store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "0ab"}); err != nil {
		t.Fatal(err)
	}

	doc, body := fetchPage(t, b, views.AdminPath, 200)
	checkSignedIn(t, "admin", doc, "octocat")
	if h1 := textOf(doc.Find("main h1")); h1 != "Admin" || textOf(doc.Find("title")) != "Admin · Kozmic" {
		t.Errorf("h1 %q", h1)
	}
	queue := doc.Find("#" + views.AdminQueueID)
	facts := factsOf(queue)
	if facts["Workers in use"] != "1 of 2" || !regexp.MustCompile(`^1 \(the oldest waiting for \d+s\)$`).MatchString(facts["Queued jobs"]) {
		t.Errorf("queue facts %q", facts)
	}
	if el := queue.Find("time.elapsed[data-since]"); el.Length() != 2 {
		t.Errorf("%d ticking times in the queue, want the oldest wait's and the running job's", el.Length())
	}
	row := queue.Find(".rows li")
	jobURL := fmt.Sprintf("/projects/%d/builds/2/jobs/%d", p.ID, running.ID)
	if row.Length() != 1 || attrOf(row.Find("a"), "href") != jobURL || textOf(row.Find("a")) != "octocat/Hello-World #2 · test" ||
		textOf(row.Find(".status")) != "running" {
		t.Errorf("running jobs: %d rows, %q to %q", row.Length(), textOf(row), attrOf(row.Find("a"), "href"))
	}

	dbFacts := factsOf(doc.Find("#" + views.AdminDatabaseID))
	sizeRE := regexp.MustCompile(`^\d+(\.\d)? (B|KiB|MiB|GiB)`)
	if !sizeRE.MatchString(dbFacts["File"]) || !strings.Contains(dbFacts["File"], "free inside") || !sizeRE.MatchString(dbFacts["Write-ahead log"]) ||
		!regexp.MustCompile(`^\d+(\.\d)? (B|KiB) compressed, of 1 job$`).MatchString(dbFacts["Logs"]) {
		t.Errorf("database facts %q", dbFacts)
	}
	if li, err := s.db.LogInfoOf(context.Background(), job.ID); err != nil || li.Size != 13000 {
		t.Fatalf("the log: %+v, %v", li, err)
	}

	server := factsOf(doc.Find("#" + views.AdminServerID))
	if server["Version"] != "v1.2.3-test" || !strings.HasPrefix(server["Up for"], "2h00m (started 2 hours ago)") {
		t.Errorf("server facts %q", server)
	}

	docker := doc.Find("#" + views.AdminEngineID(0))
	checkStatus(t, "docker", docker.Find(".head .status"), "unreachable", "status-error")
	if f := factsOf(docker); f["Error"] != "no Docker engine" {
		t.Errorf("docker facts %q", f)
	}
	if cache := doc.Find("#" + views.AdminCacheID); textOf(cache.Find("p").First()) != "Unknown while the Docker engine is unreachable." ||
		cache.Find("form").Length() != 0 {
		t.Errorf("install cache without an engine: %q", textOf(cache))
	}
	checkInert(t, "admin", doc, body)
}

// An engine address where nothing listens, or where a server accepts and
// never answers, makes the Docker part say "unreachable" with the
// connection's words; the page still answers, within the runner's
// timeout rather than never.
func TestAdminPageSaysUnreachableForADeadEngine(t *testing.T) {
	silent := testrepo.NewSilent(t)
	for _, tc := range []struct{ host, want string }{
		{"unix://" + filepath.Join(t.TempDir(), "docker.sock"), "no such file or directory"},
		{"tcp://" + silent.Addr, "no answer within 3s"},
	} {
		dc, err := runner.NewDockerClient(tc.host)
		if err != nil {
			t.Fatal(err)
		}
		s := newTestServerWith(t, true, func(d *Deps) {
			d.Jobs = runner.New(runner.Config{}, d.DB, dc, nil, slog.New(slog.NewTextHandler(os.Stderr, nil)))
		})
		b := newBrowser(t, s)
		b.signIn("/")
		makeAdmin(t, s.db)
		doc, _ := fetchPage(t, b, views.AdminPath, 200)
		d := doc.Find("#" + views.AdminEngineID(0))
		checkStatus(t, tc.host, d.Find(".head .status"), "unreachable", "status-error")
		f := factsOf(d)
		if !strings.Contains(f["Error"], tc.want) || f["Address"] != tc.host || len(f["Error"]) > adminErrorLen+len("…") {
			t.Errorf("%s: docker facts %q, want the error saying %q", tc.host, f, tc.want)
		}
	}
}

// engineError makes an engine's error one printable line of bounded
// length, whatever the engine put in it.
func TestEngineErrorIsOneBoundedLine(t *testing.T) {
	got := engineError(fmt.Errorf("refused:\r\n\x1b[31m<b>%s", strings.Repeat("é", 400)))
	if strings.ContainsAny(got, "\r\n\x1b") || len(got) > adminErrorLen+len("…") || !strings.HasPrefix(got, "refused: [31m<b>éé") {
		t.Errorf("engineError = %q", got)
	}
}

// liveAdmin is a live server (a started runner on the Docker engine) with
// an HTTP browser signed in as its admin.
func liveAdmin(t *testing.T) (*liveServer, *browser) {
	t.Helper()
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_DOCKER=1 to run tests against a Docker engine")
	}
	srv := newLiveServer(t)
	b := newBrowserAt(t, srv.url)
	b.signIn("/")
	makeAdmin(t, srv.db)
	return srv, b
}

// newCacheID is a fresh cache id, as the runner makes them: 64 hex digits.
func newCacheID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cacheImageOf commits a stopped container of the test image as an install
// cache image of the server's instance for a project, labelled as the
// runner labels its own, and removes it at the end of the test.
func cacheImageOf(t testing.TB, srv *liveServer, projectID int64, cacheID string) string {
	t.Helper()
	c, err := srv.dc.CreateContainer(docker.CreateContainerOptions{Config: &docker.Config{Image: testimage.Name, Cmd: []string{"true"}},
		HostConfig: &docker.HostConfig{NetworkMode: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.dc.RemoveContainer(docker.RemoveContainerOptions{ID: c.ID, Force: true})
	tag := fmt.Sprintf("%s-%d-project", srv.db.InstanceID(), projectID)
	name := runner.CacheRepository + cacheID + ":" + tag
	if _, err := srv.dc.CommitContainer(docker.CommitContainerOptions{Container: c.ID, Repository: runner.CacheRepository + cacheID, Tag: tag,
		Run: &docker.Config{Labels: map[string]string{runner.LabelCache: cacheID, runner.LabelProject: strconv.FormatInt(projectID, 10),
			runner.LabelInstance: srv.db.InstanceID(), runner.LabelScope: string(store.CacheScopeProject)}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.dc.RemoveImageExtended(name, docker.RemoveImageOptions{Force: true}) })
	return name
}

// With a Docker engine, the admin page shows its version, the running
// containers of this server's jobs, linked to their jobs, and each
// project's install cache images with their size and last use; Clear
// removes every image of that project and no other's, and says how many.
func TestAdminClearRemovesAProjectsCacheImages(t *testing.T) {
	srv, b := liveAdmin(t)
	ctx := context.Background()
	project := func(name string) store.Project {
		p, err := srv.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGit, FullName: name, GitURL: t.TempDir(), WebhookSecret: "s"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "unit", DockerImage: testimage.Name, BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, other := project("octocat/cached"), project("octocat/other")
	ids := []string{newCacheID(), newCacheID(), newCacheID()}
	mine := []string{cacheImageOf(t, srv, p.ID, ids[0]), cacheImageOf(t, srv, p.ID, ids[1])}
	theirs := cacheImageOf(t, srv, other.ID, ids[2])
	// A job of p used the first image an hour ago, and is running now in a
	// container the runner did not make (it has nothing enqueued).
	_, jobs, err := srv.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning, CacheID: ids[0], Cache: store.CacheHit, CacheScope: store.CacheScopeProject}); err != nil {
		t.Fatal(err)
	}
	c := runningJobContainer(t, srv, p.ID, jobs[0].ID)

	doc, _ := fetchPage(t, b, views.AdminPath, 200)
	d := doc.Find("#" + views.AdminEngineID(0))
	checkStatus(t, "docker", d.Find(".head .status"), "reachable", "status-success")
	f := factsOf(d)
	if !regexp.MustCompile(`^\d+\.\d+\S* \(API \d+\.\d+, linux/\w+\)$`).MatchString(f["Version"]) || f["Kozmic's containers"] != "1 running" {
		t.Errorf("docker facts %q", f)
	}
	row := d.Find(".rows li")
	jobURL := fmt.Sprintf("/projects/%d/builds/1/jobs/%d", p.ID, jobs[0].ID)
	if row.Length() != 1 || textOf(row.Find("code")) != c.ID[:12] || attrOf(row.Find("a"), "href") != jobURL || !strings.Contains(textOf(row), "octocat/cached #1 unit") {
		t.Errorf("containers: %d rows: %q", row.Length(), textOf(row))
	}
	groups := doc.Find("#" + views.AdminCacheID + " .cache-project")
	if groups.Length() != 2 || textOf(groups.Eq(0).Find("h3")) != "octocat/cached" || textOf(groups.Eq(1).Find("h3")) != "octocat/other" {
		t.Fatalf("cache groups: %q", textOf(groups))
	}
	g := groups.Eq(0)
	if !regexp.MustCompile(`^2 images, \d+\.\d MiB$`).MatchString(textOf(g.Find(".head .muted"))) {
		t.Errorf("summary %q", textOf(g.Find(".head .muted")))
	}
	imgs := g.Find(".rows li")
	// The image a job used comes first: used just now; the other, never
	// used, counts from when it was made.
	if imgs.Length() != 2 || textOf(imgs.Eq(0).Find("code")) != ids[0][:12] || textOf(imgs.Eq(0).Find(".tag")) != "project" ||
		!regexp.MustCompile(`^\d+\.\d MiB, used just now$`).MatchString(textOf(imgs.Eq(0).Find(".meta"))) ||
		!regexp.MustCompile(`^\d+\.\d MiB, made just now, not used yet$`).MatchString(textOf(imgs.Eq(1).Find(".meta"))) {
		t.Errorf("images: %q", textOf(imgs))
	}
	form := g.Find("form")
	clearURL := fmt.Sprintf("%s/projects/%d/cache/clear", views.AdminPath, p.ID)
	checkForm(t, "clear", form, clearURL, "Clear")
	if !form.HasClass("confirm") || !strings.HasPrefix(attrOf(form, "data-confirm"), "Clear the install cache of octocat/cached?") {
		t.Errorf("the Clear form asks no confirmation: %q %q", attrOf(form, "class"), attrOf(form, "data-confirm"))
	}

	// The job has finished (its container stays until the test's end): Clear.
	if _, err := srv.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobSuccess}); err != nil {
		t.Fatal(err)
	}
	res, _ := b.do("POST", clearURL, nil)
	if res.StatusCode != 303 || res.Header.Get("Location") != views.AdminPath+"?cleared=2" {
		t.Fatalf("Clear: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	for _, name := range mine {
		if _, err := srv.dc.InspectImage(name); err == nil {
			t.Errorf("%s is still there", name)
		}
	}
	if _, err := srv.dc.InspectImage(theirs); err != nil {
		t.Errorf("the other project's image went: %v", err)
	}
	doc, _ = fetchPage(t, b, res.Header.Get("Location"), 200)
	if fl := doc.Find(".flash-ok"); textOf(fl) != "Removed 2 install cache images." || attrOf(fl, "role") != "status" {
		t.Errorf("flash %q", textOf(fl))
	}
	if groups := doc.Find("#" + views.AdminCacheID + " .cache-project h3"); textOf(groups) != "octocat/other" {
		t.Errorf("after Clear, cache groups %q", textOf(groups))
	}
	if !strings.Contains(srv.logs.String(), "install cache cleared") {
		t.Error("the Clear was not logged")
	}
}

// BenchmarkAdminPage serves the admin page to an admin with 100,000 builds
// (and jobs) in a project, 10,000 of them with logs and one running,
// through the real handler, session and store; the Docker engine's part
// is measured apart, in BenchmarkAdminPageWithDocker.
func BenchmarkAdminPage(b *testing.B) {
	s, br, p := benchProject(b)
	makeAdmin(b, s.db)
	adminBenchBuilds(b, s.db, p)
	b.ResetTimer()
	for b.Loop() {
		res, page := br.do("GET", views.AdminPath, nil)
		if res.StatusCode != 200 || !strings.Contains(page, "of 10000 jobs") {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
}

// adminBenchBuilds fills p with 100,000 builds of one job each, every
// tenth with a log of 100 lines, and leaves one job running.
func adminBenchBuilds(b *testing.B, db *store.DB, p store.Project) {
	b.Helper()
	ctx := context.Background()
	const builds = 100_000
	log := []byte(strings.Repeat("a line of a build's output, as long as most\n", 100))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < builds; i += 4 {
				_, jobs, err := db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main",
					SHA: fmt.Sprintf("%040x", i), Author: "Ann", Message: "a change"})
				if err == nil && i%10 == 0 {
					_, err = db.AppendLog(ctx, jobs[0].ID, log, false)
				}
				if err == nil {
					_, err = db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobRunning})
				}
				if err == nil && i != 0 {
					_, err = db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobSuccess})
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// adminPageFixture makes what the admin page's browser tests show: a
// project with a long name and a hook, a job of it running in a container
// of the test image, and two install cache images of the project, whose
// names it returns.
func adminPageFixture(t *testing.T, srv *liveServer) (store.Project, []string) {
	t.Helper()
	bg := context.Background()
	p, err := srv.db.CreateProject(bg, store.NewProject{OwnerID: 1, Source: store.SourceGit, FullName: "octocat/a-project-with-a-long-name",
		GitURL: t.TempDir(), WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.db.CreateHook(bg, store.Hook{ProjectID: p.ID, Title: "unit tests", DockerImage: testimage.Name, BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	// One job running (marked so: the runner, with nothing enqueued, leaves it).
	_, jobs, err := srv.db.CreateBuild(bg, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: strings.Repeat("a", 40)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.db.UpdateJob(bg, jobs[0].ID, store.JobUpdate{Status: store.JobRunning}); err != nil {
		t.Fatal(err)
	}
	mine := []string{cacheImageOf(t, srv, p.ID, newCacheID()), cacheImageOf(t, srv, p.ID, newCacheID())}
	runningJobContainer(t, srv, p.ID, jobs[0].ID)
	return p, mine
}

// The admin page fits a phone and a desktop, and its Clear is reached with
// the Tab key alone and pressed with Enter: the browser asks first, and
// only once that is accepted are the project's images gone.
func TestBrowserAdminPageFitsAndClearsByKeyboard(t *testing.T) {
	srv, ctx := signedInBrowser(t)
	makeAdmin(t, srv.db)
	p, mine := adminPageFixture(t, srv)

	for _, size := range []struct {
		name          string
		width, height int64
		opts          []chromedp.EmulateViewportOption
		shot          string
	}{{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}, "phone-admin.png"}, {"desktop", 1280, 800, nil, "admin.png"}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, size.opts...),
			chromedp.Navigate(srv.url+views.AdminPath), chromedp.WaitVisible(chromedp.ID(views.AdminServerID))); err != nil {
			t.Fatal(err)
		}
		bad, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(fitCheck, size.width)))
		if err != nil {
			t.Fatal(err)
		}
		if bad != "" {
			t.Errorf("the admin page on a %s (%d px):\n%s", size.name, size.width, bad)
		}
		screenshot(t, ctx, size.shot)
	}

	// From the top of the page, Tab until the Clear button has the focus.
	const isClear = `(document.activeElement && document.activeElement.closest("form.confirm") || {}).action || ""`
	clearURL := fmt.Sprintf("%s%s/projects/%d/cache/clear", srv.url, views.AdminPath, p.ID)
	reached := false
	for range 40 {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		if at, _ := chromedp.Run(ctx, chromedp.Evaluate[string](isClear)); at == clearURL {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatal("40 presses of Tab never reached the Clear button")
	}
	// Enter waits for the confirmation, which another goroutine accepts.
	asked := make(chan string, 1)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				close(asked)
				return
			}
			asked <- ev.Message
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			return
		}
	}()
	if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter),
		waitText(".flash-ok", func(s string) bool { return s == "Removed 2 install cache images." })); err != nil {
		t.Fatal(err)
	}
	if msg := <-asked; !strings.HasPrefix(msg, "Clear the install cache of octocat/a-project-with-a-long-name?") {
		t.Errorf("the confirmation asked %q", msg)
	}
	for _, name := range mine {
		if _, err := srv.dc.InspectImage(name); err == nil {
			t.Errorf("%s is still there", name)
		}
	}
}

// BenchmarkAdminPageWithDocker is BenchmarkAdminPage with the Docker
// engine's part: a started runner on the engine, its version, a running
// container of the running job and six install cache images of the
// project, each looked up for its last use among the 100,000 builds.
func BenchmarkAdminPageWithDocker(b *testing.B) {
	if os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		b.Skip("set KOZMIC_TEST_DOCKER=1 to run benchmarks against a Docker engine")
	}
	srv := newLiveServer(b)
	br := newBrowserAt(b, srv.url)
	br.signIn("/")
	makeAdmin(b, srv.db)
	p, err := srv.db.CreateProject(context.Background(), store.NewProject{OwnerID: 1, Source: store.SourceGit, FullName: "octocat/bench",
		GitURL: b.TempDir(), WebhookSecret: "s"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := srv.db.CreateHook(context.Background(), store.Hook{ProjectID: p.ID, Title: "test", DockerImage: testimage.Name, BuildScript: "#!/bin/sh"}); err != nil {
		b.Fatal(err)
	}
	adminBenchBuilds(b, srv.db, p)
	for range 6 {
		cacheImageOf(b, srv, p.ID, newCacheID())
	}
	b.ResetTimer()
	for b.Loop() {
		res, page := br.do("GET", views.AdminPath, nil)
		if res.StatusCode != 200 || strings.Count(page, "used") < 6 || !strings.Contains(page, "reachable") {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
}

// runningJobContainer starts a container labelled as this server's for job
// jobID of project projectID, as the runner labels a job's, and removes it
// at the test's end.
func runningJobContainer(t *testing.T, srv *liveServer, projectID, jobID int64) *docker.Container {
	t.Helper()
	c, err := srv.dc.CreateContainer(docker.CreateContainerOptions{Config: &docker.Config{Image: testimage.Name, Cmd: []string{"sleep", "60"},
		Labels: map[string]string{runner.LabelInstance: srv.db.InstanceID(), runner.LabelJob: strconv.FormatInt(jobID, 10),
			runner.LabelProject: strconv.FormatInt(projectID, 10)}}, HostConfig: &docker.HostConfig{NetworkMode: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.dc.RemoveContainer(docker.RemoveContainerOptions{ID: c.ID, Force: true}) })
	if err := srv.dc.StartContainer(c.ID, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

// With two Docker engines, one of them not answering, the admin page has
// a section for each: its name, address, slots in use and jobs since the
// start, and the version and this server's containers of the one that
// answers, the error of the other. The install cache lists the images of
// the engine that answers, each tagged with it, says whose are unknown,
// and Clear removes the project's images from the engine that answers and
// says that not all could be.
func TestAdminPageShowsEveryEngine(t *testing.T) {
	srv, b := signedInWithDeadEngine(t)
	makeAdmin(t, srv.db)
	ctx := context.Background()
	p, err := srv.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGit, FullName: "octocat/cached", GitURL: t.TempDir(), WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{newCacheID(), newCacheID()}
	mine := []string{cacheImageOf(t, srv, p.ID, ids[0]), cacheImageOf(t, srv, p.ID, ids[1])}
	c := runningJobContainer(t, srv, p.ID, 4242)

	doc, body := fetchPage(t, b, views.AdminPath, 200)
	local, builder2 := doc.Find("#"+views.AdminEngineID(0)), doc.Find("#"+views.AdminEngineID(1))
	if doc.Find("#"+views.AdminEngineID(2)).Length() != 0 || textOf(local.Find("h2")) != "Docker engine local" || textOf(builder2.Find("h2")) != "Docker engine builder2" {
		t.Fatalf("engine sections: %q, %q", textOf(local.Find("h2")), textOf(builder2.Find("h2")))
	}
	checkStatus(t, "local", local.Find(".head .status"), "reachable", "status-success")
	checkStatus(t, "builder2", builder2.Find(".head .status"), "unreachable", "status-error")
	f := factsOf(local)
	if f["Address"] != testimage.Host() || f["Slots in use"] != "0 of 2" || f["Jobs since the start"] != "0 started, 0 failed" ||
		!regexp.MustCompile(`^\d+\.\d+\S* \(API \d+\.\d+, linux/\w+\)$`).MatchString(f["Version"]) || f["Kozmic's containers"] != "1 running" {
		t.Errorf("local's facts %q", f)
	}
	if row := local.Find(".rows li"); row.Length() != 1 || textOf(row.Find("code")) != c.ID[:12] || !strings.Contains(textOf(row), "octocat/cached job 4242") {
		t.Errorf("local's containers: %q", textOf(row))
	}
	f = factsOf(builder2)
	if f["Address"] != "tcp://127.0.0.1:1" || f["Slots in use"] != "0 of 1" || f["Jobs since the start"] != "0 started, 0 failed" ||
		!strings.Contains(f["Error"], "cannot connect to Docker endpoint") || f["Version"] != "" || builder2.Find(".rows li").Length() != 0 {
		t.Errorf("builder2's facts %q", f)
	}

	cache := doc.Find("#" + views.AdminCacheID)
	if got := textOf(cache.Find("p.muted").First()); got != "Unknown on builder2 while it is unreachable." {
		t.Errorf("the cache's note: %q", got)
	}
	imgs := cache.Find(".cache-project .rows li")
	if textOf(cache.Find(".cache-project h3")) != "octocat/cached" || imgs.Length() != 2 {
		t.Fatalf("cache: %q", textOf(cache))
	}
	imgs.Each(func(i int, li *goquery.Selection) {
		if tag := li.Find(".tag.engine"); textOf(tag) != "local" {
			t.Errorf("image %d: engine %q, want local", i, textOf(tag))
		}
	})
	checkInert(t, "admin", doc, body)

	// Clear removes the images on local, and says builder2's could not be.
	clearURL := fmt.Sprintf("%s/projects/%d/cache/clear", views.AdminPath, p.ID)
	checkForm(t, "clear", cache.Find(".cache-project form"), clearURL, "Clear")
	res, page := b.do("POST", clearURL, nil)
	const want = "Removed 2 install cache images; others could not be removed: the Docker engine builder2 is not reachable. Try again later."
	if fl := parse(t, page).Find(".flash-error"); res.StatusCode != 409 || textOf(fl) != want {
		t.Errorf("Clear with builder2 down: %d %q", res.StatusCode, textOf(fl))
	}
	for _, name := range mine {
		if _, err := srv.dc.InspectImage(name); err == nil {
			t.Errorf("%s is still there", name)
		}
	}
}

// With two Docker engines, one not answering, the admin page and the
// dashboard's now panel, which then lists each engine's load, fit a phone
// and a desktop.
func TestBrowserAdminPageWithTwoEnginesFitsAPhoneAndADesktop(t *testing.T) {
	srv, ctx := signedInBrowserWith(t, deadEngine(t, "builder-with-a-long-name-2"))
	makeAdmin(t, srv.db)
	adminPageFixture(t, srv)

	for _, size := range []struct {
		name          string
		width, height int64
		opts          []chromedp.EmulateViewportOption
		shot          string
	}{{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}, "phone-admin-engines.png"}, {"desktop", 1280, 800, nil, "admin-engines.png"}} {
		for _, page := range []struct {
			path, wait, shot string
			shown, want      string // what a script reads of the page, and what it should say
		}{
			{views.AdminPath, "#" + views.AdminServerID, size.shot, `[...document.querySelectorAll("main section h2")].map(h => h.innerText).join("; ")`,
				"Workers and queue; Docker engine local; Docker engine builder-with-a-long-name-2; Install cache; Database; Server"},
			{"/", "#" + views.NowID + " ul.engines", "", `document.querySelector("#` + views.NowID + ` ul.engines").innerText.replaceAll("\n", "; ")`,
				"local: 0 of 2; builder-with-a-long-name-2: not reachable"},
		} {
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, size.opts...),
				chromedp.Navigate(srv.url+page.path), chromedp.WaitVisible(page.wait)); err != nil {
				t.Fatal(err)
			}
			if shown, err := chromedp.Run(ctx, chromedp.Evaluate[string](page.shown)); err != nil || shown != page.want {
				t.Errorf("%s on a %s shows %q (%v), want %q", page.path, size.name, shown, err, page.want)
			}
			bad, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(fitCheck, size.width)))
			if err != nil {
				t.Fatal(err)
			}
			if bad != "" {
				t.Errorf("%s on a %s (%d px):\n%s", page.path, size.name, size.width, bad)
			}
			if page.shot != "" {
				screenshot(t, ctx, page.shot)
			}
		}
	}
}
