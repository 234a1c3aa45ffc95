package store

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestLocalUsers(t *testing.T) {
	db := newTestDB(t)
	ctx := context.Background()
	for _, bad := range []string{"", "-admin", "has space", "a/b", "x23456789012345678901234567890123456789z"} {
		if _, err := db.CreateLocalUser(ctx, bad, "hash", false); !errors.Is(err, ErrInvalid) {
			t.Errorf("username %q: %v, want ErrInvalid", bad, err)
		}
	}
	admin, err := db.CreateLocalUser(ctx, "Admin", "hash-1", true)
	if err != nil {
		t.Fatal(err)
	}
	ann, _ := db.CreateLocalUser(ctx, "ann.lee", "hash-2", false)
	gu, _ := db.UpsertGitHubUser(ctx, GitHubUser{ID: 7, Login: "octocat"})
	if _, err := db.CreateLocalUser(ctx, "admin", "h", false); !errors.Is(err, ErrConflict) {
		t.Errorf("a second admin, differently cased: %v", err)
	}
	if u, err := db.UserByUsername(ctx, "ADMIN"); err != nil || u.ID != admin.ID || !u.IsAdmin || u.PasswordHash != "hash-1" {
		t.Errorf("UserByUsername = %+v, %v", u, err)
	}
	if _, err := db.UserByUsername(ctx, "octocat"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a GitHub login found as a username: %v", err)
	}
	users, err := db.LocalUsers(ctx)
	if err != nil || len(users) != 2 || users[0].ID != admin.ID || users[1].ID != ann.ID {
		t.Errorf("LocalUsers = %+v, %v", users, err)
	}
	if err := db.SetPasswordHash(ctx, ann.ID, "hash-3"); err != nil {
		t.Fatal(err)
	}
	if u, _ := db.UserByID(ctx, ann.ID); u.PasswordHash != "hash-3" {
		t.Errorf("password hash after change = %q", u.PasswordHash)
	}
	if err := db.SetPasswordHash(ctx, gu.ID, "hash"); !errors.Is(err, ErrNotFound) {
		t.Errorf("password for a GitHub user: %v", err)
	}
	if err := db.SetPasswordHash(ctx, ann.ID, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty password hash: %v", err)
	}
}

func TestRemoveMembership(t *testing.T) {
	db := newTestDB(t)
	ctx := context.Background()
	f := newFixture(t, db, "acme/app")
	ann, _ := db.CreateLocalUser(ctx, "ann", "h", false)
	if err := db.SetMembership(ctx, Membership{ProjectID: f.project.ID, UserID: ann.ID, AllowsManagement: true}); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.RoleOf(ctx, f.project.ID, ann.ID); r != RoleManager {
		t.Fatalf("role = %v", r)
	}
	if err := db.RemoveMembership(ctx, f.project.ID, ann.ID); err != nil {
		t.Fatal(err)
	}
	if r, _ := db.RoleOf(ctx, f.project.ID, ann.ID); r != RoleNone {
		t.Errorf("role after removal = %v", r)
	}
	if err := db.RemoveMembership(ctx, f.project.ID, ann.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second removal: %v", err)
	}
}

func TestCreateProjectWithDeployKey(t *testing.T) {
	db := newTestDB(t)
	ctx := context.Background()
	owner, _ := db.CreateLocalUser(ctx, "ann", "h", false)
	np := NewProject{OwnerID: owner.ID, Source: SourceGit, FullName: "team/app", GitURL: "git@git.example:team/app.git",
		WebhookSecret: "s", DeployKey: &DeployKey{PrivateKey: "-----PRIVATE-----", PublicKey: "ssh-ed25519 AAAA kozmic"}}
	p, err := db.CreateProject(ctx, np)
	if err != nil {
		t.Fatal(err)
	}
	k, err := db.DeployKeyOf(ctx, p.ID)
	if err != nil || k.PrivateKey != "-----PRIVATE-----" || k.PublicKey != "ssh-ed25519 AAAA kozmic" {
		t.Errorf("deploy key = %+v, %v", k, err)
	}
	// A project that cannot be stored leaves no key behind, and the reverse.
	if _, err := db.CreateProject(ctx, np); !errors.Is(err, ErrConflict) {
		t.Errorf("same name again: %v", err)
	}
	np.FullName, np.DeployKey = "team/other", &DeployKey{PublicKey: "only half"}
	if _, err := db.CreateProject(ctx, np); !errors.Is(err, ErrInvalid) {
		t.Errorf("half a key: %v", err)
	}
	var keys, projects int
	db.read.QueryRow(`SELECT (SELECT COUNT(*) FROM deploy_keys), (SELECT COUNT(*) FROM projects)`).Scan(&keys, &projects)
	if keys != 1 || projects != 1 {
		t.Errorf("%d keys, %d projects; want 1 and 1", keys, projects)
	}
}

func TestProjectNamesAreURLSafe(t *testing.T) {
	db := newTestDB(t)
	ctx := context.Background()
	owner, _ := db.CreateLocalUser(ctx, "ann", "h", false)
	for name, ok := range map[string]bool{"team/app": true, "My-Org/repo.name_2": true, "team/a#b": false, "team/a?b": false,
		"team/a%20b": false, "team/a b": false, "team/": false, "/app": false, "a/b/c": false, "<script>/x": false} {
		_, err := db.CreateProject(ctx, NewProject{OwnerID: owner.ID, Source: SourceGit, FullName: name, GitURL: "/srv/x", WebhookSecret: "s"})
		if (err == nil) != ok || (!ok && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%q: %v", name, err)
		}
	}
}

// SetGitHubAdmins makes exactly the listed GitHub logins admins, whatever
// their case, and leaves local users' admin rights alone.
func TestSetGitHubAdminsFollowsTheList(t *testing.T) {
	db := newTestDB(t)
	ctx := context.Background()
	root, _ := db.CreateLocalUser(ctx, "root", "hash", true)
	octocat, _ := db.UpsertGitHubUser(ctx, GitHubUser{ID: 1, Login: "OctoCat", IsAdmin: true})
	hubot, _ := db.UpsertGitHubUser(ctx, GitHubUser{ID: 2, Login: "hubot"})
	admins := func() (got []bool) {
		for _, id := range []int64{root.ID, octocat.ID, hubot.ID} {
			u, err := db.UserByID(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, u.IsAdmin)
		}
		return got
	}
	for _, tt := range []struct {
		logins []string
		n      int64
		want   []bool
	}{
		{[]string{"HUBOT", "octocat"}, 1, []bool{true, true, true}},
		{[]string{"hubot"}, 1, []bool{true, false, true}},
		{nil, 1, []bool{true, false, false}},
		{nil, 0, []bool{true, false, false}},
	} {
		n, err := db.SetGitHubAdmins(ctx, tt.logins)
		if got := admins(); err != nil || n != tt.n || !slices.Equal(got, tt.want) {
			t.Errorf("SetGitHubAdmins(%v) = %d, %v: admins %v, want %d changed and %v", tt.logins, n, err, got, tt.n, tt.want)
		}
	}
}
