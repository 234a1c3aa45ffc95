package handlers

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"kozmic/git"
	"kozmic/internal/testrepo"
	"kozmic/internal/testsshd"
	"kozmic/store"
	"kozmic/views"
)

// gitLimits sets l for the rest of the test, and the defaults after it.
func gitLimits(t *testing.T, l git.Limits) {
	git.SetLimits(l)
	t.Cleanup(func() { git.SetLimits(git.Limits{}) })
}

// With the bound of git processes at 2 and two Run build requests waiting
// on a git server that never answers, a third request is answered 503 with
// Retry-After instead of waiting for a git process of its own.
func TestRunBuildBeyondGitBoundGets503(t *testing.T) {
	gitLimits(t, git.Limits{Procs: 2, Wait: 100 * time.Millisecond})
	s := newLocalTestServer(t)
	ctx := context.Background()
	ann := localUser(t, s, "ann", "ann's password")
	a := newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	silent := testrepo.NewSilent(t)
	p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "team/app",
		GitURL: silent.URL, WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/projects/%d/builds", p.ID)

	held, release := context.WithCancel(ctx)
	defer release()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(held, "POST", a.base+path, strings.NewReader("ref=main"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if res, err := a.c.Do(req); err == nil {
				res.Body.Close()
			}
		})
	}
	<-silent.Accepted
	<-silent.Accepted // both slots are held by a git waiting on the silent server

	res, page := a.do("POST", path, map[string][]string{"ref": {"main"}})
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != retryAfterBusy ||
		!strings.Contains(page, "Try again in a moment") {
		t.Errorf("the third Run build: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	release()
	wg.Wait()
}

// authorizedKey is k's public half in authorized_keys form, as it is pinned.
func authorizedKey(k ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey())))
}

// The first Run build of an SSH project pins its server's host key, which
// the project page shows; after the server's key changes, Run build fails
// naming the pinned and the offered fingerprints and pins nothing; a reset
// on the project page lets the next Run build pin the new key.
func TestChangedSSHHostKeyFailsFetchNamingBothFingerprints(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	ann := localUser(t, s, "ann", "ann's password")
	a := newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	rp := testrepo.New(t, map[string]string{"README": "one"})
	private, public, err := git.GenerateDeployKey("kozmic team/app")
	if err != nil {
		t.Fatal(err)
	}
	keyA, keyB := testsshd.NewHostKey(t), testsshd.NewHostKey(t)
	fpA, fpB := ssh.FingerprintSHA256(keyA.PublicKey()), ssh.FingerprintSHA256(keyB.PublicKey())
	root := filepath.Dir(rp.Path)
	srv := testsshd.Start(t, "127.0.0.1:0", keyA, public, root)
	p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "team/app",
		GitURL: srv.URL(rp.Path), WebhookSecret: "s", DeployKey: &store.DeployKey{PrivateKey: private, PublicKey: public}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	projectURL := fmt.Sprintf("/projects/%d", p.ID)
	pinned := func() string {
		t.Helper()
		p, err := s.db.ProjectByID(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		return p.SSHHostKey
	}
	runBuild := func() (*http.Response, string) {
		return a.do("POST", projectURL+"/builds", map[string][]string{"ref": {"main"}})
	}

	_, page := a.do("GET", projectURL, nil)
	if got := textOf(parse(t, page).Find("#" + views.HostKeyID)); !strings.Contains(got, "none pinned yet") {
		t.Errorf("host key before any contact: %q", got)
	}
	if res, _ := runBuild(); res.StatusCode != http.StatusSeeOther || pinned() != authorizedKey(keyA) {
		t.Fatalf("first Run build: %d, pinned %q", res.StatusCode, pinned())
	}
	if !strings.Contains(s.logs.String(), "pinned the SSH host key of a git server") || !strings.Contains(s.logs.String(), fpA) {
		t.Errorf("the pin is not logged with its fingerprint:\n%s", s.logs.String())
	}
	_, page = a.do("GET", projectURL, nil)
	doc := parse(t, page)
	if got := textOf(doc.Find("#" + views.HostKeyID)); !strings.Contains(got, fpA) {
		t.Errorf("the project page shows the host key as %q, want %s", got, fpA)
	}
	reset := doc.Find(`#` + views.HostKeyID + ` form[action="` + projectURL + `/host-key/reset"]`)
	if !reset.HasClass("confirm") || !strings.HasPrefix(attrOf(reset, "data-confirm"), "Reset the pinned SSH host key?") ||
		textOf(reset.Find("button")) != "Reset host key" {
		t.Errorf("no confirmed Reset host key form: %q", attrOf(reset, "data-confirm"))
	}

	srv.Close()
	testsshd.Start(t, srv.Addr, keyB, public, root)
	res, page := runBuild()
	alert := textOf(parse(t, page).Find(`[role="alert"]`))
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(alert, "has changed: Kozmic pinned "+fpA) ||
		!strings.Contains(alert, "the server now offers "+fpB) {
		t.Errorf("Run build against key B: %d %q", res.StatusCode, alert)
	}
	if pinned() != authorizedKey(keyA) {
		t.Errorf("key B was pinned without a reset")
	}

	res, _ = a.do("POST", projectURL+"/host-key/reset", map[string][]string{})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != projectURL+"?host-key" || pinned() != "" {
		t.Fatalf("reset: %d %q, pinned %q", res.StatusCode, res.Header.Get("Location"), pinned())
	}
	_, page = a.do("GET", projectURL+"?host-key", nil)
	if got := textOf(parse(t, page).Find(".flash-ok")); !strings.Contains(got, "forgotten") {
		t.Errorf("flash after reset: %q", got)
	}
	if res, _ := runBuild(); res.StatusCode != http.StatusSeeOther || pinned() != authorizedKey(keyB) {
		t.Errorf("Run build after the reset: %d, pinned %q", res.StatusCode, pinned())
	}
}

// A project fetched from github.com over SSH trusts GitHub's published host
// keys, with nothing to reset; one fetched over https has no host key at all.
func TestProjectPageTrustsGitHubsPublishedHostKeys(t *testing.T) {
	s := newTestServer(t)
	owner := newBrowser(t, s)
	owner.signIn("/")
	ctx := context.Background()
	for _, tt := range []struct {
		public bool
		want   string
	}{{false, "SSH host key: one of GitHub's published keys for github.com, built into Kozmic."}, {true, ""}} {
		s.db.DeleteProject(ctx, 1)
		p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 1296269,
			FullName: "octocat/Hello-World", IsPublic: tt.public, WebhookSecret: "s",
			SSHCloneURL: "git@github.com:octocat/Hello-World.git", HTTPSCloneURL: "https://github.com/octocat/Hello-World.git"})
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := fetchPage(t, owner, fmt.Sprintf("/projects/%d", p.ID), 200)
		if got := textOf(doc.Find("#" + views.HostKeyID)); got != tt.want || doc.Find("#"+views.HostKeyID+" form").Length() != 0 {
			t.Errorf("public %v: host key %q", tt.public, got)
		}
	}
}
