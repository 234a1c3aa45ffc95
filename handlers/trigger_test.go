package handlers

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"

	"kozmic/internal/testrepo"
	"kozmic/store"
	"kozmic/views"
)

// trimmed is the text of the first element s selects, its spaces folded.
func trimmed(s *goquery.Selection) string { return strings.Join(strings.Fields(s.First().Text()), " ") }

// A build run by hand shows its commit's subject and author, as git has
// them, where a webhook's build shows its commit; who ran it is apart.
func TestManualBuildShowsCommitSubjectAndAuthorFromGit(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	localAdmin(t, s, "ann", "ann's password")
	a := newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	rp := testrepo.New(t, map[string]string{"README": "one"})
	rp.Git("commit", "-q", "--allow-empty", "--author", "Ben Hill <ben@example.com>", "-m", "Make the login page faster\n\nA body, not shown.")

	if res, _ := a.do("POST", "/projects/new", url.Values{"name": {"team/app"}, "git_url": {rp.Path}}); res.StatusCode != 303 {
		t.Fatalf("create project: %d", res.StatusCode)
	}
	p, err := s.db.ProjectByName(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	projectURL := fmt.Sprintf("/projects/%d", p.ID)
	if res, _ := a.do("POST", projectURL+"/builds", url.Values{"ref": {"main"}}); res.StatusCode != 303 {
		t.Fatalf("run main: %d", res.StatusCode)
	}

	const subject, author = "Make the login page faster", "Ben Hill"
	_, page := a.do("GET", projectURL+"/builds/1", nil)
	doc := parse(t, page)
	head := doc.Find("main section.panel").First()
	if got := trimmed(head.Find(".message")); got != subject {
		t.Errorf("build page message = %q, want %q", got, subject)
	}
	if got := trimmed(head.Find(".author")); got != author {
		t.Errorf("build page author = %q, want %q", got, author)
	}
	if got := trimmed(head.Find(".trigger")); got != "manual by ann" {
		t.Errorf("build page trigger = %q, want %q", got, "manual by ann")
	}
	if strings.Contains(page, "Run by") || strings.Contains(page, "A body") {
		t.Error("the build page shows who ran it as the commit's message, or the message's body")
	}

	_, page = a.do("GET", projectURL, nil)
	row := parse(t, page).Find(".builds li").First()
	if got := trimmed(row.Find(".message")); got != subject {
		t.Errorf("build list message = %q, want %q", got, subject)
	}
	if got := trimmed(row.Find(".meta")); !strings.HasPrefix(got, author+" · manual by ann") {
		t.Errorf("build list meta = %q, want the author, then how it started", got)
	}

	_, page = a.do("GET", "/", nil)
	row = parse(t, page).Find("#" + views.DashboardID + " .rows li").First()
	if got := trimmed(row.Find(".message")); got != subject {
		t.Errorf("dashboard message = %q, want %q", got, subject)
	}
	if got := trimmed(row.Find(".meta")); !strings.HasPrefix(got, author+" · manual by ann") {
		t.Errorf("dashboard meta = %q, want the author, then how it started", got)
	}
}

// Each build says how it was started and by whom, apart from its commit:
// a push, a pull request linked on GitHub, a build run by hand, and who
// re-ran its jobs.
func TestBuildShowsHowItWasStarted(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	b := newBrowser(t, s)
	b.signIn("/") // octocat, user 1
	octocat, err := s.db.UserByID(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: octocat.ID, Source: store.SourceGitHub, GitHubID: 551203987,
		FullName: "lanternfish/harbor-lights", HTTPSCloneURL: "https://github.com/lanternfish/harbor-lights.git", WebhookSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh\n"}); err != nil {
		t.Fatal(err)
	}
	for i, event := range []struct{ name, fixture string }{{"push", "push_with-new-branch.json"}, {"pull_request", "pull_request_opened.json"}} {
		if code, out := deliver(t, s, p.ID, event.name, readFixture(t, event.fixture), testSecret, "", fmt.Sprint("delivery-", i)); code != 201 {
			t.Fatalf("%s: %d %v", event.name, code, out)
		}
	}
	_, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: strings.Repeat("c", 40),
		Author: "Mira Okafor", Message: "Tidy up", Trigger: store.Trigger{Kind: store.TriggerManual, User: octocat.Login(), UserID: octocat.ID}})
	if err != nil {
		t.Fatal(err)
	}
	// The build run by hand failed; octocat re-runs it.
	moveJob(t, s, jobs[0].ID, store.JobFailure, store.CacheNone)
	buildURL := func(n int) string { return fmt.Sprintf("/projects/%d/builds/%d", p.ID, n) }
	if res, _ := b.do("POST", buildURL(3)+"/rerun", url.Values{}); res.StatusCode != 303 {
		t.Fatalf("re-run: %d", res.StatusCode)
	}

	prURL := s.github.WebURL().String() + "/lanternfish/harbor-lights/pull/7"
	for _, c := range []struct {
		n        int
		want     string
		linkText string // the link to the pull request, if any
	}{
		{1, "push by mira-okafor", ""},
		{2, "pull request #7 by mira-okafor", "pull request #7"},
		{3, "manual by octocat, re-run by octocat", ""},
	} {
		_, page := b.do("GET", buildURL(c.n), nil)
		tr := parse(t, page).Find("main section.panel .trigger").First()
		if got := trimmed(tr); got != c.want {
			t.Errorf("build %d: trigger %q, want %q", c.n, got, c.want)
		}
		link := tr.Find("a")
		if c.linkText == "" && link.Length() != 0 || c.linkText != "" && (trimmed(link) != c.linkText || link.AttrOr("href", "") != prURL) {
			t.Errorf("build %d: trigger links %q to %q", c.n, trimmed(link), link.AttrOr("href", ""))
		}
	}

	_, page := b.do("GET", fmt.Sprintf("/projects/%d", p.ID), nil)
	var listed []string
	parse(t, page).Find(".builds li .trigger").Each(func(_ int, tr *goquery.Selection) { listed = append(listed, trimmed(tr)) })
	if want := []string{"manual by octocat, re-run by octocat", "pull request #7 by mira-okafor", "push by mira-okafor"}; strings.Join(listed, "|") != strings.Join(want, "|") {
		t.Errorf("build list triggers = %q, want %q", listed, want)
	}
}
