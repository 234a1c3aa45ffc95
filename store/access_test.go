package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRolesAndMembershipSync(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	owner, _ := db.UpsertGitHubUser(ctx, GitHubUser{ID: 1, Login: "octocat"})
	hubot, _ := db.UpsertGitHubUser(ctx, GitHubUser{ID: 2, Login: "hubot"})
	mona, _ := db.UpsertGitHubUser(ctx, GitHubUser{ID: 3, Login: "monalisa"})
	p, err := db.CreateProject(ctx, NewProject{OwnerID: owner.ID, Source: SourceGitHub, GitHubID: 1296269,
		FullName: "octocat/Hello-World", WebhookSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.SyncMemberships(ctx, p.ID, []GitHubAccess{
		{GitHubID: 1, Manage: true},  // the owner: stays owner
		{GitHubID: 2, Manage: true},  // hubot pushes
		{GitHubID: 3, Manage: false}, // monalisa reads
		{GitHubID: 99, Manage: true}, // never logged in to Kozmic: skipped
	})
	if err != nil || n != 2 {
		t.Fatalf("SyncMemberships = %d, %v; want 2", n, err)
	}
	roles := map[int64]Role{owner.ID: RoleOwner, hubot.ID: RoleManager, mona.ID: RoleMember}
	for id, want := range roles {
		if got, err := db.RoleOf(ctx, p.ID, id); err != nil || got != want {
			t.Errorf("role of user %d = %s, %v; want %s", id, got, err, want)
		}
	}
	if _, err := db.RoleOf(ctx, 999, owner.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("role in a missing project: %v", err)
	}

	// A later sync replaces: hubot lost push, monalisa lost access.
	if _, err := db.SyncMemberships(ctx, p.ID, []GitHubAccess{{GitHubID: 2}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.RoleOf(ctx, p.ID, hubot.ID); r != RoleMember {
		t.Errorf("hubot after losing push = %s", r)
	}
	if r, _ := db.RoleOf(ctx, p.ID, mona.ID); r != RoleNone {
		t.Errorf("monalisa after losing access = %s", r)
	}

	// At login: monalisa can push the repository again; a repository that is
	// no project changes nothing.
	if err := db.SyncUserMemberships(ctx, mona.ID, map[int64]bool{1296269: true, 5555: true}); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.RoleOf(ctx, p.ID, mona.ID); r != RoleManager {
		t.Errorf("monalisa after login = %s", r)
	}
	if err := db.SyncUserMemberships(ctx, mona.ID, map[int64]bool{}); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.RoleOf(ctx, p.ID, mona.ID); r != RoleNone {
		t.Errorf("monalisa after losing everything = %s", r)
	}
	if err := db.SyncUserMemberships(ctx, owner.ID, map[int64]bool{}); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.RoleOf(ctx, p.ID, owner.ID); r != RoleOwner {
		t.Errorf("owner after an empty login sync = %s", r)
	}
}

func TestRepoCache(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	u, _ := db.UpsertGitHubUser(ctx, GitHubUser{ID: 1, Login: "octocat"})
	if _, _, synced, err := db.RepoCache(ctx, u.ID); err != nil || !synced.IsZero() {
		t.Fatalf("fresh cache: synced %v, %v", synced, err)
	}
	own := []CachedRepo{{GitHubID: 2, FullName: "octocat/b"}, {GitHubID: 1, FullName: "octocat/a", IsPublic: true}}
	orgs := []CachedOrg{{GitHubID: 9, Login: "github", Repos: []CachedRepo{{GitHubID: 3, FullName: "github/c"}}}}
	if err := db.ReplaceRepoCache(ctx, u.ID, own, orgs); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceRepoCache(ctx, u.ID, own, orgs); err != nil { // a second sync replaces, no duplicates
		t.Fatal(err)
	}
	gotOwn, gotOrgs, synced, err := db.RepoCache(ctx, u.ID)
	if err != nil || synced.IsZero() || len(gotOwn) != 2 || gotOwn[0].FullName != "octocat/a" || !gotOwn[0].IsPublic ||
		len(gotOrgs) != 1 || len(gotOrgs[0].Repos) != 1 || gotOrgs[0].Repos[0].FullName != "github/c" {
		t.Errorf("cache = %+v %+v %v %v", gotOwn, gotOrgs, synced, err)
	}
}

// The dashboard's listing: the projects a user owns or is a member of, by
// name, each with its newest build or none, and nobody else's.
func TestProjectsWithLatestBuild(t *testing.T) {
	ctx := context.Background()
	db := newTestDB(t)
	mine := newFixture(t, db, "acme/widget")  // builds on two refs
	empty := newFixture(t, db, "acme/empty")  // no builds; a member of it manages
	shared := newFixture(t, db, "zed/shared") // a member of it reads
	other := newFixture(t, db, "zed/other")   // not a member: not listed
	if err := db.SetMembership(ctx, Membership{ProjectID: shared.project.ID, UserID: mine.owner.ID}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMembership(ctx, Membership{ProjectID: empty.project.ID, UserID: mine.owner.ID, AllowsManagement: true}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []struct {
		p        Project
		ref, sha string
	}{
		{mine.project, "refs/heads/main", "a1"}, {mine.project, "refs/heads/dev", "a2"}, {mine.project, "refs/heads/main", "a3"},
		{shared.project, "refs/heads/main", "s1"}, {other.project, "refs/heads/main", "o1"}, {other.project, "refs/heads/main", "o2"},
	} {
		if _, _, err := db.CreateBuild(ctx, NewBuild{ProjectID: b.p.ID, Ref: b.ref, SHA: b.sha}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ProjectsWithLatestBuild(ctx, mine.owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.FullName)
	}
	if strings.Join(names, " ") != "acme/empty acme/widget zed/shared" {
		t.Fatalf("listed %v, want acme/empty, acme/widget and zed/shared", names)
	}
	if got[0].Latest != nil {
		t.Errorf("acme/empty has latest build %+v", got[0].Latest)
	}
	for _, s := range got[1:] {
		want, err := db.LatestBuild(ctx, s.ID, "")
		if err != nil {
			t.Fatal(err)
		}
		if s.Latest == nil || !reflect.DeepEqual(*s.Latest, want) {
			t.Errorf("%s: latest = %+v, want %+v", s.FullName, s.Latest, want)
		}
	}
	if l := got[1].Latest; l == nil || l.SHA != "a3" || l.Number != 3 {
		t.Errorf("acme/widget's latest = %+v, want build 3 of a3", l)
	}
	projects, _ := db.ProjectsOf(ctx, mine.owner.ID)
	for i, p := range projects {
		if i >= len(got) || p != got[i].Project {
			t.Errorf("ProjectsOf lists %+v where ProjectsWithLatestBuild lists %+v", projects, got)
			break
		}
	}
}
