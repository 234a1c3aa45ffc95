package handlers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"kozmic/gh"
	"kozmic/internal/fakegithub"
	"kozmic/internal/testrepo"
	"kozmic/store"
)

// gitRepo makes a git repository with one commit on main and returns its
// path and that commit.
func gitRepo(t *testing.T, dir string, bare bool) (string, string) {
	t.Helper()
	run := func(dir string, args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Ann \"Quote\" Lee", "GIT_AUTHOR_EMAIL=a@example.com",
			"GIT_COMMITTER_NAME=Ann", "GIT_COMMITTER_EMAIL=a@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	work := filepath.Join(dir, "work")
	os.MkdirAll(work, 0o755)
	run(work, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(work, "README"), []byte("hello\n"), 0o644)
	run(work, "add", "README")
	run(work, "commit", "-q", "-m", `First "commit" \ with a backslash`)
	sha := run(work, "rev-parse", "HEAD")
	if !bare {
		return work, sha
	}
	repo := filepath.Join(dir, "repo.git")
	run(dir, "clone", "-q", "--bare", work, repo)
	return repo, sha
}

func TestGitProject(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	ann := localAdmin(t, s, "ann", "ann's password")
	bob := localUser(t, s, "bob", "bob's password")
	a, b := newBrowser(t, s), newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	login(b, "bob", "bob's password", "")
	repo, sha := gitRepo(t, t.TempDir(), false)

	_, page := a.do("GET", "/", nil)
	if doc := parse(t, page); doc.Find(`a[href="/projects/new"]`).Length() == 0 || doc.Find(`a[href="/repositories"]`).Length() != 0 {
		t.Error("the dashboard without GitHub does not lead to /projects/new, or leads to GitHub repositories")
	}
	_, page = a.do("GET", "/projects/new", nil)
	if doc := parse(t, page); doc.Find(`form[action="/projects/new"] input[name="git_url"]`).Length() != 1 {
		t.Fatalf("new project form:\n%s", page)
	}
	for _, tt := range []struct{ name, url, want string }{
		{"team/app", "ext::sh -c touch% /tmp/pwned", "ext::"},
		{"team/app", "--upload-pack=touch /tmp/pwned", "-"},
		{"team/app", "/no/such/dir", "There is no directory /no/such/dir on this server."},
		{"no-slash", repo, `The project name must look like "owner/name", with letters`},
	} {
		res, page := a.do("POST", "/projects/new", url.Values{"name": {tt.name}, "git_url": {tt.url}})
		doc := parse(t, page)
		if got := doc.Find(`[role="alert"]`).Text(); res.StatusCode != 422 || !strings.Contains(got, tt.want) ||
			doc.Find(`input[name="git_url"]`).AttrOr("value", "") != tt.url {
			t.Errorf("%s %q: %d %q, want %q and the form kept", tt.name, tt.url, res.StatusCode, got, tt.want)
		}
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Fatal("a URL ran a command")
	}
	res, _ := a.do("POST", "/projects/new", url.Values{"name": {"team/app"}, "git_url": {repo}})
	if res.StatusCode != 303 || !strings.HasSuffix(res.Header.Get("Location"), "?created") {
		t.Fatalf("create: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	p, err := s.db.ProjectByName(ctx, "team/app")
	if err != nil || p.OwnerID != ann.ID || p.Source != store.SourceGit || p.GitURL != repo || p.IsPublic {
		t.Fatalf("project = %+v, %v", p, err)
	}
	if res, page := a.do("POST", "/projects/new", url.Values{"name": {"Team/App"}, "git_url": {repo}}); res.StatusCode != 422 ||
		!strings.Contains(page, "There is a project called Team/App already.") {
		t.Errorf("same name again: %d", res.StatusCode)
	}
	projectURL := fmt.Sprintf("/projects/%d", p.ID)
	_, page = a.do("GET", projectURL+"?created", nil)
	doc := parse(t, page)
	secret, _ := s.db.WebhookSecret(ctx, p.ID)
	if !strings.Contains(doc.Find(".flash-ok").Text(), "Project created") || !strings.Contains(doc.Find("details").Text(), secret) ||
		!strings.Contains(doc.Find("pre.copy").Text(), fmt.Sprintf("url='http://kozmic.test/webhooks/%d'", p.ID)) ||
		doc.Find(`form[action="`+projectURL+`/members/sync"]`).Length() != 0 {
		t.Errorf("project page of a git project:\n%s", doc.Find("main").Text())
	}

	// An ssh URL gets a deploy key, shown to copy.
	res, _ = a.do("POST", "/projects/new", url.Values{"name": {"team/remote"}, "git_url": {"git@git.example.com:team/remote.git"}, "public": {"1"}})
	remote, _ := s.db.ProjectByName(ctx, "team/remote")
	key, err := s.db.DeployKeyOf(ctx, remote.ID)
	if res.StatusCode != 303 || err != nil || !strings.HasPrefix(key.PublicKey, "ssh-ed25519 ") || !remote.IsPublic {
		t.Fatalf("ssh project: %d, key %v", res.StatusCode, err)
	}
	_, page = a.do("GET", fmt.Sprintf("/projects/%d?created", remote.ID), nil)
	if doc := parse(t, page); !strings.Contains(doc.Find("pre.copy").First().Text(), key.PublicKey) ||
		!strings.Contains(doc.Find(".flash-ok").Text(), "deploy key") || !strings.Contains(doc.Find(".flash-ok").Text(), "could not check the URL yet") ||
		strings.Contains(page, "PRIVATE KEY") {
		t.Error("the ssh project's page does not show its public key to copy, or shows the private one")
	}

	// People: the owner adds and removes local users.
	if res, _ := b.do("GET", projectURL, nil); res.StatusCode != 404 {
		t.Errorf("bob sees a private project he is not on: %d", res.StatusCode)
	}
	_, page = a.do("GET", projectURL, nil)
	if opts := parse(t, page).Find(`select[name="username"] option`); opts.Length() != 1 || opts.AttrOr("value", "") != "bob" {
		t.Errorf("candidates = %d", opts.Length())
	}
	if res, _ := a.do("POST", projectURL+"/members", url.Values{"username": {"bob"}, "role": {"manager"}}); res.StatusCode != 303 {
		t.Fatalf("add bob: %d", res.StatusCode)
	}
	if r, _ := s.db.RoleOf(ctx, p.ID, bob.ID); r != store.RoleManager {
		t.Errorf("bob's role = %v", r)
	}
	for _, form := range []url.Values{{"username": {"nobody"}}, {"username": {"ann"}}} {
		if res, _ := a.do("POST", projectURL+"/members", form); res.StatusCode != 422 {
			t.Errorf("add %v: %d", form, res.StatusCode)
		}
	}
	if res, _ := b.do("POST", projectURL+"/members", url.Values{"username": {"bob"}, "role": {"member"}}); res.StatusCode != 403 {
		t.Errorf("a manager changes people: %d", res.StatusCode)
	}
	if res, _ := b.do("POST", fmt.Sprintf("%s/members/%d/delete", projectURL, bob.ID), url.Values{}); res.StatusCode != 403 {
		t.Errorf("a manager removes people: %d", res.StatusCode)
	}

	// Run build: refused without hooks, then a build of main's commit, once.
	res, page = b.do("POST", projectURL+"/builds", url.Values{"ref": {"main"}})
	if res.StatusCode != 422 || !strings.Contains(parse(t, page).Find(`[role="alert"]`).Text(), "no hooks") {
		t.Errorf("run without hooks: %d", res.StatusCode)
	}
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	woken := s.jobs.n.Load()
	res, _ = b.do("POST", projectURL+"/builds", url.Values{"ref": {"main"}})
	if res.StatusCode != 303 || res.Header.Get("Location") != projectURL+"/builds/1" || s.jobs.n.Load() != woken+1 {
		t.Fatalf("run main: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	build, _ := s.db.BuildByNumber(ctx, p.ID, 1)
	if build.Ref != "refs/heads/main" || build.SHA != sha || build.Author != `Ann "Quote" Lee` ||
		build.Message != `First "commit" \ with a backslash` || build.Trigger != (store.Trigger{Kind: store.TriggerManual, User: "bob", UserID: bob.ID}) {
		t.Errorf("build = %+v", build)
	}
	res, _ = b.do("POST", projectURL+"/builds", url.Values{"ref": {sha[:10]}})
	if res.StatusCode != 303 || res.Header.Get("Location") != projectURL+"/builds/2" {
		t.Errorf("run a short SHA: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	res, _ = b.do("POST", projectURL+"/builds", url.Values{"ref": {"main"}})
	if res.StatusCode != 303 || res.Header.Get("Location") != projectURL+"/builds/1?existing" {
		t.Errorf("run main again: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	_, page = b.do("GET", projectURL+"/builds/1?existing", nil)
	if !strings.Contains(parse(t, page).Find(".flash-ok").Text(), "built before") {
		t.Error("no word that the commit was built before")
	}
	res, page = b.do("POST", projectURL+"/builds", url.Values{"ref": {"nope"}})
	doc = parse(t, page)
	if res.StatusCode != 422 || !strings.Contains(doc.Find(`[role="alert"]`).Text(), "no branch, tag or commit nope in") ||
		doc.Find(`input[name="ref"]`).AttrOr("value", "") != "nope" {
		t.Errorf("run nope: %d %q", res.StatusCode, doc.Find(`[role="alert"]`).Text())
	}

	if res, _ := a.do("POST", fmt.Sprintf("%s/members/%d/delete", projectURL, bob.ID), url.Values{}); res.StatusCode != 303 {
		t.Fatalf("remove bob: %d", res.StatusCode)
	}
	if res, _ := b.do("GET", projectURL, nil); res.StatusCode != 404 {
		t.Errorf("bob still sees the project after removal: %d", res.StatusCode)
	}
}

// The post-receive hook the project page offers, installed in a bare
// repository, turns a push into a signed webhook and so a build.
func TestPostReceiveHookStartsBuild(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the post-receive hook needs curl")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("the post-receive hook needs openssl")
	}
	s := newLocalTestServer(t)
	ctx := context.Background()
	localAdmin(t, s, "ann", "ann's password")
	a := newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	dir := t.TempDir()
	repo, sha := gitRepo(t, dir, true)
	a.do("POST", "/projects/new", url.Values{"name": {"team/app"}, "git_url": {repo}})
	p, err := s.db.ProjectByName(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"})
	_, page := a.do("GET", fmt.Sprintf("/projects/%d", p.ID), nil)
	hook := parse(t, page).Find("details pre.copy").Text()
	// The page names the public URL; this test's server listens elsewhere.
	hook = strings.Replace(hook, "http://kozmic.test", a.base, 1)
	if err := os.WriteFile(filepath.Join(repo, "hooks", "post-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	cmd := exec.Command("git", "-C", work, "push", "-q", repo, "main:feature")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "kozmic:") {
		t.Fatalf("push: %v\n%s", err, out)
	}
	b, err := s.db.BuildByNumber(ctx, p.ID, 1)
	if err != nil || b.Ref != "refs/heads/feature" || b.SHA != sha || b.Author != `Ann "Quote" Lee` || b.Message != `First "commit" \ with a backslash` {
		t.Fatalf("build after the push = %+v, %v\npush said: %s", b, err, out)
	}
	// A deleted branch asks for nothing.
	if out, err := exec.Command("git", "-C", work, "push", "-q", repo, ":feature").CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("delete push: %v %s", err, out)
	}
	if _, err := s.db.BuildByNumber(ctx, p.ID, 2); err == nil {
		t.Error("a deleted branch made a build")
	}
}

// checkRefusedProject checks that creating a project was refused with
// status and a sentence saying why, that the form kept what was typed, and
// that no project was written.
func checkRefusedProject(t *testing.T, s *testServer, b *browser, userID int64, form url.Values, status int, says string) {
	t.Helper()
	res, page := b.do("POST", "/projects/new", form)
	doc := parse(t, page)
	if got := doc.Find(`[role="alert"]`).Text(); res.StatusCode != status || !strings.Contains(got, says) ||
		doc.Find(`input[name="git_url"]`).AttrOr("value", "") != form.Get("git_url") || doc.Find(`input[name="name"]`).AttrOr("value", "") != form.Get("name") {
		t.Errorf("%v: %d %q; want %d saying %q, the form kept", form, res.StatusCode, got, status, says)
	}
	if ps, err := s.db.ProjectsOf(context.Background(), userID); err != nil || len(ps) != 0 {
		t.Errorf("%v: projects written: %+v (%v)", form, ps, err)
	}
}

// Only admins may make projects of paths or file:// URLs on the server,
// which would let anyone build (and print) the server's files: anyone else
// gets 403 and a sentence, the same for a path that does not exist, and
// nothing is written. So with local accounts and with GitHub sign-in.
func TestNonAdminCannotCreateServerPathProject(t *testing.T) {
	repo, _ := gitRepo(t, t.TempDir(), false)
	const says = "Only a Kozmic admin may make a project of a path or file:// URL on this server"
	local := newLocalTestServer(t)
	bobUser, bob := signInLocal(t, local, "bob")
	hub := newTestServer(t)
	octocat := newBrowser(t, hub)
	octocat.signIn("/")
	for _, tt := range []struct {
		s    *testServer
		b    *browser
		user int64
	}{{local, bob, bobUser.ID}, {hub, octocat, 1}} {
		for _, u := range []string{repo, "file://" + repo, "/no/such/dir", "/etc"} {
			checkRefusedProject(t, tt.s, tt.b, tt.user, url.Values{"name": {"app"}, "git_url": {u}}, http.StatusForbidden, says)
		}
	}

	// An admin may.
	localAdmin(t, local, "root", "root's password")
	root := newBrowser(t, local)
	login(root, "root", "root's password", "")
	if res, _ := root.do("POST", "/projects/new", url.Values{"name": {"srv/app"}, "git_url": {"file://" + repo}}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("an admin's file:// project: %d", res.StatusCode)
	}
}

// Projects that people who are not admins make of git URLs are named under
// their own user name, so nobody can take a name such as torvalds/linux:
// "app" and "Bob/app" become bob/app, a name under anyone else is refused
// with 403 and a sentence, and nothing is written. Admins name freely.
func TestNonAdminGitURLProjectNamedUnderOwnUser(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	bobUser, bob := signInLocal(t, s, "bob")
	root := t.TempDir()
	gitRepo(t, root, true)
	gitURL := testrepo.ServeHTTP(t, root) + "/repo.git"
	checkRefusedProject(t, s, bob, bobUser.ID, url.Values{"name": {"torvalds/linux"}, "git_url": {gitURL}}, http.StatusForbidden,
		"Your projects are named under your user name, such as bob/linux: only a Kozmic admin may name a project under torvalds.")
	for name, want := range map[string]string{"app": "bob/app", "Bob/tool": "bob/tool"} {
		res, _ := bob.do("POST", "/projects/new", url.Values{"name": {name}, "git_url": {gitURL}})
		p, err := s.db.ProjectByName(ctx, want)
		if res.StatusCode != http.StatusSeeOther || err != nil || p.FullName != want || p.OwnerID != bobUser.ID || p.GitURL != gitURL {
			t.Errorf("%q: %d, project %+v, %v; want %s", name, res.StatusCode, p, err, want)
		}
	}
	localAdmin(t, s, "root", "root's password")
	rb := newBrowser(t, s)
	login(rb, "root", "root's password", "")
	if res, _ := rb.do("POST", "/projects/new", url.Values{"name": {"torvalds/linux"}, "git_url": {gitURL}}); res.StatusCode != http.StatusSeeOther {
		t.Errorf("an admin's free name: %d", res.StatusCode)
	}
}

// With GitHub sign-in, someone who is not an admin may make a project of a
// git URL only for a GitHub repository they administer, as GitHub says with
// their token; any other URL is refused with 403 and a sentence, and
// nothing is written. A KOZMIC_ADMINS admin may give any URL.
func TestNonAdminGitHubProjectNeedsRepositoryTheyAdminister(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	b := newBrowser(t, s)
	b.signIn("/")
	host := s.github.WebURL().Host
	checkRefusedProject(t, s, b, 1, url.Values{"name": {"app"}, "git_url": {"https://gitlab.example.com/octocat/app.git"}}, http.StatusForbidden,
		"Only a Kozmic admin may make a project of a git URL that is not a repository on GitHub")
	// Not shown to octocat, then shown without admin rights.
	checkRefusedProject(t, s, b, 1, url.Values{"name": {"app"}, "git_url": {"http://" + host + "/torvalds/linux.git"}}, http.StatusForbidden,
		"You have no admin rights on torvalds/linux on GitHub")
	s.github.Script("GET "+repoAPI, fakegithub.Reply{Status: 200, Body: strings.Replace(s.github.Fixture("repo.json"), `"admin": true`, `"admin": false`, 1)})
	checkRefusedProject(t, s, b, 1, url.Values{"name": {"app"}, "git_url": {"http://" + host + "/octocat/Hello-World.git"}}, http.StatusForbidden,
		"You have no admin rights on octocat/Hello-World on GitHub")
	s.github.Script("GET "+repoAPI, fakegithub.Reply{Status: 500, Body: `{"message":"Server Error"}`})
	checkRefusedProject(t, s, b, 1, url.Values{"name": {"app"}, "git_url": {"http://" + host + "/octocat/Hello-World.git"}}, http.StatusBadGateway,
		"GitHub answered: Server Error")

	s.github.Route("GET "+repoAPI, 200, "repo.json") // admin rights
	res, _ := b.do("POST", "/projects/new", url.Values{"name": {"hello"}, "git_url": {"git@" + s.github.WebURL().Hostname() + ":octocat/Hello-World.git"}})
	if p, err := s.db.ProjectByName(ctx, "octocat/hello"); res.StatusCode != http.StatusSeeOther || err != nil || p.Source != store.SourceGit {
		t.Errorf("a repository octocat administers: %d, %v", res.StatusCode, err)
	}

	admin := newTestServerWith(t, true, withSignIn(gh.SignIn{Admins: []string{"octocat"}}))
	ab := newBrowser(t, admin)
	ab.signIn("/")
	// An ssh URL, which is not checked before its deploy key is installed.
	res, _ = ab.do("POST", "/projects/new", url.Values{"name": {"team/app"}, "git_url": {"git@gitlab.example.com:team/app.git"}})
	if _, err := admin.db.ProjectByName(ctx, "team/app"); res.StatusCode != http.StatusSeeOther || err != nil {
		t.Errorf("an admin's project of any URL: %d, %v", res.StatusCode, err)
	}
}

// *Run build* never builds a pull or merge request's ref, however it is
// typed: such a commit is a stranger's, and a person's build would give it
// the project's secrets and its trusted install cache.
func TestRunBuildRefusesPullRequestRefs(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	ann := localAdmin(t, s, "ann", "ann's password")
	a := newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	repo, _ := gitRepo(t, t.TempDir(), false)
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Mallory", "GIT_AUTHOR_EMAIL=m@example.com",
			"GIT_COMMITTER_NAME=Mallory", "GIT_COMMITTER_EMAIL=m@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// A fork's commit, reachable only from the refs its pull request left.
	fork := git("commit-tree", "-p", "HEAD", "-m", "Exfiltrate the secrets", "HEAD^{tree}")
	git("update-ref", "refs/pull/7/head", fork)
	git("update-ref", "refs/merge-requests/3/head", fork)
	p, err := s.db.CreateProject(ctx, store.NewProject{OwnerID: ann.ID, Source: store.SourceGit, FullName: "team/app", GitURL: repo,
		WebhookSecret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.CreateHook(ctx, store.Hook{ProjectID: p.ID, Title: "test", DockerImage: "busybox", BuildScript: "#!/bin/sh"}); err != nil {
		t.Fatal(err)
	}
	builds := fmt.Sprintf("/projects/%d/builds", p.ID)
	for _, ref := range []string{"refs/pull/7/head", "pull/7/head", "refs/pull/7/head~0", "pull/7/head^{commit}",
		"refs/merge-requests/3/head", "merge-requests/3/head"} {
		res, page := a.do("POST", builds, url.Values{"ref": {ref}})
		alert := parse(t, page).Find(`[role="alert"]`).Text()
		if res.StatusCode != 422 || !strings.Contains(alert, "is a pull request's ref: pull requests are built from their webhooks") {
			t.Errorf("run %s: %d %q, want 422 saying pull requests are built from their webhooks", ref, res.StatusCode, alert)
		}
	}
	if n := rows(t, s.db, p.ID); n != 0 {
		t.Fatalf("%d builds made of pull request refs", n)
	}
	if res, _ := a.do("POST", builds, url.Values{"ref": {"main"}}); res.StatusCode != 303 || rows(t, s.db, p.ID) != 1 {
		t.Errorf("run main after the refusals: %d", res.StatusCode)
	}
}

// A git URL is checked with git ls-remote when the project is created, not
// first at Run build: one that cannot be reached is refused with 422 and a
// sentence saying what git said, bounded, with the URL's password masked in
// it and in the log, the form keeping what was typed, and nothing written.
func TestGitProjectWithUnreachableURLIsRefusedOnTheForm(t *testing.T) {
	s := newLocalTestServer(t)
	ann := localAdmin(t, s, "ann", "ann's password")
	a := newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	const password = "s3cret-token"
	gitURL := "http://ann:" + password + "@" + addr + "/team/app.git"
	checkRefusedProject(t, s, a, ann.ID, url.Values{"name": {"team/app"}, "git_url": {gitURL}}, http.StatusUnprocessableEntity,
		"Kozmic could not read a git repository at http://ann:xxxxx@"+addr+"/team/app.git: git said: unable to access")
	_, page := a.do("POST", "/projects/new", url.Values{"name": {"team/app"}, "git_url": {gitURL}})
	if said := parse(t, page).Find(`[role="alert"]`).Text(); strings.Contains(said, password) || strings.Contains(s.logs.String(), password) {
		t.Errorf("the URL's password is shown or logged: %q", said)
	}

	// git names the URL in its complaint: a long one is cut.
	long := "http://" + addr + "/" + strings.Repeat("a", 4000) + ".git"
	checkRefusedProject(t, s, a, ann.ID, url.Values{"name": {"team/app"}, "git_url": {long}}, http.StatusUnprocessableEntity,
		"Kozmic could not read a git repository at http://"+addr+"/aaa")
	_, page = a.do("POST", "/projects/new", url.Values{"name": {"team/app"}, "git_url": {long}})
	if said := parse(t, page).Find(`[role="alert"]`).Text(); len(said) > maxGitSaidLen+len("…") || !strings.HasSuffix(said, "…") {
		t.Errorf("what git said is not bounded: %d bytes", len(said))
	}
}

// A URL that reaches something other than a git repository (a directory on
// the server, a web server without the repository) is refused with 422 and
// what git said, and nothing is written; a repository, over HTTP, and an
// empty one too, makes the project, with the default branch git told.
func TestGitProjectWithNonRepositoryIsRefused(t *testing.T) {
	s := newLocalTestServer(t)
	ctx := context.Background()
	ann := localAdmin(t, s, "ann", "ann's password")
	a := newBrowser(t, s)
	login(a, "ann", "ann's password", "")
	notRepo := t.TempDir()
	checkRefusedProject(t, s, a, ann.ID, url.Values{"name": {"team/app"}, "git_url": {notRepo}}, http.StatusUnprocessableEntity,
		"Kozmic could not read a git repository at "+notRepo+": git said: '"+notRepo+"' does not appear to be a git repository")

	root := t.TempDir()
	server := testrepo.ServeHTTP(t, root)
	checkRefusedProject(t, s, a, ann.ID, url.Values{"name": {"team/app"}, "git_url": {server + "/team/app.git"}}, http.StatusUnprocessableEntity,
		"Kozmic could not read a git repository at "+server+"/team/app.git: git said: repository '"+server+"/team/app.git/' not found")

	gitRepo(t, root, true)
	testrepo.Init(t).Git("init", "-q", "--bare", filepath.Join(root, "empty.git"))
	for name, u := range map[string]string{"team/app": server + "/repo.git", "team/empty": server + "/empty.git"} {
		res, page := a.do("POST", "/projects/new", url.Values{"name": {name}, "git_url": {u}})
		p, err := s.db.ProjectByName(ctx, name)
		if res.StatusCode != http.StatusSeeOther || err != nil {
			t.Fatalf("%s: %d, %v\n%s", u, res.StatusCode, err, page)
		}
		if want := map[string]string{"team/app": "main", "team/empty": ""}[name]; p.DefaultBranch != want {
			t.Errorf("%s: default branch %q, want %q", name, p.DefaultBranch, want)
		}
	}
}
