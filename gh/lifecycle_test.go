package gh

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"kozmic/internal/fakegithub"
	"kozmic/internal/testdb"
	"kozmic/store"
)

// newTestProjects is a Projects over a real database and the fake GitHub,
// with octocat (GitHub id 1, user 1) signed up.
func newTestProjects(t *testing.T) (*Projects, *store.DB, *fakegithub.Server) {
	t.Helper()
	g, fake := newTestGitHub(t)
	db := testdb.Open(t)
	if _, err := db.UpsertGitHubUser(context.Background(), store.GitHubUser{ID: 1, Login: "octocat", AccessToken: "tok"}); err != nil {
		t.Fatal(err)
	}
	return NewProjects(g, db, slog.New(slog.DiscardHandler)), db, fake
}

// Repairing a project that exists keeps it when GitHub refuses a step:
// only a project the failed call created is undone.
func TestCreateKeepsAnExistingProjectWhenGitHubRefuses(t *testing.T) {
	ps, db, fake := newTestProjects(t)
	ctx := context.Background()
	fake.Route("GET "+repoPath, 200, "repo.json")
	fake.Route("POST "+repoPath+"/hooks", 201, "hook.json")
	fake.Route("PATCH "+repoPath+"/hooks/12345678", 200, "hook.json")
	fake.Route("POST "+repoPath+"/keys", 201, "key.json")
	fake.Route("GET "+repoPath+"/collaborators", 200, "collaborators.json")
	fake.Script("GET "+repoPath+"/hooks", fakegithub.Reply{Status: 200, Body: `[]`},
		fakegithub.Reply{Status: 200, Body: `[{"id": 12345678, "config": {"url": "https://kozmic.example.com/webhooks/1"}}]`})
	fake.Script("GET "+repoPath+"/keys", fakegithub.Reply{Status: 200, Body: `[]`}, fakegithub.Reply{Status: 200, Body: `[]`})
	p, err := ps.Create(ctx, 1, "octocat/Hello-World")
	if err != nil || p.GitHubID != 1296269 {
		t.Fatalf("Create = %+v, %v", p, err)
	}

	// The key was removed on GitHub meanwhile, and adding it again is refused.
	fake.Script("POST "+repoPath+"/keys", fakegithub.Reply{Status: 422, Body: `{"message":"Validation Failed"}`})
	fake.Script("DELETE "+repoPath+"/hooks/12345678", fakegithub.Reply{Status: 204})
	_, err = ps.Create(ctx, 1, "octocat/Hello-World")
	var f *Failure
	if !errors.As(err, &f) || f.Msg != "GitHub answered: Validation Failed" || Message(err) != f.Msg {
		t.Fatalf("refused repair: %v", err)
	}
	if _, err := db.ProjectByID(ctx, p.ID); err != nil {
		t.Errorf("the existing project was deleted: %v", err)
	}
}

// A project takes its repository's default branch, which its badge shows,
// when it is created and again when it is repaired.
func TestCreateTakesTheRepositorysDefaultBranch(t *testing.T) {
	ps, db, fake := newTestProjects(t)
	ctx := context.Background()
	fake.Route("POST "+repoPath+"/hooks", 201, "hook.json")
	fake.Route("PATCH "+repoPath+"/hooks/12345678", 200, "hook.json")
	fake.Route("POST "+repoPath+"/keys", 201, "key.json")
	fake.Route("GET "+repoPath+"/collaborators", 200, "collaborators.json")
	fake.Script("GET "+repoPath+"/hooks", fakegithub.Reply{Status: 200, Body: `[]`},
		fakegithub.Reply{Status: 200, Body: `[{"id": 12345678, "config": {"url": "https://kozmic.example.com/webhooks/1"}}]`})
	fake.Script("GET "+repoPath+"/keys", fakegithub.Reply{Status: 200, Body: `[]`}, fakegithub.Reply{Status: 200, Body: `[]`})
	repo := fake.Fixture("repo.json") // default_branch: master
	renamed := strings.Replace(repo, `"default_branch": "master"`, `"default_branch": "trunk"`, 1)
	if renamed == repo {
		t.Fatal("repo.json has no default_branch master to rename")
	}
	// Each Create reads the repository twice: for itself and for the members' roles.
	fake.Script("GET "+repoPath, fakegithub.Reply{Status: 200, Body: repo}, fakegithub.Reply{Status: 200, Body: repo},
		fakegithub.Reply{Status: 200, Body: renamed}, fakegithub.Reply{Status: 200, Body: renamed})
	p, err := ps.Create(ctx, 1, "octocat/Hello-World")
	if err != nil || p.DefaultBranch != "master" {
		t.Fatalf("Create = default branch %q, %v; want master", p.DefaultBranch, err)
	}
	if p, err = ps.Create(ctx, 1, "octocat/Hello-World"); err != nil || p.DefaultBranch != "trunk" {
		t.Fatalf("repair = default branch %q, %v; want trunk", p.DefaultBranch, err)
	}
	if p, err = db.ProjectByID(ctx, p.ID); err != nil || p.DefaultBranch != "trunk" {
		t.Errorf("stored default branch %q, %v; want trunk", p.DefaultBranch, err)
	}
}

// Someone who may not manage an existing project cannot repair it, and a
// person without a GitHub token cannot act at all; neither gets as far as
// its webhooks or repositories.
func TestCreateRefusesWhoMayNot(t *testing.T) {
	ps, db, fake := newTestProjects(t)
	ctx := context.Background()
	fake.Route("GET "+repoPath, 200, "repo.json")
	if _, err := db.CreateProject(ctx, store.NewProject{OwnerID: 1, Source: store.SourceGitHub, GitHubID: 1296269,
		FullName: "octocat/Hello-World", WebhookSecret: "s"}); err != nil {
		t.Fatal(err)
	}
	hubot, err := db.UpsertGitHubUser(ctx, store.GitHubUser{ID: 2, Login: "hubot", AccessToken: "tok2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Create(ctx, hubot.ID, "octocat/Hello-World"); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("a stranger repairs the project: %v", err)
	}
	local, err := db.CreateLocalUser(ctx, "ann", "hash", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Create(ctx, local.ID, "octocat/Hello-World"); !errors.Is(err, ErrNotConnected) ||
		!strings.HasPrefix(Message(err), "Your account is not connected to GitHub") {
		t.Errorf("a local account creates a project: %v (%q)", err, Message(err))
	}
	if err := ps.SyncRepos(ctx, local.ID); !errors.Is(err, ErrNotConnected) {
		t.Errorf("a local account syncs repositories: %v", err)
	}
	for _, call := range []string{"GET " + repoPath + "/hooks", "POST " + repoPath + "/hooks", "GET /api/v3/user/repos"} {
		if n := len(fake.CallsTo(call)); n != 0 {
			t.Errorf("%s: called %d times", call, n)
		}
	}
}
