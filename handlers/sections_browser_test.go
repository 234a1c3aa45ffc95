package handlers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"kozmic/internal/testimage"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

// sectionsScript is the build script of the browser's job: a few seconds
// of numbered lines, so that the page sees its section running.
const sectionsScript = `#!/bin/sh
for i in $(seq 1 40); do
  echo "line $i of the build"
  sleep 0.1
done
`

// A running job's page opens the running step's section and its lines
// arrive in it, the steps before it folded; once the job has passed, its
// sections are all folded, load nothing until opened, and open and close
// by keyboard and by click; the list beside the log links to the other
// job of the build. At a phone's width and a desktop's, the page fits.
func TestBrowserJobSections(t *testing.T) {
	srv, ctx := signedInBrowser(t)
	bg := context.Background()
	repo := testrepo.New(t, map[string]string{"deps.txt": "lib 1\n"})
	p, err := srv.db.CreateProject(bg, store.NewProject{OwnerID: 1, Source: store.SourceGit, FullName: "octocat/sections",
		GitURL: repo.Path, WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, hk := range []store.Hook{
		{Title: "build", InstallScript: "#!/bin/sh\necho installing deps\n", TrackedFiles: []string{"deps.txt"}, BuildScript: sectionsScript},
		{Title: "lint", BuildScript: "#!/bin/sh\necho lint is clean\n"},
	} {
		hk.ProjectID, hk.DockerImage = p.ID, testimage.Name
		if _, err := srv.db.CreateHook(bg, hk); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if _, err := srv.jobs.ClearCache(context.Background(), p.ID); err != nil {
			t.Errorf("clear the install cache: %v", err)
		}
	})
	b, jobs, err := srv.db.CreateBuild(bg, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: repo.Git("rev-parse", "HEAD"), Message: "Sections"})
	if err != nil {
		t.Fatal(err)
	}
	build, lint := jobs[0], jobs[1]
	jobURL := fmt.Sprintf("%s/projects/%d/builds/%d/jobs/%d", srv.url, p.ID, b.Number, build.ID)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(jobURL)); err != nil {
		t.Fatal(err)
	}
	srv.jobs.Enqueued()

	// Live: the build script's section is open and its lines come into it.
	const last = "#log > details.log-section:last-of-type"
	if err := chromedp.Do(ctx, waitText(last, func(s string) bool { return strings.Contains(s, "Build script") && strings.Contains(s, "line 5 of") })); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, srv.logs)
	}
	state := func() string {
		s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll("#log > details")).map(function (d) {
			return d.querySelector(".log-section-name").textContent + (d.open ? " open" : " closed"); }).join(", ")`))
		return s
	}
	if got := state(); got != "Fetch closed, Image closed, Install closed, Build script open" {
		t.Errorf("while the build script runs, the sections are: %s", got)
	}
	if early, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(last))); strings.Contains(early, "line 40 of") {
		t.Fatal("the build script's lines were there at once: they did not arrive live")
	}
	if err := chromedp.Do(ctx, waitText("#job-status", func(s string) bool { return strings.Contains(s, "passed") }),
		waitText(last, func(s string) bool { return strings.Contains(s, "line 40 of") })); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, srv.logs)
	}
	if got := state(); got != "Fetch closed, Image closed, Install closed, Build script open" {
		t.Errorf("when the job has passed, the live page's sections are: %s", got)
	}
	checkLineNumbers(t, ctx)

	// Finished: every section passed, so all are folded and no line shows
	// (each section's first page comes with the page, for reading without
	// scripts).
	if err := chromedp.Do(ctx, chromedp.Navigate(jobURL), chromedp.WaitVisible(chromedp.CSS("#log > details"))); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "Fetch closed, Image closed, Install closed, Build script closed" {
		t.Errorf("the passed job's sections are: %s", got)
	}
	lines := func() int {
		n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`Array.from(document.querySelectorAll("#log p")).filter(function (p) { return p.checkVisibility(); }).length`))
		return n
	}
	if n := lines(); n != 0 {
		t.Errorf("%d lines show with every section folded", n)
	}
	// By keyboard: Tab reaches the section's head, Enter opens it and its lines show.
	head := last + " > summary"
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(head)), chromedp.KeyEvent("\r"),
		waitText(last, func(s string) bool { return strings.Contains(s, "line 40 of the build") })); err != nil {
		t.Fatal(err)
	}
	if got := state(); !strings.HasSuffix(got, "Build script open") {
		t.Errorf("after Enter on its head: %s", got)
	}
	if n := lines(); n < 40 || n > 60 {
		t.Errorf("%d lines show with the build script's section open, want its own", n)
	}
	checkLineNumbers(t, ctx)
	// By click: it closes, and opens again.
	for _, want := range []string{"closed", "open"} {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(head))); err != nil {
			t.Fatal(err)
		}
		if got := state(); !strings.HasSuffix(got, "Build script "+want) {
			t.Errorf("after a click on its head, the build script's section should be %s: %s", want, got)
		}
	}

	// A link to a line of a folded section opens the section at the line.
	if err := chromedp.Do(ctx, chromedp.Navigate(jobURL+"?from=link#L20"), chromedp.WaitVisible(chromedp.ID("L20"))); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "Fetch closed, Image closed, Install closed, Build script open" {
		t.Errorf("after a link to line 20, the sections are: %s", got)
	}

	// The build's jobs beside the log: this one marked, the other a link.
	current, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#job-list a[aria-current=page]").textContent`))
	if !strings.Contains(current, "build") || !strings.Contains(current, "passed") {
		t.Errorf("the current job in the list reads %q", current)
	}
	for _, size := range []struct {
		name          string
		width, height int64
		opts          []chromedp.EmulateViewportOption
	}{{"phone", 390, 844, []chromedp.EmulateViewportOption{chromedp.EmulateMobile}}, {"desktop", 1280, 800, nil}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, size.opts...), chromedp.Navigate(jobURL+"?viewport="+size.name),
			chromedp.WaitVisible(chromedp.CSS(head)), chromedp.Click(chromedp.CSS(head)),
			waitText(last, func(s string) bool { return strings.Contains(s, "line 40 of the build") })); err != nil {
			t.Fatal(err)
		}
		if bad, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(fitCheck, size.width))); err != nil || bad != "" {
			t.Errorf("the job page on a %s (%d px): %v\n%s", size.name, size.width, err, bad)
		}
		shot := "job-sections.png"
		if size.name == "phone" {
			shot = "phone-job-sections.png"
		}
		screenshot(t, ctx, shot)
	}
	lintURL := fmt.Sprintf("/projects/%d/builds/%d/jobs/%d", p.ID, b.Number, lint.ID)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#job-list a[href="`+lintURL+`"]`)),
		waitText("h1", func(s string) bool { return s == "lint" })); err != nil {
		t.Fatal(err)
	}
	if cur, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#job-list a[aria-current=page]").getAttribute("href")`)); cur != lintURL {
		t.Errorf("on the lint job's page, the list marks %q", cur)
	}
}
