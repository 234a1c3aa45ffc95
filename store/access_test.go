package store

import (
	"context"
	"errors"
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
