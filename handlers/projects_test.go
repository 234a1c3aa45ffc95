package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"kozmic/internal/fakegithub"
	"kozmic/store"
)

const repoAPI = "/api/v3/repos/octocat/Hello-World"

// routeRepoAPI answers the calls creating and syncing octocat/Hello-World make.
func routeRepoAPI(f *fakegithub.Server) {
	f.Route("GET /api/v3/user/repos", 200, "user_repos.json")
	f.Route("GET /api/v3/user/orgs", 200, "user_orgs.json")
	f.Route("GET /api/v3/user/teams", 200, "user_teams.json")
	f.Route("GET /api/v3/orgs/github/teams/justice-league/repos", 200, "team_repos.json")
	f.Route("GET "+repoAPI, 200, "repo.json")
	f.Route("POST "+repoAPI+"/hooks", 201, "hook.json")
	f.Route("PATCH "+repoAPI+"/hooks/12345678", 200, "hook.json")
	f.Route("POST "+repoAPI+"/keys", 201, "key.json")
	f.Route("GET "+repoAPI+"/collaborators", 200, "collaborators.json")
	f.Script("GET "+repoAPI+"/hooks", fakegithub.Reply{Status: 200, Body: `[]`})
	f.Script("GET "+repoAPI+"/keys", fakegithub.Reply{Status: 200, Body: `[]`})
}

func TestCreateProjectFromRepository(t *testing.T) {
	s := newTestServer(t)
	routeRepoAPI(s.github)
	b := newBrowser(t, s)
	b.signIn("/")
	ctx := context.Background()

	res, page := b.do("GET", "/repositories", nil)
	if res.StatusCode != 200 || !strings.Contains(page, "octocat/Hello-World") || !strings.Contains(page, "github/kozmic-ci") ||
		!strings.Contains(page, "Create project") {
		t.Fatalf("repositories page: %d\n%s", res.StatusCode, page)
	}
	res, _ = b.do("POST", "/projects", url.Values{"repo": {"octocat/Hello-World"}})
	if res.StatusCode != 303 || res.Header.Get("Location") != "/projects/1" {
		t.Fatalf("create: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	p, err := s.db.ProjectByID(ctx, 1)
	if err != nil || p.GitHubID != 1296269 || p.IsPublic || p.GitHubHookID != 12345678 || p.OwnerID != 1 {
		t.Fatalf("project = %+v, %v", p, err)
	}
	var hook struct {
		Events []string
		Config map[string]string
	}
	created := s.github.CallsTo("POST " + repoAPI + "/hooks")
	json.Unmarshal(created[0].Body, &hook)
	secret, _ := s.db.WebhookSecret(ctx, p.ID)
	if hook.Config["url"] != "http://kozmic.test/webhooks/1" || hook.Config["secret"] != secret || len(secret) != 64 ||
		strings.Join(hook.Events, ",") != "push,pull_request" {
		t.Errorf("webhook = %+v (secret %q)", hook, secret)
	}
	key, err := s.db.DeployKeyOf(ctx, p.ID)
	var sentKey struct {
		Key      string
		ReadOnly bool `json:"read_only"`
	}
	json.Unmarshal(s.github.CallsTo("POST " + repoAPI + "/keys")[0].Body, &sentKey)
	if err != nil || key.GitHubKeyID != 1 || !strings.Contains(key.PrivateKey, "OPENSSH PRIVATE KEY") || sentKey.Key != key.PublicKey || !sentKey.ReadOnly {
		t.Errorf("deploy key = %+v, %v; sent %+v", key, err, sentKey)
	}
	if n := len(s.github.CallsTo("GET " + repoAPI + "/collaborators")); n != 1 {
		t.Errorf("members synced %d times at creation", n)
	}
	res, page = b.do("GET", "/projects/1", nil)
	if res.StatusCode != 200 || !strings.Contains(page, "http://kozmic.test/webhooks/1") || !strings.Contains(page, key.PublicKey) {
		t.Errorf("project page: %d", res.StatusCode)
	}
	if strings.Contains(page, secret) || strings.Contains(page, "PRIVATE KEY") {
		t.Error("the project page shows a secret")
	}

	// Again: the webhook (edited by hand meanwhile) is repaired, the key kept, nothing duplicated.
	s.github.Script("GET "+repoAPI+"/hooks", fakegithub.Reply{Status: 200,
		Body: `[{"id": 12345678, "active": false, "events": ["push"], "config": {"url": "http://kozmic.test/webhooks/1", "content_type": "form"}}]`})
	s.github.Script("GET "+repoAPI+"/keys", fakegithub.Reply{Status: 200, Body: fmt.Sprintf(`[{"id": 1, "key": %q, "read_only": true}]`, key.PublicKey)})
	res, _ = b.do("POST", "/projects", url.Values{"repo": {"octocat/Hello-World"}})
	if res.StatusCode != 303 || res.Header.Get("Location") != "/projects/1" {
		t.Fatalf("ensure: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if n := len(s.github.CallsTo("PATCH " + repoAPI + "/hooks/12345678")); n != 1 {
		t.Errorf("webhook repairs = %d, want 1", n)
	}
	if n, k := len(s.github.CallsTo("POST "+repoAPI+"/hooks")), len(s.github.CallsTo("POST "+repoAPI+"/keys")); n != 1 || k != 1 {
		t.Errorf("after ensure: %d webhooks and %d keys created, want 1 each", n, k)
	}
	if again, _ := s.db.DeployKeyOf(ctx, p.ID); again.PrivateKey != key.PrivateKey {
		t.Error("ensure replaced the deploy key")
	}
}

func TestCreateProjectRollsBackWhenGitHubRefuses(t *testing.T) {
	s := newTestServer(t)
	routeRepoAPI(s.github)
	s.github.Script("POST "+repoAPI+"/keys", fakegithub.Reply{Status: 422,
		Body: `{"message":"Validation Failed","errors":[{"resource":"PublicKey","code":"custom","field":"key","message":"key is already in use"}]}`})
	s.github.Script("DELETE "+repoAPI+"/hooks/12345678", fakegithub.Reply{Status: 204})
	b := newBrowser(t, s)
	b.signIn("/")
	res, page := b.do("POST", "/projects", url.Values{"repo": {"octocat/Hello-World"}})
	if res.StatusCode != 200 || !strings.Contains(page, "GitHub answered: Validation Failed") {
		t.Errorf("refused key: %d\n%s", res.StatusCode, page)
	}
	if _, err := s.db.ProjectByGitHubID(context.Background(), 1296269); err == nil {
		t.Error("the half-made project was kept")
	}
	if n := len(s.github.CallsTo("DELETE " + repoAPI + "/hooks/12345678")); n != 1 {
		t.Errorf("the created webhook was removed %d times, want 1", n)
	}
	// Without admin rights there is no project, and GitHub is not touched.
	s.github.Script("GET "+repoAPI, fakegithub.Reply{Status: 200, Body: strings.Replace(s.github.Fixture("repo.json"), `"admin": true`, `"admin": false`, 1)})
	res, page = b.do("POST", "/projects", url.Values{"repo": {"octocat/Hello-World"}})
	if res.StatusCode != 200 || !strings.Contains(page, "Only someone with admin rights") {
		t.Errorf("no admin rights: %d", res.StatusCode)
	}
	if n := len(s.github.CallsTo("POST " + repoAPI + "/hooks")); n != 1 {
		t.Errorf("webhooks created = %d, want only the first attempt's", n)
	}
}

func TestDeleteProject(t *testing.T) {
	s := newTestServer(t)
	routeRepoAPI(s.github)
	b := newBrowser(t, s)
	b.signIn("/")
	b.do("POST", "/projects", url.Values{"repo": {"octocat/Hello-World"}})
	ctx := context.Background()

	// GitHub refuses: nothing is deleted, and GitHub's answer is shown.
	s.github.Script("DELETE "+repoAPI+"/hooks/12345678", fakegithub.Reply{Status: 403, Body: `{"message":"Must have admin rights to Repository."}`})
	res, page := b.do("POST", "/projects/1/delete", url.Values{})
	if res.StatusCode != 502 || !strings.Contains(page, "Must have admin rights to Repository.") {
		t.Errorf("refused delete: %d", res.StatusCode)
	}
	if _, err := s.db.ProjectByID(ctx, 1); err != nil {
		t.Fatalf("project deleted although GitHub refused: %v", err)
	}

	res, page = b.do("GET", "/projects/1/delete", nil)
	if res.StatusCode != 200 || !strings.Contains(page, "cannot be undone") {
		t.Errorf("confirmation page: %d", res.StatusCode)
	}
	// The webhook is gone already on GitHub (404): fine; the key is removed.
	s.github.Script("DELETE "+repoAPI+"/keys/1", fakegithub.Reply{Status: 204})
	res, _ = b.do("POST", "/projects/1/delete", url.Values{})
	if res.StatusCode != 303 {
		t.Fatalf("delete: %d", res.StatusCode)
	}
	if _, err := s.db.ProjectByID(ctx, 1); err == nil {
		t.Error("project still there")
	}
	if n := len(s.github.CallsTo("DELETE " + repoAPI + "/keys/1")); n != 1 {
		t.Errorf("deploy key deletions = %d", n)
	}
}

// signInAs logs b in as another GitHub user of the fake.
func signInAs(t *testing.T, s *testServer, b *browser, id int64, login string) {
	t.Helper()
	s.github.Script("GET /api/v3/user", fakegithub.Reply{Status: 200, Body: fmt.Sprintf(`{"login": %q, "id": %d, "type": "User"}`, login, id)})
	if res := b.signIn("/"); res.StatusCode != 303 {
		t.Fatalf("sign in as %s: %d", login, res.StatusCode)
	}
}

// Every project route, for every role: what it may do, it can; what it may
// not, it is refused; a private project it may not see does not exist.
func TestPermissionMatrix(t *testing.T) {
	s := newTestServer(t)
	routeRepoAPI(s.github)
	s.github.Route("DELETE "+repoAPI+"/hooks/12345678", 204, "hook.json")
	ctx := context.Background()
	browsers := map[string]*browser{"anonymous": newBrowser(t, s)}
	for _, u := range []struct {
		id    int64
		login string
	}{{1, "octocat"}, {2, "hubot"}, {3, "monalisa"}, {4, "eve"}} {
		browsers[u.login] = newBrowser(t, s)
		signInAs(t, s, browsers[u.login], u.id, u.login)
	}
	owner, _ := s.db.UserByID(ctx, 1)
	if owner.GitHubLogin != "octocat" {
		t.Fatalf("user 1 = %s", owner.GitHubLogin)
	}
	roles := []string{"anonymous", "eve", "monalisa", "hubot", "octocat"} // none, stranger, member, manager, owner
	newProject := func(public bool, name string, githubID int64) int64 {
		p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: owner.ID, Source: store.SourceGitHub, GitHubID: githubID,
			FullName: name, IsPublic: public, WebhookSecret: "s"})
		if err != nil {
			t.Fatal(err)
		}
		s.db.SetGitHubHookID(ctx, p.ID, 12345678)
		if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "t", DockerImage: "i", BuildScript: "#!/bin/sh"}); err != nil {
			t.Fatal(err)
		}
		_, jobs, err := s.db.CreateBuild(ctx, store.NewBuild{ProjectID: p.ID, Ref: "refs/heads/main", SHA: "abc"})
		if err != nil {
			t.Fatal(err)
		}
		s.db.UpdateJob(ctx, jobs[0].ID, store.JobUpdate{Status: store.JobError}) // canceled: can be re-run
		return p.ID
	}
	reseed := func(id int64) {
		if _, err := s.db.SyncMemberships(ctx, id, []store.GitHubAccess{{GitHubID: 2, Manage: true}, {GitHubID: 3}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		public bool
		method string
		path   string
		want   []int // by roles
	}{
		{false, "GET", "/projects/%d", []int{303, 404, 200, 200, 200}},
		{false, "POST", "/projects/%d/members/sync", []int{303, 404, 403, 303, 303}},
		{false, "POST", "/projects/%d/host-key/reset", []int{303, 404, 403, 303, 303}},
		{true, "POST", "/projects/%d/host-key/reset", []int{303, 403, 403, 303, 303}},
		{false, "POST", "/projects/%d/deploy-key/regenerate", []int{303, 404, 403, 303, 303}},
		{true, "POST", "/projects/%d/deploy-key/regenerate", []int{303, 403, 403, 422, 422}}, // allowed, then refused: a public project has no deploy key
		{false, "GET", "/projects/%d/delete", []int{303, 404, 403, 403, 200}},
		{false, "GET", "/projects/%d/settings", []int{303, 404, 403, 200, 200}},
		{false, "GET", "/projects/%d/builds/1", []int{303, 404, 200, 200, 200}},
		{false, "POST", "/projects/%d/builds/1/rerun", []int{303, 404, 403, 303, 303}},
		{true, "GET", "/projects/%d/builds/1", []int{303, 200, 200, 200, 200}},
		{true, "POST", "/projects/%d/builds/1/rerun", []int{303, 403, 403, 303, 303}},
		{false, "GET", "/projects/%d/hooks/new", []int{303, 404, 403, 200, 200}},
		{false, "POST", "/projects/%d/secrets", []int{303, 404, 403, 422, 422}}, // allowed, then refused for its empty name
		{false, "POST", "/projects/%d/builds", []int{303, 404, 403, 422, 422}},  // allowed, then refused: no ref can be resolved here
		{true, "POST", "/projects/%d/builds", []int{303, 403, 403, 422, 422}},
		{false, "POST", "/projects/%d/members", []int{303, 404, 403, 403, 403}}, // a GitHub project's people come from GitHub
		{false, "POST", "/projects/%d/delete", []int{303, 404, 403, 403, 303}},
		{true, "GET", "/projects/%d", []int{303, 200, 200, 200, 200}},
		{true, "POST", "/projects/%d/members/sync", []int{303, 403, 403, 303, 303}},
		{true, "POST", "/projects/%d/delete", []int{303, 403, 403, 403, 303}},
		{false, "POST", "/projects/%d/delete/anyway", []int{303, 404, 403, 403, 200}},
		{true, "POST", "/projects/%d/delete/anyway", []int{303, 403, 403, 403, 200}},
	} {
		// octocat/Hello-World is the repository the fake answers for; each row gets its own project.
		s.db.DeleteProject(ctx, 1)
		if p, err := s.db.ProjectByName(ctx, "octocat/Hello-World"); err == nil {
			s.db.DeleteProject(ctx, p.ID)
		}
		id := newProject(tt.public, "octocat/Hello-World", 1296269)
		for i, role := range roles {
			reseed(id)
			var form url.Values
			if tt.method == "POST" {
				form = url.Values{}
			}
			res, _ := browsers[role].do(tt.method, fmt.Sprintf(tt.path, id), form)
			if res.StatusCode != tt.want[i] {
				t.Errorf("%s %s (public %v) as %s: %d, want %d", tt.method, tt.path, tt.public, role, res.StatusCode, tt.want[i])
			}
		}
	}
	for _, path := range []string{"/repositories", "/account"} {
		if res, _ := browsers["anonymous"].do("GET", path, nil); res.StatusCode != 303 {
			t.Errorf("GET %s anonymous: %d, want 303 to sign in", path, res.StatusCode)
		}
		if res, _ := browsers["eve"].do("GET", path, nil); res.StatusCode != 200 {
			t.Errorf("GET %s signed in: %d", path, res.StatusCode)
		}
	}
}

// POST /repositories/sync replaces the cache with what GitHub lists now and
// shows it; when GitHub fails, it says so and the cache stays as it was.
func TestSyncRepositories(t *testing.T) {
	s := newTestServer(t)
	routeRepoAPI(s.github)
	b := newBrowser(t, s)
	b.signIn("/")
	ctx := context.Background()
	cached := func() (names []string, synced time.Time) {
		t.Helper()
		own, orgs, synced, err := s.db.RepoCache(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range own {
			names = append(names, r.FullName)
		}
		for _, o := range orgs {
			for _, r := range o.Repos {
				names = append(names, o.Login+":"+r.FullName)
			}
		}
		return names, synced
	}
	listed := func(doc *goquery.Document) string {
		var names []string
		doc.Find("section.panel li > span:first-child").Each(func(_ int, s *goquery.Selection) {
			names = append(names, strings.TrimSpace(s.Contents().First().Text()))
		})
		return strings.Join(names, " ")
	}

	// The first visit fills the cache from GitHub's fixtures.
	fetchPage(t, b, "/repositories", 200)
	if names, _ := cached(); strings.Join(names, " ") != "octocat/Hello-World octocat/Spoon-Knife github:github/kozmic-ci" {
		t.Fatalf("cache after the first visit: %q", names)
	}

	// GitHub lists something else now: the sync replaces the cache and shows it.
	s.github.Script("GET /api/v3/user/repos", fakegithub.Reply{Status: 200, Body: `[{"id": 42, "full_name": "octocat/Linguist",
		"private": false, "clone_url": "https://github.com/octocat/Linguist.git", "ssh_url": "git@github.com:octocat/Linguist.git",
		"permissions": {"admin": true}}]`})
	s.github.Script("GET /api/v3/user/orgs", fakegithub.Reply{Status: 200, Body: `[]`})
	res, _ := b.do("POST", "/repositories/sync", url.Values{})
	if res.StatusCode != 303 || res.Header.Get("Location") != "/repositories" {
		t.Fatalf("sync: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	names, synced := cached()
	if strings.Join(names, " ") != "octocat/Linguist" || synced.IsZero() {
		t.Errorf("cache after the sync: %q, synced at %v", names, synced)
	}
	doc, _ := fetchPage(t, b, "/repositories", 200)
	if got := listed(doc); got != "octocat/Linguist" {
		t.Errorf("listed after the sync: %q", got)
	}

	// GitHub fails: the answer says so and lists nothing; the cache is kept.
	s.github.Script("GET /api/v3/user/repos", fakegithub.Reply{Status: 502, Body: `{"message":"Server Error"}`})
	res, page := b.do("POST", "/repositories/sync", url.Values{})
	doc = parse(t, page)
	if f := doc.Find("p.flash.flash-error"); res.StatusCode != 200 || textOf(f) != "GitHub answered: Server Error" || listed(doc) != "" {
		t.Errorf("failed sync: %d, flash %q, listed %q", res.StatusCode, textOf(f), listed(doc))
	}
	if after, at := cached(); strings.Join(after, " ") != "octocat/Linguist" || !at.Equal(synced) {
		t.Errorf("cache after a failed sync: %q synced at %v, want it as it was (%v)", after, at, synced)
	}
	doc, _ = fetchPage(t, b, "/repositories", 200)
	if got := listed(doc); got != "octocat/Linguist" || doc.Find(".flash").Length() != 0 {
		t.Errorf("listed after a failed sync: %q", got)
	}

	// A local account has no GitHub token to list with.
	local := newLocalTestServer(t)
	localUser(t, local, "ann", "ann's password")
	lb := newBrowser(t, local)
	if code, _ := login(lb, "ann", "ann's password", "/"); code != 303 {
		t.Fatalf("local login: %d", code)
	}
	res, page = lb.do("POST", "/repositories/sync", url.Values{})
	if f := parse(t, page).Find("p.flash.flash-error"); res.StatusCode != 200 || !strings.HasPrefix(textOf(f), "Your account is not connected to GitHub") {
		t.Errorf("local account's sync: %d, flash %q", res.StatusCode, textOf(f))
	}
	if n := len(local.github.CallsTo("GET /api/v3/user/repos")); n != 0 {
		t.Errorf("a local account's sync called GitHub %d times", n)
	}
}
