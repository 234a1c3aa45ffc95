package handlers

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"

	"github.com/chromedp/chromedp"
	docker "github.com/fsouza/go-dockerclient"

	"kozmic/gh"
	"kozmic/internal/fakegithub"
	"kozmic/internal/syncbuf"
	"kozmic/internal/testdb"
	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/internal/when"
	"kozmic/metrics"
	"kozmic/runner"
	"kozmic/store"
)

// liveServer is the whole server on 127.0.0.1: store, a started runner on
// the Docker engine, handlers, metrics, and a fake GitHub to sign in with.
type liveServer struct {
	url     string
	handler http.Handler
	db      *store.DB
	jobs    *runner.Runner
	dc      *docker.Client // the runner's engine
	logs    *syncbuf.Buffer
}

func newLiveServer(t testing.TB) *liveServer { return newLiveServerWith(t) }

// newLiveServerWith is a liveServer whose runner has, besides the Docker
// engine (named "local", with 2 slots), the engines others.
func newLiveServerWith(t testing.TB, others ...runner.EngineConfig) *liveServer {
	t.Helper()
	ctx := context.Background()
	db := testdb.Open(t)
	dc, err := runner.NewDockerClient(testimage.Host())
	if err != nil {
		t.Fatal(err)
	}
	if err := testimage.Ensure(dc); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	mets := metrics.New(db, log)
	cfg := runner.Config{Network: "none", WorkDir: t.TempDir(), Instance: db.InstanceID(), Metrics: mets}
	if len(others) > 0 {
		cfg.Engines = append([]runner.EngineConfig{{Name: "local", Client: dc, Slots: 2}}, others...)
	}
	jobs := runner.New(cfg, db, dc, nil, log)
	jobs.Start(ctx)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		jobs.Shutdown(sctx)
	})
	fake := fakegithub.New(t)
	srv := httptest.NewUnstartedServer(nil)
	srv.Start()
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	g := gh.New(gh.Config{WebURL: fake.WebURL(), ClientID: "id", ClientSecret: "secret", BaseURL: base, SignIn: gh.SignIn{Users: []string{"octocat"}}})
	srv.Config.Handler = New(Deps{DB: db, Jobs: jobs, GitHub: g, Sessions: db.Sessions(), BaseURL: base, GitHubURL: fake.WebURL(), Log: log, Metrics: mets})
	return &liveServer{url: srv.URL, handler: srv.Config.Handler, db: db, jobs: jobs, dc: dc, logs: logs}
}

// signedInBrowser starts a live server and a Chromium signed in to it with
// (the fake) GitHub, as a person would; it skips unless KOZMIC_TEST_BROWSER
// and KOZMIC_TEST_DOCKER are set.
func signedInBrowser(t *testing.T) (*liveServer, context.Context) { return signedInBrowserWith(t) }

// signedInBrowserWith is signedInBrowser with the engines others besides
// the Docker engine, as newLiveServerWith has them.
func signedInBrowserWith(t *testing.T, others ...runner.EngineConfig) (*liveServer, context.Context) {
	t.Helper()
	if os.Getenv("KOZMIC_TEST_BROWSER") == "" || os.Getenv("KOZMIC_TEST_DOCKER") == "" {
		t.Skip("set KOZMIC_TEST_BROWSER=1 and KOZMIC_TEST_DOCKER=1 to drive Chromium against a Docker engine")
	}
	srv := newLiveServerWith(t, others...)
	ctx := newChrome(t)
	if err := browserSignIn(ctx, srv); err != nil {
		t.Fatal(err)
	}
	return srv, ctx
}

// newChrome starts Debian's Chromium headless with a fresh profile, kept
// off the network but for this machine.
func newChrome(t *testing.T) context.Context {
	t.Helper()
	// Not t.TempDir: its removal would not wait for Chromium's stragglers.
	profile, err := os.MkdirTemp("", "kozmic-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		// Chromium's helper processes may still write to the profile for a
		// moment after the browser has gone, so removal is tried again.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("the Chromium profile %s could not be removed", profile)
	})
	return ctx
}

// waitText polls, for up to 30 seconds, until the element's text satisfies ok.
func waitText(sel string, ok func(string) bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if time.Now().After(deadline) {
				html, _ := chromedp.OuterHTML(chromedp.CSS(sel), chromedp.AtLeast(0))(ctx, t)
				return fmt.Errorf("waiting for %s, which is now: %.600s", sel, html)
			}
			if text, err := chromedp.Text(chromedp.CSS(sel), chromedp.AtLeast(0))(ctx, t); err == nil && ok(text) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("waiting for %s: %w", sel, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// screenshot saves a PNG of the page to docs/screenshots/name when
// KOZMIC_UPDATE_SCREENSHOTS is set, and checks that one was taken.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 5000 {
		t.Errorf("screenshot %s: %d bytes, not a page", name, len(png))
	}
	if os.Getenv("KOZMIC_UPDATE_SCREENSHOTS") != "" {
		if err := os.WriteFile(filepath.Join("..", "docs", "screenshots", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const liveScript = `#!/bin/sh
printf '\033[1;32mKozmic\033[0m builds \033[33m%s\033[0m\n' "$KOZMIC_BRANCH"
for i in $(seq 1 30); do
  echo "line $i of the live log"
  sleep 0.15
done
`

func TestBrowserLiveLog(t *testing.T) {
	srv, ctx := signedInBrowser(t)

	// A project of a real git repository on this machine.
	repo := testrepo.New(t, nil)
	p, err := srv.db.CreateProject(context.Background(), store.NewProject{OwnerID: 1, Source: store.SourceGit,
		FullName: "octocat/live", GitURL: repo.Path, WebhookSecret: "live-secret"})
	if err != nil {
		t.Fatal(err)
	}

	// Its hook, through the form.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/projects/%d/hooks/new", srv.url, p.ID)),
		chromedp.SendKeys(chromedp.ID("title"), "live"),
		chromedp.SendKeys(chromedp.ID("image"), testimage.Name),
		chromedp.SetValue(chromedp.ID("build"), liveScript),
		chromedp.Submit(chromedp.ID("build")),
		waitText(".flash-ok", func(s string) bool { return strings.HasPrefix(s, "Hook saved. Run a build below") }),
	); err != nil {
		t.Fatal(err)
	}

	// The dashboard is open before the build starts; it must turn green by itself.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.url+"/")); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"head_commit":{"message":"Make it green","author":{"name":"Ann"}}}`, repo.Git("rev-parse", "HEAD"))
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/webhooks/%d", srv.url, p.ID), strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "live-1")
	req.Header.Set("X-Hub-Signature-256", gh.Sign([]byte("live-secret"), []byte(body)))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("webhook: %v %v", res, err)
	}
	jobs, _ := srv.db.Jobs(context.Background(), 1)
	jobURL := fmt.Sprintf("%s/projects/%d/builds/1/jobs/%d", srv.url, p.ID, jobs[0].ID)

	// In a second tab: the job page, where the log arrives live.
	tab, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()
	if err := chromedp.Do(tab, chromedp.Navigate(jobURL),
		waitText("#log", func(s string) bool { return strings.Contains(s, "line 5 of") })); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, srv.logs)
	}
	early, _ := chromedp.Run(tab, chromedp.Text(chromedp.ID("log")))
	if strings.Contains(early, "line 30 of") {
		t.Fatal("the whole log was there at once: it did not arrive live")
	}
	// Reload mid-job: the page starts again and shows every line once.
	if err := chromedp.Do(tab, chromedp.Reload(),
		waitText("#job-status", func(s string) bool { return strings.Contains(s, "passed") }),
		waitText("#log", func(s string) bool { return strings.Contains(s, "line 30 of") })); err != nil {
		logTail, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("log").innerText.slice(-300)`))
		t.Fatalf("%v\nlog ends: %q\nserver log:\n%s", err, logTail, srv.logs)
	}
	log, _ := chromedp.Run(tab, chromedp.Text(chromedp.ID("log")))
	for i := 1; i <= 30; i++ {
		if n := strings.Count(log, fmt.Sprintf("line %d of the live log", i)); n != 1 {
			t.Errorf("line %d shows %d times after the reload", i, n)
		}
	}
	coloured, _ := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll("#log .term-fg32").length`))
	if coloured == 0 {
		t.Error("the log's colours were not rendered")
	}
	checkLineNumbers(t, tab)
	screenshot(t, tab, "job.png")
	// A click on a line's number (of the build script's section, open) links to the line.
	if linked, err := chromedp.Run(tab, chromedp.Evaluate[bool](`(function () { var l = document.querySelector("#log details[open] p[id]"), r = l.getBoundingClientRect();
			document.elementFromPoint(r.left + 5, r.top + r.height / 2).dispatchEvent(new MouseEvent("click", {bubbles: true, clientX: r.left + 5, clientY: r.top + r.height / 2}));
			return location.hash === "#" + l.id; })()`)); err != nil || !linked {
		t.Errorf("a click on a line's number does not link it: %v", err)
	}

	// Back on the first tab, never reloaded: the dashboard shows the build passed.
	if err := chromedp.Do(ctx, waitText("#dashboard", func(s string) bool { return strings.Contains(s, "passed") })); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "dashboard.png")
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%s/projects/%d/builds/1", srv.url, p.ID)),
		waitText("#jobs-table", func(s string) bool { return strings.Contains(s, "passed") })); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "build.png")
}

// checkLineNumbers checks the numbers the browser shows before the log's
// lines (a CSS counter that kozmic.js starts on each block's first line): of
// the first line of each block of lines on screen and of the last line on
// screen, the number shown must be the line's own (its id, L<n>). The
// number is read from the page's accessibility tree, where the counter's
// value is the text of the line's ::before.
func checkLineNumbers(t *testing.T, tab context.Context) {
	t.Helper()
	ids, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`(function () {
			function onScreen(p) {
				var r = p.getBoundingClientRect();
				return p.checkVisibility({ contentVisibilityAuto: true }) && r.height > 0 && r.bottom > 0 && r.top < window.innerHeight;
			}
			var lines = Array.from(document.querySelectorAll("#log .log-lines > p[id^=L]")).filter(onScreen);
			var ids = lines.filter(function (p) { return p === p.parentElement.querySelector("p[id^=L]"); }).map(function (p) { return p.id; });
			if (lines.length) { ids.push(lines[lines.length - 1].id); }
			return ids.slice(-6);
		})()`))
	if err != nil || len(ids) == 0 {
		t.Fatalf("no log line on screen to check the numbers of (%v)", err)
	}
	if _, err := chromedp.Call(tab, accessibility.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if shown, err := lineNumberShown(tab, id); err != nil || "L"+shown != id {
			t.Errorf("line %s shows the number %q (%v)", id, shown, err)
		}
	}
}

// lineNumberShown is the number log line id's ::before shows, as the
// page's accessibility tree holds it: the last word of its first child's
// text (a line's time comes before it, when times are shown).
func lineNumberShown(tab context.Context, id string) (string, error) {
	nodes, err := chromedp.Run(tab, chromedp.Nodes("#"+id))
	if err != nil {
		return "", err
	}
	self := false
	line, err := chromedp.Call(tab, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{BackendNodeID: nodes[0].BackendNodeID, FetchRelatives: &self})
	if err != nil || len(line.Nodes) == 0 || len(line.Nodes[0].ChildIDs) == 0 {
		return "", fmt.Errorf("no accessible children of %s: %v", id, err)
	}
	before, err := chromedp.Call(tab, accessibility.GetChildAXNodes, accessibility.GetChildAXNodesParams{ID: line.Nodes[0].ChildIDs[0]})
	if err != nil {
		return "", err
	}
	var text []string
	for _, n := range before.Nodes {
		if n.Name != nil && n.Role != nil && string(n.Role.Value) == `"StaticText"` {
			text = append(text, strings.Trim(string(n.Name.Value), `"`))
		}
	}
	words := strings.Fields(strings.Join(text, " "))
	if len(words) == 0 {
		return "", fmt.Errorf("no text before %s", id)
	}
	return words[len(words)-1], nil
}

// browserSignIn signs the browser in to srv (as the fake GitHub's octocat)
// and waits for the dashboard.
func browserSignIn(ctx context.Context, srv *liveServer) error {
	return chromedp.Do(ctx, chromedp.Navigate(srv.url+"/login"), chromedp.Click(chromedp.CSS(`a.button`)),
		waitText("h1", func(s string) bool { return s == "Projects" }))
}

// browserBuild starts a live server and a Chromium signed in to it, and
// makes the project name with a hook of each title and the build nb of it
// (nb.ProjectID is filled in); it skips unless KOZMIC_TEST_BROWSER and
// KOZMIC_TEST_DOCKER are set.
func browserBuild(t *testing.T, name string, nb store.NewBuild, hooks ...string) (*liveServer, context.Context, store.Project, []store.Job) {
	t.Helper()
	srv, ctx := signedInBrowser(t)
	bg := context.Background()
	p, err := srv.db.CreateProject(bg, store.NewProject{OwnerID: 1, Source: store.SourceGit, FullName: name,
		GitURL: t.TempDir(), WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, title := range hooks {
		if _, err := srv.db.CreateHook(bg, store.Hook{ProjectID: p.ID, Title: title, DockerImage: testimage.Name, BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
	}
	nb.ProjectID = p.ID
	_, jobs, err := srv.db.CreateBuild(bg, nb)
	if err != nil {
		t.Fatal(err)
	}
	return srv, ctx, p, jobs
}

// A finished 100,000-line log opens a page at a time, loads more as it is
// scrolled, and a link to a line deep inside it loads the page holding it.
func TestBrowserLongLog(t *testing.T) {
	srv, ctx, p, jobs := browserBuild(t, "octocat/long", store.NewBuild{Ref: "refs/heads/main", SHA: strings.Repeat("a", 40), Message: "Long log"}, "long")
	bg := context.Background()
	// The job is marked running before its log is written, so the runner
	// (started, but with nothing enqueued) leaves it alone.
	job := jobs[0].ID
	srv.db.UpdateJob(bg, job, store.JobUpdate{Status: store.JobRunning})
	var chunk bytes.Buffer
	for i := 1; i <= 100_000; i++ {
		fmt.Fprintf(&chunk, "\x1b[36mstep\x1b[0m %d of a very long build\n", i)
		if chunk.Len() > 1<<20 || i == 100_000 {
			if _, err := srv.db.AppendLog(bg, job, chunk.Bytes(), false); err != nil {
				t.Fatal(err)
			}
			chunk.Reset()
		}
	}
	srv.db.UpdateJob(bg, job, store.JobUpdate{Status: store.JobSuccess})
	jobURL := fmt.Sprintf("%s/projects/%d/builds/1/jobs/%d", srv.url, p.ID, job)

	count := func(tab context.Context) int {
		n, _ := chromedp.Run(tab, chromedp.Evaluate[int](`document.querySelectorAll("#log p").length`))
		return n
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(jobURL), chromedp.WaitVisible(chromedp.ID("L1000"))); err != nil {
		t.Fatal(err)
	}
	if n := count(ctx); n != 1000 {
		t.Errorf("the page opened with %d lines, want the first 1,000", n)
	}
	// Scrolling to the end of what is there brings the next page.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, document.body.scrollHeight)`),
		chromedp.WaitVisible(chromedp.ID("L2000"))); err != nil {
		t.Fatal(err)
	}
	if n := count(ctx); n < 2000 || n > 3000 {
		t.Errorf("after one scroll %d lines are loaded", n)
	}
	// A link to line 54,321 loads the page holding it, not the pages before
	// it, and shows that line.
	tab, cancelTab := chromedp.NewContext(ctx)
	defer cancelTab()
	if err := chromedp.Do(tab, chromedp.Navigate(jobURL+"#L54321"), chromedp.WaitVisible(chromedp.ID("L54321"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](`(function () { var r = document.getElementById("L54321").getBoundingClientRect();
			return r.top >= 0 && r.bottom <= window.innerHeight; })()`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("line 54,321 was not scrolled into view: %v", err)
	}
	text, _ := chromedp.Run(tab, chromedp.Text(chromedp.ID("L54321")))
	if !strings.Contains(text, "step 54321 of a very long build") {
		t.Errorf("#L54321 reads %q", text)
	}
	checkLineNumbers(t, tab)
	first, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector("#log p").id`))
	if n := count(tab); n != 1000 || first != "L54001" {
		t.Errorf("%d lines from %s loaded to show line 54,321", n, first)
	}
}

// A running job's elapsed time ticks by itself every second, in the page as
// it was loaded (the element is never replaced: no request brings it), and
// reads as the server writes durations, minutes and hours too.
func TestRunningJobElapsedTicks(t *testing.T) {
	srv, ctx, p, jobs := browserBuild(t, "octocat/ticks", store.NewBuild{Ref: "refs/heads/main", SHA: strings.Repeat("a", 40), Message: "Ticks"}, "ticks")
	bg := context.Background()
	// Marked running, so the runner (with nothing enqueued) leaves it alone.
	if _, err := srv.db.UpdateJob(bg, jobs[0].ID, store.JobUpdate{Status: store.JobRunning}); err != nil {
		t.Fatal(err)
	}
	jobURL := fmt.Sprintf("%s/projects/%d/builds/1/jobs/%d", srv.url, p.ID, jobs[0].ID)
	const sel = "#job-status time.elapsed"
	if err := chromedp.Do(ctx, chromedp.Navigate(jobURL), chromedp.WaitVisible(chromedp.CSS(sel)),
		// A mark on the element as loaded: a replaced element would lack it.
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#job-status time.elapsed").kozmicMark = true`)); err != nil {
		t.Fatal(err)
	}
	first, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatal(err)
	}
	seconds := func(s string) int {
		n, err := strconv.Atoi(strings.TrimSuffix(s, "s"))
		if err != nil || !strings.HasSuffix(s, "s") {
			return -1
		}
		return n
	}
	start := seconds(first)
	if start < 0 {
		t.Fatalf("the running job's time reads %q", first)
	}
	if err := chromedp.Do(ctx, waitText(sel, func(s string) bool { return seconds(s) >= start+3 })); err != nil {
		t.Fatal(err)
	}
	state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(function () {
		var el = document.querySelector("#job-status time.elapsed");
		return el.kozmicMark + " " + el.getAttribute("datetime") + " " + el.textContent; })()`))
	if f := strings.Fields(state); len(f) != 3 || f[0] != "true" || f[1] != "PT"+strings.TrimSuffix(f[2], "s")+"S" {
		t.Errorf("after ticking: mark, datetime and text are %q; want the same element, its datetime following its text", state)
	}
	// Started 63 s or 1 h 2 min 3 s ago, it reads as the server would write it.
	for _, c := range []struct {
		ago  int
		want string
	}{{63, "1m03s"}, {3723, "1h02m"}} {
		since := time.Now().Add(-time.Duration(c.ago) * time.Second).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		if err := chromedp.Do(ctx,
			chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector("#job-status time.elapsed").dataset.since = %q`, since)),
			waitText(sel, func(s string) bool { return s == c.want || s == when.Duration(time.Duration(c.ago+1)*time.Second) })); err != nil {
			t.Fatal(err)
		}
	}
	// A finished job's time stands still: it has no start to tick from.
	if _, err := srv.db.UpdateJob(bg, jobs[0].ID, store.JobUpdate{Status: store.JobSuccess}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Reload(), waitText("#job-status", func(s string) bool { return strings.HasPrefix(s, "passed") })); err != nil {
		t.Fatal(err)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("time[data-since]").length`)); n != 0 {
		t.Errorf("a finished job's page has %d ticking times", n)
	}
}

// fitCheck lists, one a line, what keeps the page from fitting its window:
// the page scrolling sideways; an element reaching past the right edge that
// is not inside a container scrolling by itself (overflow-x auto or scroll,
// like the log); a commit SHA wrapped onto more than one line; and two
// parts of a row of a list (a build's branch and its author, say) drawn
// over each other. It takes the window's width: a mobile browser widens
// its viewport (window.innerWidth) to fit what overflows.
const fitCheck = `(function (w) {
	const bad = [];
	const show = e => e.outerHTML.slice(0, 160);
	if (window.innerWidth > w) {
		bad.push("the browser zoomed out to fit: its viewport is " + window.innerWidth + " px wide");
	}
	if (document.documentElement.scrollWidth > w) {
		bad.push("the page scrolls sideways: " + document.documentElement.scrollWidth + " px wide");
	}
	const scrolls = e => {
		for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
			const o = getComputedStyle(a).overflowX;
			if (o === "auto" || o === "scroll") return true;
		}
		return false;
	};
	for (const e of document.querySelectorAll("body *")) {
		if (e.getBoundingClientRect().right > w + 0.5 && !scrolls(e)) {
			bad.push("past the right edge: " + show(e));
		}
	}
	for (const e of [...document.querySelectorAll("code")].filter(e => /^[0-9a-f]{7,40}$/.test(e.textContent))) {
		const cs = getComputedStyle(e), line = parseFloat(cs.lineHeight) || 1.6 * parseFloat(cs.fontSize);
		if (e.getClientRects().length !== 1 || e.getBoundingClientRect().height > 1.5 * line) {
			bad.push("the SHA wraps: " + show(e));
		}
	}
	for (const li of document.querySelectorAll(".rows li")) {
		const parts = [...li.querySelectorAll("*")].filter(e => e.children.length === 0 && e.getClientRects().length);
		for (let i = 0; i < parts.length; i++) {
			for (let j = i + 1; j < parts.length; j++) {
				// Rect by rect: a part wrapped over two lines has a
				// bounding box covering both.
				const over = [...parts[i].getClientRects()].some(a => [...parts[j].getClientRects()].some(b =>
					Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5));
				if (over) {
					bad.push("drawn over each other: " + show(parts[i]) + " and " + show(parts[j]));
				}
			}
		}
	}
	return bad.slice(0, 8).join("\n");
})(%d)`

// Every page with a build in it, and the sign-in page, fits a 390-pixel
// phone and a 1280-pixel desktop: nothing sticks out sideways but inside
// the log, which scrolls by itself; the SHAs of the dashboard, the build
// list and the build stay on one line; no row draws its branch over its
// author.
func TestEveryPageFitsAPhoneAndADesktop(t *testing.T) {
	srv, ctx, p, jobs := browserBuild(t, "octocat/a-project-with-a-long-name", store.NewBuild{Ref: "refs/heads/feature/phone-layout",
		SHA: "3f786850e387550fdab836ed7e6dc881de23001b", Author: "Annabelle Lindqvist-Okonkwo",
		Message: "Make every page of the web interface fit the screen of a phone held upright"}, "unit tests", "lint")
	bg := context.Background()
	// One job finished with a log line far wider than any screen, one still
	// running (marked so: the runner, with nothing enqueued, leaves both alone).
	srv.db.UpdateJob(bg, jobs[0].ID, store.JobUpdate{Status: store.JobRunning})
	if _, err := srv.db.AppendLog(bg, jobs[0].ID, []byte("go test ./...\n"+strings.Repeat("x", 600)+"\nok\n"), false); err != nil {
		t.Fatal(err)
	}
	srv.db.UpdateJob(bg, jobs[0].ID, store.JobUpdate{Status: store.JobSuccess})
	srv.db.UpdateJob(bg, jobs[1].ID, store.JobUpdate{Status: store.JobRunning})

	pages := []string{"/", fmt.Sprintf("/projects/%d", p.ID), fmt.Sprintf("/projects/%d/builds/1", p.ID),
		fmt.Sprintf("/projects/%d/builds/1/jobs/%d", p.ID, jobs[0].ID), fmt.Sprintf("/projects/%d/builds/1/jobs/%d", p.ID, jobs[1].ID),
		fmt.Sprintf("/projects/%d/settings", p.ID), fmt.Sprintf("/projects/%d/hooks/new", p.ID), "/projects/new", "/account", "/login"}
	phoneShots := map[string]string{"/": "phone-dashboard.png", pages[1]: "phone-project.png", pages[2]: "phone-build.png"}
	for _, size := range []struct {
		name          string
		width, height int64
		opts          []chromedp.EmulateViewportOption
	}{{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}}, {"desktop", 1280, 800, nil}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, size.opts...)); err != nil {
			t.Fatal(err)
		}
		for _, path := range pages {
			if path == "/login" {
				// The sign-in page is seen signed out.
				if err := chromedp.Do(ctx, chromedp.Submit(chromedp.CSS(`.session form`)),
					waitText("h1", func(s string) bool { return s != "Projects" })); err != nil {
					t.Fatal(err)
				}
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.url+path), chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
				t.Fatal(err)
			}
			bad, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(fitCheck, size.width)))
			if err != nil {
				t.Fatal(err)
			}
			if bad != "" {
				t.Errorf("%s on a %s (%d px):\n%s", path, size.name, size.width, bad)
			}
			if shot := phoneShots[path]; shot != "" && size.name == "phone" {
				screenshot(t, ctx, shot)
			}
		}
		if err := browserSignIn(ctx, srv); err != nil {
			t.Fatal(err)
		}
	}
}
