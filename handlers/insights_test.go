package handlers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/store"
	"kozmic/views"
)

// branchRows lists the rows of a list of branches as "status name #build".
func branchRows(s *goquery.Selection) []string {
	var out []string
	s.Find("li").Each(func(_ int, li *goquery.Selection) {
		out = append(out, strings.TrimSpace(textOf(li.Find(".status"))+" "+textOf(li.Find("a.branch"))+" "+textOf(li.Find(".meta a"))))
	})
	return out
}

// chartBarsOf lists the chart's bars as "href label", the oldest first.
func chartBarsOf(doc *goquery.Document) []string {
	var out []string
	doc.Find("svg#" + views.ChartID + " a.chart-bar").Each(func(_ int, a *goquery.Selection) {
		out = append(out, attrOf(a, "href")+" "+textOf(a.Find("title")))
		if tip := textOf(a.Find("text")); tip != textOf(a.Find("title")) || attrOf(a, "aria-label") != tip {
			out = append(out, "label "+tip+" differs from title "+textOf(a.Find("title")))
		}
	})
	return out
}

// figuresOf reads the chart's figures as "term: value; term: value".
func figuresOf(doc *goquery.Document) string {
	var out []string
	doc.Find(".chart-figures dt").Each(func(_ int, dt *goquery.Selection) {
		out = append(out, textOf(dt)+": "+textOf(dt.Next()))
	})
	return strings.Join(out, "; ")
}

// The project page lists the default branch first, then the other
// branches, the most recently built first, and pull requests apart, each
// with its newest build's status in words and a link to the builds list
// of it; it charts the default branch's latest builds, each bar a link to
// its build labelled with its number, status and duration (none while it
// runs or waits), and says how many passed in the last 30 days. A branch
// chosen in the builds list's filter is charted instead; a project
// without builds shows no insights at all.
func TestProjectPageShowsBranchesAndChartsTheirBuilds(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	ctx := context.Background()
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	projectURL := fmt.Sprintf("/projects/%d", p.ID)

	doc, _ := fetchPage(t, owner, projectURL, 200)
	if n := doc.Find("#" + views.InsightsID + ", svg").Length(); n != 0 {
		t.Errorf("a project without builds shows %d insights", n)
	}

	sha := 0
	build := func(ref string, st store.JobStatus) store.Build {
		sha++
		b, _ := buildWithLog(t, s, p, ref, fmt.Sprintf("%040d", sha), "change", "", st)
		return b
	}
	pr := func(n int, title string, st store.JobStatus) {
		sha++
		_, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: fmt.Sprintf("refs/pull/%d/head", n), SHA: fmt.Sprintf("%040d", sha),
			Message: title, Trigger: store.Trigger{Kind: store.TriggerPullRequest, PR: n}, FromFork: true})
		if err != nil {
			t.Fatal(err)
		}
		moveJob(t, s, jobs[0].ID, st, store.CacheNone)
	}
	build("refs/heads/main", store.JobSuccess)    // 1
	build("refs/heads/main", store.JobFailure)    // 2
	build("refs/heads/feature", store.JobSuccess) // 3
	pr(7, "Add a <b>thing</b>", store.JobFailure) // 4
	build("refs/heads/main", store.JobSuccess)    // 5
	build("refs/heads/fix", store.JobError)       // 6
	build("refs/heads/main", store.JobRunning)    // 7
	build("refs/heads/main", store.JobEnqueued)   // 8
	if err := s.db.SetDefaultBranch(ctx, p.ID, "main"); err != nil {
		t.Fatal(err)
	}

	doc, body := fetchPage(t, owner, projectURL, 200)
	checkInert(t, "project with insights", doc, body)
	insights := doc.Find("#" + views.InsightsID)
	lists := insights.Find("ul.branch-list")
	if got := strings.Join(branchRows(lists.First()), ", "); got != "enqueued main #8, error fix #6, passed feature #3" {
		t.Errorf("branches: %s", got)
	}
	if tag := textOf(lists.First().Find("li").First().Find(".tag")); tag != "default" {
		t.Errorf("the first branch is tagged %q, want default", tag)
	}
	if got := attrOf(lists.First().Find("a.branch").Eq(1), "href"); got != projectURL+"?branch=fix" {
		t.Errorf("fix links to %q", got)
	}
	if got := strings.Join(branchRows(lists.Eq(1)), ", "); got != "failed pull request #7 #4" {
		t.Errorf("pull requests: %s", got)
	}
	if got, msg := attrOf(lists.Eq(1).Find("a.branch"), "href"), textOf(lists.Eq(1).Find(".message")); got != projectURL+"?branch="+url.QueryEscape("refs/pull/7/head") || msg != "Add a <b>thing</b>" {
		t.Errorf("pull request #7 links to %q, titled %q", got, msg)
	}
	if got := lists.First().Find("li").First().Find(".meta a"); attrOf(got, "href") != projectURL+"/builds/8" || got.Parent().Find("time[title]").Length() != 1 {
		t.Errorf("main's newest build links to %q, without its age", attrOf(got, "href"))
	}

	if got := textOf(insights.Find(".chart-panel h2")); got != "Latest builds of main" {
		t.Errorf("chart heading %q", got)
	}
	bars := chartBarsOf(doc)
	want := []string{projectURL + "/builds/1 #1 passed 0s", projectURL + "/builds/2 #2 failed 0s", projectURL + "/builds/5 #5 passed 0s",
		projectURL + "/builds/7 #7 running", projectURL + "/builds/8 #8 enqueued"}
	if strings.Join(bars, "\n") != strings.Join(want, "\n") {
		t.Errorf("bars:\n%s\nwant:\n%s", strings.Join(bars, "\n"), strings.Join(want, "\n"))
	}
	classes := doc.Find("svg#" + views.ChartID + " a.chart-bar rect.bar").Map(func(_ int, r *goquery.Selection) string { return attrOf(r, "class") })
	if got := strings.Join(classes, ","); got != "bar bar-success,bar bar-failure,bar bar-success,bar bar-running,bar bar-enqueued" {
		t.Errorf("bar classes %s", got)
	}
	if got := attrOf(doc.Find("svg#"+views.ChartID), "viewBox"); got != "0 0 500 170" {
		t.Errorf("viewBox %q", got)
	}
	if got := textOf(insights.Find(".chart-figures dd").First()); got != "66% 2 of 3 passed" {
		t.Errorf("success rate %q", got)
	}
	if got := textOf(insights.Find(".chart-figures dd").Eq(1)); got != "0s of 3 passed or failed" {
		t.Errorf("median %q", got)
	}
	if got := textOf(insights.Find(".chart-key")); !strings.Contains(got, "passed failed error running or enqueued") {
		t.Errorf("key %q", got)
	}

	// A branch chosen in the filter, or by its link, is charted.
	for _, tt := range []struct {
		query, heading string
		bars           []string
	}{
		{"?branch=feature", "Latest builds of feature", []string{projectURL + "/builds/3 #3 passed 0s"}},
		{"?branch=fix", "Latest builds of fix", []string{projectURL + "/builds/6 #6 error 0s"}},
		{"?branch=" + url.QueryEscape("refs/pull/7/head"), "Latest builds of pull request #7", []string{projectURL + "/builds/4 #4 failed 0s"}},
		{"?branch=nothing", "Latest builds of nothing", nil},
	} {
		doc, _ := fetchPage(t, owner, projectURL+tt.query, 200)
		if got := textOf(doc.Find(".chart-panel h2")); got != tt.heading {
			t.Errorf("%s: chart heading %q", tt.query, got)
		}
		if got := chartBarsOf(doc); strings.Join(got, "\n") != strings.Join(tt.bars, "\n") {
			t.Errorf("%s: bars %q, want %q", tt.query, got, tt.bars)
		}
		if tt.bars == nil {
			if got := textOf(doc.Find(".chart-panel p.muted")); got != "No builds of nothing yet." {
				t.Errorf("%s: empty chart says %q", tt.query, got)
			}
		}
	}
	// fix's figures: an error is finished, not passed, and takes no part in the median.
	doc, _ = fetchPage(t, owner, projectURL+"?branch=fix", 200)
	if got := figuresOf(doc); got != "Success rate, 30 days: 0% 0 of 1 passed; Median duration, 30 days: – no build passed or failed" {
		t.Errorf("fix's figures %q", got)
	}

	// 31 days on, the builds are still charted but count for nothing.
	s.Handler.now = func() time.Time { return time.Now().Add(31 * 24 * time.Hour) }
	doc, _ = fetchPage(t, owner, projectURL, 200)
	if n := len(chartBarsOf(doc)); n != 5 {
		t.Errorf("31 days on: %d bars", n)
	}
	if got := figuresOf(doc); got != "Success rate, 30 days: – no build finished; Median duration, 30 days: – no build passed or failed" {
		t.Errorf("31 days on: figures %q", got)
	}
}

// A project whose default branch is unknown charts its most recently built
// branch; one with more branches or pull requests than the page lists
// links to the builds list for the rest.
func TestProjectPageListsTwentyBranchesAndLinksToTheRest(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	p := ownedProject(t, s, owner, "octocat/Hello-World", 1296269)
	projectURL := fmt.Sprintf("/projects/%d", p.ID)
	for i := 1; i <= insightsBranches+1; i++ {
		buildWithLog(t, s, p, fmt.Sprintf("refs/heads/b%d", i), fmt.Sprintf("%040d", i), "change", "", store.JobSuccess)
	}
	doc, _ := fetchPage(t, owner, projectURL, 200)
	lists := doc.Find("#" + views.InsightsID + " ul.branch-list")
	rows := branchRows(lists.First())
	if len(rows) != insightsBranches || rows[0] != "passed b21 #21" || rows[insightsBranches-1] != "passed b2 #2" {
		t.Errorf("%d branches, from %q to %q", len(rows), rows[0], rows[len(rows)-1])
	}
	if more := doc.Find(`a[href="` + projectURL + `?event=push"]`); textOf(more) != "More branches in the builds list" {
		t.Errorf("more branches: %q", textOf(more))
	}
	if got := textOf(doc.Find("#" + views.InsightsID + " .branches p.muted")); got != "No pull request built yet." {
		t.Errorf("no pull requests: %q", got)
	}
	if got := textOf(doc.Find(".chart-panel h2")); got != "Latest builds of b21" {
		t.Errorf("without a default branch the chart is of %q", got)
	}
}

// The chart's bars are links that reach their build by a click and by the
// keyboard (Tab, then Enter), and show their build's number, status and
// duration when pointed at or focused; the page with its chart fits a
// 390-pixel phone and a 1280-pixel desktop. The builds ran for real, for
// different times, some failing, one still running.
func TestChartBarsReachTheirBuildsByClickAndKeyboard(t *testing.T) {
	srv, ctx := signedInBrowser(t)
	bg := context.Background()
	repo := testrepo.New(t, map[string]string{"README": "0\n"})
	p, err := srv.db.CreateProject(bg, store.NewProject{OwnerID: 1, Source: store.SourceGit, FullName: "octocat/insights",
		GitURL: repo.Path, WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	// Builds sleep 0 to 2 seconds, every fourth fails, and the last runs
	// until it is canceled.
	const builds = 10
	script := fmt.Sprintf("#!/bin/sh\n[ \"$KOZMIC_BUILD_NUMBER\" = %d ] && exec sleep 600\nsleep $((KOZMIC_BUILD_NUMBER %% 3))\n[ $((KOZMIC_BUILD_NUMBER %% 4)) -ne 0 ]\n", builds)
	if _, err := srv.db.CreateHook(bg, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: testimage.Name, BuildScript: script}); err != nil {
		t.Fatal(err)
	}
	if err := srv.db.SetDefaultBranch(bg, p.ID, "main"); err != nil {
		t.Fatal(err)
	}
	var last []store.Job
	for i := 1; i <= builds; i++ {
		ref := "refs/heads/main"
		if i == 3 {
			ref = "refs/heads/feature/chart"
		}
		commit := repo.Commit(map[string]string{"README": fmt.Sprintln(i)}, nil)
		if _, last, err = srv.db.CreateBuild(bg, store.NewBuild{ProjectID: p.ID, Ref: ref, SHA: commit, Author: "Ann", Message: fmt.Sprintf("Change %d", i)}); err != nil {
			t.Fatal(err)
		}
		srv.jobs.Enqueued()
	}
	defer srv.jobs.Cancel(bg, last[0].ID, "the test")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		bs, err := srv.db.Builds(bg, p.ID, store.BuildQuery{})
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, b := range bs {
			if b.Status.Finished() || b.Number == builds && b.Status == store.BuildPending {
				done++
			}
		}
		if done == builds {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the builds did not run: %d of %d done\nserver log:\n%s", done, builds, srv.logs)
		}
		time.Sleep(200 * time.Millisecond)
	}

	projectURL := fmt.Sprintf("%s/projects/%d", srv.url, p.ID)
	buildNumber := func(tab context.Context) string {
		var h1 string
		err := chromedp.Do(tab, waitText("h1", func(s string) bool { h1 = s; return strings.HasPrefix(s, "Build #") }))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(h1, "Build #")
	}
	// barAt scrolls the chart's i-th bar into view and returns its middle.
	barAt := func(i int) (float64, float64) {
		xy, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](fmt.Sprintf(`(function () {
			var hit = document.querySelectorAll("#%s a.chart-bar .bar-hit")[%d];
			hit.scrollIntoView({block: "center"});
			var r = hit.getBoundingClientRect();
			return [r.left + r.width / 2, r.top + r.height / 2]; })()`, views.ChartID, i)))
		if err != nil || len(xy) != 2 {
			t.Fatalf("bar %d: %v", i, err)
		}
		return xy[0], xy[1]
	}
	// shownTip is the label of the chart's bar shown now, "" with none.
	shownTip := func() string {
		tip, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll(".chart-tip")].filter(g => getComputedStyle(g).visibility === "visible").map(g => g.textContent.trim()).join("|")`))
		return tip
	}
	for _, size := range []struct {
		name          string
		width, height int64
		opts          []chromedp.EmulateViewportOption
		shot          string
	}{{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}, "phone-project-insights.png"},
		{"desktop", 1280, 800, nil, "project-insights.png"}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, size.opts...),
			chromedp.Navigate(projectURL), chromedp.WaitVisible(chromedp.CSS("#"+views.ChartID))); err != nil {
			t.Fatal(err)
		}
		bad, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(fitCheck, size.width)))
		if err != nil {
			t.Fatal(err)
		}
		if bad != "" {
			t.Errorf("the project page with its chart on a %s (%d px):\n%s", size.name, size.width, bad)
		}
		n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#`+views.ChartID+` a.chart-bar").length`))
		if n != builds-1 {
			t.Fatalf("%s: %d bars, want the %d builds of main", size.name, n, builds-1)
		}
		if tip := shownTip(); tip != "" {
			t.Errorf("%s: a label shows unasked: %q", size.name, tip)
		}

		// Pointed at, the fourth bar (build #5: main's builds are 1, 2, 4, 5, …) shows its label.
		x, y := barAt(3)
		if err := chromedp.Do(ctx, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, x, y)); err != nil {
			t.Fatal(err)
		}
		if tip := shownTip(); !strings.HasPrefix(tip, "#5 passed ") || !durationRE.MatchString(strings.TrimPrefix(tip, "#5 passed ")) {
			t.Errorf("%s: pointed at, bar #5 shows %q", size.name, tip)
		}
		if size.name == "desktop" {
			screenshot(t, ctx, size.shot)
		}
		// Clicked, it opens its build.
		if err := chromedp.Do(ctx, chromedp.MouseClickXY(x, y)); err != nil {
			t.Fatal(err)
		}
		if got := buildNumber(ctx); got != "5" {
			t.Errorf("%s: a click on bar #5 opened build %s", size.name, got)
		}

		// By keyboard: Tab from the chart's heading (made a starting point
		// here) reaches the first bar, which shows its label; Tab again the
		// next; Enter opens it.
		if err := chromedp.Do(ctx, chromedp.Navigate(projectURL), chromedp.WaitVisible(chromedp.CSS("#"+views.ChartID)),
			chromedp.Evaluate[chromedp.Void](`(function () { var h = document.querySelector(".chart-panel h2"); h.tabIndex = -1; h.focus(); })()`),
			chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		focused, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.getAttribute("aria-label") || document.activeElement.outerHTML.slice(0, 120)`))
		if !strings.HasPrefix(focused, "#1 ") || !strings.HasPrefix(shownTip(), "#1 ") {
			t.Errorf("%s: Tab focused %q showing %q, want bar #1 with its label", size.name, focused, shownTip())
		}
		if size.name == "phone" {
			screenshot(t, ctx, size.shot)
		}
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		if tip := shownTip(); !strings.HasPrefix(tip, "#2 passed ") {
			t.Errorf("%s: the second Tab shows %q, want bar #2's", size.name, tip)
		}
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
			t.Fatal(err)
		}
		if got := buildNumber(ctx); got != "2" {
			t.Errorf("%s: Enter on bar #2 opened build %s", size.name, got)
		}
	}
	// The running build is a bar without a duration.
	if err := chromedp.Do(ctx, chromedp.Navigate(projectURL), chromedp.WaitVisible(chromedp.CSS("#"+views.ChartID))); err != nil {
		t.Fatal(err)
	}
	if tip, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("#`+views.ChartID+` a.chart-bar title")].pop().textContent`)); tip != fmt.Sprintf("#%d running", builds) {
		t.Errorf("the running build's bar says %q", tip)
	}
}

// BenchmarkProjectPageInsights renders a project's page, with its chart,
// figures, branches and pull requests, for a project with 100,000 builds
// through the real handler, session and store: six in ten of its default
// branch, three in ten of 300 other branches, one in ten of 2,000 pull
// requests; their jobs finished (passed, failed or errored) but for the
// newest two, running and queued. It reports ms/page.
func BenchmarkProjectPageInsights(b *testing.B) {
	s, br, p := benchProject(b)
	ctx := context.Background()
	const builds = 100_000
	jobs := make([]int64, builds)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < builds; i += 4 {
				nb := store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: fmt.Sprintf("%040x", i), Author: "Ann", Message: "a change"}
				switch i % 10 {
				case 6, 7, 8:
					nb.Ref = fmt.Sprintf("refs/heads/feature-%d", i%300)
				case 9:
					n := i/10%2000 + 1
					nb.Ref, nb.Trigger, nb.FromFork = fmt.Sprintf("refs/pull/%d/head", n), store.Trigger{Kind: store.TriggerPullRequest, PR: n}, true
				}
				_, js, err := s.db.CreateBuild(ctx, nb)
				if err != nil {
					b.Error(err)
					return
				}
				jobs[i] = js[0].ID
			}
		})
	}
	wg.Wait()
	if err := s.db.SetDefaultBranch(ctx, p.ID, "main"); err != nil {
		b.Fatal(err)
	}
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < builds-1; i += 4 {
				st := store.JobSuccess
				switch {
				case i == builds-2:
					st = store.JobRunning
				case i%7 == 0:
					st = store.JobFailure
				case i%13 == 0:
					st = store.JobError
				}
				steps := []store.JobStatus{store.JobRunning}
				if st != store.JobRunning {
					steps = append(steps, st)
				}
				for _, next := range steps {
					if _, err := s.db.UpdateJob(ctx, jobs[i], store.JobUpdate{Status: next}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	path := fmt.Sprintf("/projects/%d", p.ID)
	b.ResetTimer()
	for b.Loop() {
		res, page := br.do("GET", path, nil)
		if res.StatusCode != 200 || strings.Count(page, `class="chart-bar"`) != chartBuilds || !strings.Contains(page, "More pull requests") {
			b.Fatalf("status %d", res.StatusCode)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/page")
}
