package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"

	"kozmic/store"
)

// badgeWord is the word a badge reads, fetched as anyone on the internet.
func badgeWord(t *testing.T, anon *browser, path string) string {
	t.Helper()
	res, body := anon.do("GET", path, nil)
	if res.StatusCode != 200 {
		t.Fatalf("%s: %d", path, res.StatusCode)
	}
	for _, w := range []string{"passing", "failing", "error", "running", "unknown"} {
		if strings.Contains(body, ">"+w+"<") {
			return w
		}
	}
	t.Fatalf("%s: no word in %q", path, body)
	return ""
}

// finishedBuild makes a build of nb with one job that ends as st.
func finishedBuild(t *testing.T, s *testServer, nb store.NewBuild, st store.JobStatus) store.Build {
	t.Helper()
	ctx := context.Background()
	b, jobs, err := s.db.CreateBuild(ctx, nb)
	if err != nil {
		t.Fatal(err)
	}
	for _, next := range []store.JobStatus{store.JobRunning, st} {
		if _, err := s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: next}); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// withDefaultBranch returns a webhook body whose repository says branch is
// its default.
func withDefaultBranch(t *testing.T, body []byte, branch string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m["repository"].(map[string]any)["default_branch"] = branch
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBadgeWithoutRefShowsDefaultBranch(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	localAdmin(t, s, "ann", "ann's password")
	a := newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	work, _ := gitRepo(t, t.TempDir(), false)
	// HEAD names trunk, so that the default branch is no guess of main.
	if out, err := exec.Command("git", "-C", work, "checkout", "-q", "-b", "trunk").CombinedOutput(); err != nil {
		t.Fatalf("git checkout: %v\n%s", err, out)
	}

	res, _ := a.do("POST", "/projects/new", url.Values{"name": {"ann/app"}, "git_url": {work}, "public": {"1"}})
	p, err := s.db.ProjectByName(ctx, "ann/app")
	if res.StatusCode != 303 || err != nil || p.DefaultBranch != "trunk" {
		t.Fatalf("create: %d, default branch %q, %v; want trunk, which HEAD names", res.StatusCode, p.DefaultBranch, err)
	}
	_, page := a.do("GET", fmt.Sprintf("/projects/%d", p.ID), nil)
	if got := parse(t, page).Find("main").Text(); !strings.Contains(strings.Join(strings.Fields(got), " "),
		"The badge shows the newest build of the default branch, trunk; pull requests never count.") {
		t.Errorf("the project page does not say which branch the badge shows:\n%s", got)
	}

	anon := newBrowser(t, s)
	const badge = "/badges/ann/app.svg"
	if w := badgeWord(t, anon, badge); w != "unknown" {
		t.Errorf("before any build: %s, want unknown", w)
	}
	buildWithLog(t, s, p, "refs/heads/trunk", "a1", "m", "", store.JobSuccess)
	if w := badgeWord(t, anon, badge); w != "passing" {
		t.Errorf("after trunk passed: %s, want passing", w)
	}
	// Later a pull request, from a fork, and another branch fail.
	finishedBuild(t, s, store.NewBuild{ProjectID: p.ID, Ref: "refs/pull/1/head", SHA: "a2", FromFork: true}, store.JobFailure)
	finishedBuild(t, s, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/dev", SHA: "a3"}, store.JobFailure)
	if w := badgeWord(t, anon, badge); w != "passing" {
		t.Errorf("after a failing pull request and dev: %s, want trunk's passing", w)
	}
	if w := badgeWord(t, anon, badge+"?ref=dev"); w != "failing" {
		t.Errorf("?ref=dev: %s, want failing", w)
	}

	// The git server says the default branch is dev now: a signed webhook's word counts.
	secret, err := s.db.WebhookSecret(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	body := withDefaultBranch(t, readFixture(t, "push_with-new-branch.json"), "dev")
	if code, out := deliver(t, s, p.ID, "push", body, secret, "", "moved-default"); code != 201 {
		t.Fatalf("push: %d %v", code, out)
	}
	if p, _ = s.db.ProjectByID(ctx, p.ID); p.DefaultBranch != "dev" {
		t.Errorf("after the webhook: default branch %q, want dev", p.DefaultBranch)
	}
	if w := badgeWord(t, anon, badge); w != "failing" {
		t.Errorf("with dev the default branch: %s, want dev's failing", w)
	}
	// A forged one changes nothing.
	forged := withDefaultBranch(t, readFixture(t, "push_with-new-branch.json"), "trunk")
	if code, _ := deliver(t, s, p.ID, "push", forged, "not the secret", "", "forged"); code != 401 {
		t.Errorf("forged push: %d, want 401", code)
	}
	if p, _ = s.db.ProjectByID(ctx, p.ID); p.DefaultBranch != "dev" {
		t.Errorf("after a forged webhook: default branch %q, want dev", p.DefaultBranch)
	}
}

func TestPullRequestBuildsNeverCountForBranchBadge(t *testing.T) {
	s := newTestServer(t)
	p, _ := webhookProjects(t, s.db) // public, its default branch not known yet
	anon := newBrowser(t, s)
	const badge = "/badges/lanternfish/harbor-lights.svg"
	buildWithLog(t, s, p, "refs/heads/main", "b1", "m", "", store.JobSuccess)
	if w := badgeWord(t, anon, badge); w != "unknown" {
		t.Errorf("with the default branch unknown: %s, want unknown", w)
	}
	// A pull request's webhook says the repository's default branch (main), and builds refs/pull/7/head.
	if code, out := deliver(t, s, p.ID, "pull_request", readFixture(t, "pull_request_opened.json"), testSecret, "", "pr-7"); code != 201 {
		t.Fatalf("pull request: %d %v", code, out)
	}
	// An untrusted pull request whose ref is a branch's, as a forge might name it.
	finishedBuild(t, s, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "b3", FromFork: true}, store.JobFailure)
	for path, want := range map[string]string{
		badge:                           "passing",
		badge + "?ref=main":             "passing",
		badge + "?ref=refs/heads/main":  "passing",
		badge + "?ref=refs/pull/7/head": "unknown",
		badge + "?ref=pull/7/head":      "unknown",
	} {
		if w := badgeWord(t, anon, path); w != want {
			t.Errorf("%s: %s, want %s (pull requests never count)", path, w, want)
		}
	}
}
