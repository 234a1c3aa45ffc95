package handlers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/store"
	"kozmic/views"
)

// foldedLog is a finished log whose outer group spans two pages (a page
// is logPageLines lines) and holds a nested group with an error in it.
func foldedLog() string {
	var b strings.Builder
	b.WriteString("start\n::group::Outer\n") // L1, L2
	for i := 3; i < 1000; i++ {
		fmt.Fprintf(&b, "outer line %d\n", i)
	}
	b.WriteString("::group::Inner\n") // L1000
	for i := 1001; i < 1200; i++ {
		fmt.Fprintf(&b, "inner line %d\n", i)
	}
	b.WriteString("::error file=app.go,line=12::Broken inside inner\n::endgroup::\n::endgroup::\n") // L1200–L1202
	b.WriteString("::warning::After the groups\ndone\n")                                            // L1203, L1204
	return b.String()
}

// The groups of a finished log start folded, across pages; a header opens
// and closes by click and by keyboard, nested groups keep their own state,
// and an annotation's link opens the groups around its line and shows it.
// A live log keeps the group it writes into open and folds the ones ended.
// At a phone's size and a desktop's, both fitting.
func TestBrowserFoldsGroupsAndLinksAnnotations(t *testing.T) {
	srv, ctx, p, jobs := browserBuild(t, "octocat/groups", store.NewBuild{Ref: "refs/heads/main", SHA: strings.Repeat("b", 40), Message: "Groups"}, "groups")
	bg := context.Background()
	job := jobs[0].ID
	// Marked running before its log is written, so the runner leaves it alone.
	srv.db.UpdateJob(bg, job, store.JobUpdate{Status: store.JobRunning})
	if _, err := srv.db.AppendLog(bg, job, []byte(foldedLog()), false); err != nil {
		t.Fatal(err)
	}
	if err := srv.db.AddAnnotations(bg, job, []store.Annotation{
		{LogLine: 1200, Level: store.AnnotationError, File: "app.go", Line: 12, Message: "Broken inside inner"},
		{LogLine: 1203, Level: store.AnnotationWarning, Message: "After the groups"},
	}, store.AnnotationCounts{Errors: 1, Warnings: 1}); err != nil {
		t.Fatal(err)
	}
	srv.db.UpdateJob(bg, job, store.JobUpdate{Status: store.JobFailure})
	jobURL := fmt.Sprintf("%s/projects/%d/builds/1/jobs/%d", srv.url, p.ID, job)

	// expect waits until the JavaScript condition cond holds on the page,
	// failing with it if it does not within 10 seconds. In cond, shown(id)
	// says the line is on the page and drawn, open(id) that the header is
	// open, and group(n) is the nth header.
	expect := func(tab context.Context, where, cond string) bool {
		t.Helper()
		const helpers = `var shown = function (id) { var e = document.getElementById(id); return !!e && e.getBoundingClientRect().height > 0 && !e.classList.contains("folded"); };
			var open = function (id) { return document.getElementById(id).getAttribute("aria-expanded") === "true"; };
			var group = function (n) { return document.querySelectorAll("#log p.group-start")[n]; };`
		ok, err := chromedp.Run(tab, chromedp.Poll[bool]("(function () { "+helpers+" return "+cond+"; })()", chromedp.WithPollingTimeout(10*time.Second)))
		if err != nil || !ok {
			t.Errorf("%s: not so: %s (%v)", where, cond, err)
			return false
		}
		return true
	}
	for _, size := range []struct {
		name          string
		width, height int64
		opts          []chromedp.EmulateViewportOption
		shot          string
	}{{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}, "phone-job-annotations.png"}, {"desktop", 1280, 800, nil, "job-annotations.png"}} {
		tab, cancel := chromedp.NewContext(ctx)
		where := size.name
		// The build page counts the job's annotations, linking to its list.
		if err := chromedp.Do(tab, chromedp.EmulateViewport(size.width, size.height, size.opts...),
			chromedp.Navigate(fmt.Sprintf("%s/projects/%d/builds/1", srv.url, p.ID)),
			waitText("#"+views.JobsTableID+" a.annotation-counts", func(s string) bool { return s == "✖\uFE0E 1 error ⚠\uFE0E 1 warning" })); err != nil {
			t.Fatal(err)
		}
		if bad, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf(fitCheck, size.width))); err != nil || bad != "" {
			t.Errorf("%s: the build page does not fit: %s %v", where, bad, err)
		}
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#"+views.JobsTableID+" a.annotation-counts")), chromedp.WaitReady(chromedp.ID("L1"))); err != nil {
			t.Fatal(err)
		}
		expect(tab, where+", from the build page", `location.href === "`+jobURL+`#`+views.AnnotationsID+`" && document.getElementById("`+views.AnnotationsID+`").getBoundingClientRect().top < window.innerHeight`)
		// The outer group folded, the page after it loads by itself.
		if !expect(tab, where+", loaded", `!open("L2") && !open("L1000") && shown("L2") && !shown("L3") && !shown("L999") && !shown("L1000") && !shown("L1200")
			&& shown("L1203") && shown("L1204") && document.getElementById("L2").tabIndex === 0 && document.getElementById("L2").getAttribute("role") === "button"`) {
			t.FailNow()
		}
		checkLineNumbers(t, tab)
		if bad, err := chromedp.Run(tab, chromedp.Evaluate[string](fmt.Sprintf(fitCheck, size.width))); err != nil || bad != "" {
			t.Errorf("%s: the job page does not fit: %s %v", where, bad, err)
		}
		screenshot(t, tab, size.shot)

		// A click opens the outer group: its lines show, the inner group stays folded.
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS("#L2 .group-title"))); err != nil {
			t.Fatal(err)
		}
		expect(tab, where+", outer clicked", `open("L2") && shown("L3") && shown("L999") && shown("L1000") && !open("L1000") && !shown("L1001") && !shown("L1200") && !shown("L1202")`)
		// The keyboard: Tab from the outer header reaches the inner one; Enter opens it, Space folds it again.
		if err := chromedp.Do(tab, chromedp.Focus(chromedp.ID("L2")), chromedp.KeyEvent("\t")); err != nil {
			t.Fatal(err)
		}
		expect(tab, where+", tabbed", `document.activeElement === document.getElementById("L1000")`)
		if err := chromedp.Do(tab, chromedp.KeyEvent("\r")); err != nil {
			t.Fatal(err)
		}
		expect(tab, where+", inner opened by Enter", `open("L1000") && shown("L1001") && shown("L1200")`)
		if err := chromedp.Do(tab, chromedp.KeyEvent(" ")); err != nil {
			t.Fatal(err)
		}
		expect(tab, where+", inner folded by Space", `!open("L1000") && !shown("L1001") && shown("L1000")`)
		// Folding the outer group hides the inner one; opening it again finds the inner one folded still.
		if err := chromedp.Do(tab, chromedp.Focus(chromedp.ID("L2")), chromedp.KeyEvent("\r")); err != nil {
			t.Fatal(err)
		}
		expect(tab, where+", outer folded by Enter", `!open("L2") && !shown("L3") && !shown("L1000") && shown("L1203")`)

		// The error's link in the list: the job page at the page holding its
		// line (which starts inside the groups, whose headers are on the page
		// before), the line shown.
		link := fmt.Sprintf(`#%s a[href$="?line=1200#L1200"]`, views.AnnotationsID)
		if err := chromedp.Do(tab, chromedp.Click(chromedp.CSS(link)),
			// The link to the lines before it is the new page's alone.
			chromedp.WaitReady(chromedp.CSS("#log ."+views.LogEarlierClass))); err != nil {
			t.Fatal(err)
		}
		expect(tab, where+", linked", `location.hash === "#L1200" && shown("L1200")
			&& (function (r) { return r.top >= 0 && r.bottom <= window.innerHeight; })(document.getElementById("L1200").getBoundingClientRect())`)
		checkLineNumbers(t, tab)
		cancel()
	}

	// A live log: the ended group folds, the one being written stays open;
	// at its end the list of annotations shows the ones it printed.
	repo := testrepo.New(t, nil)
	live, err := srv.db.CreateProject(bg, store.NewProject{OwnerID: 1, Source: store.SourceGit, FullName: "octocat/live-groups",
		GitURL: repo.Path, WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.db.CreateHook(bg, store.Hook{ProjectID: live.ID, Title: "live", DockerImage: testimage.Name,
		BuildScript: "#!/bin/sh\necho '::warning::live warning'\necho '::group::Setup'\necho 'setting up'\necho '::endgroup::'\necho '::group::Tests'\necho 'tests running'\n" +
			"while true; do sleep 1; done\n"}); err != nil {
		t.Fatal(err)
	}
	_, liveJobs, err := srv.db.CreateBuild(bg, store.NewBuild{ProjectID: live.ID, Ref: "refs/heads/main", SHA: repo.Git("rev-parse", "HEAD")})
	if err != nil {
		t.Fatal(err)
	}
	srv.jobs.Enqueued()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(fmt.Sprintf("%s/projects/%d/builds/1/jobs/%d", srv.url, live.ID, liveJobs[0].ID)),
		waitText("#log", func(s string) bool { return strings.Contains(s, "tests running") })); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, srv.logs)
	}
	expect(ctx, "live", `group(0).textContent === "Setup" && group(0).getAttribute("aria-expanded") === "false" && group(1).textContent === "Tests" && group(1).getAttribute("aria-expanded") === "true"
		&& Array.from(document.querySelectorAll("#log p.folded")).map(function (l) { return l.textContent + "|" + l.className; }).join() === "setting up|folded,|group-end folded"`)
	if err := srv.jobs.Cancel(bg, liveJobs[0].ID, "test"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, waitText("#"+views.AnnotationsID+" li", func(s string) bool { return strings.Contains(s, "warning live warning") })); err != nil {
		t.Error(err)
	}
}
