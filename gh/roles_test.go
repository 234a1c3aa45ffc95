package gh

import (
	"context"
	"slices"
	"strings"
	"testing"

	"kozmic/internal/fakegithub"
)

func TestProjectCandidates(t *testing.T) {
	g, fake := newTestGitHub(t)
	fake.Route("GET /api/v3/user/repos", 200, "user_repos.json")
	fake.Route("GET /api/v3/user/orgs", 200, "user_orgs.json")
	fake.Route("GET /api/v3/user/teams", 200, "user_teams.json")
	fake.Route("GET /api/v3/orgs/github/teams/justice-league/repos", 200, "team_repos.json")
	own, orgs, err := g.ProjectCandidates(context.Background(), "tok")
	if err != nil {
		t.Fatal(err)
	}
	if len(own) != 2 || own[0].FullName != "octocat/Hello-World" || !own[0].Private || own[1].Private {
		t.Errorf("own repositories = %+v", own)
	}
	if len(orgs) != 1 || orgs[0].Login != "github" || len(orgs[0].Repos) != 1 || orgs[0].Repos[0].FullName != "github/kozmic-ci" {
		t.Errorf("organizations = %+v", orgs)
	}
	if calls := fake.CallsTo("GET /api/v3/user/repos"); len(calls) != 1 || !strings.Contains(calls[0].Query, "affiliation=owner") {
		t.Errorf("own repositories asked as %+v", calls)
	}
	// Only the admin team's repositories were read, not the pull-only team's.
	if n := len(fake.CallsTo("GET /api/v3/orgs/github/teams/readers/repos")); n != 0 {
		t.Errorf("a pull-only team's repositories were listed")
	}
}

func accessString(acc []Access) string {
	var s []string
	for _, a := range acc {
		role := "member"
		if a.Manage {
			role = "manager"
		}
		s = append(s, a.Login+":"+role)
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func TestRepoAccessOfAUsersRepository(t *testing.T) {
	g, fake := newTestGitHub(t)
	fake.Route("GET "+repoPath, 200, "repo.json")
	// Two pages, linked the way GitHub links them.
	fake.Script("GET "+repoPath+"/collaborators", fakegithub.Reply{Status: 200, Body: fake.Fixture("collaborators.json"),
		Headers: map[string]string{"Link": `<` + fake.WebURL().String() + repoPath + `/collaborators?page=2>; rel="next", <` + fake.WebURL().String() + repoPath + `/collaborators?page=2>; rel="last"`}})
	fake.Route("GET "+repoPath+"/collaborators", 200, "collaborators_page2.json")
	acc, err := g.RepoAccess(context.Background(), "tok", "octocat/Hello-World")
	if err != nil {
		t.Fatal(err)
	}
	if got := accessString(acc); got != "hubot:manager monalisa:member octocat:manager" {
		t.Errorf("access = %s", got)
	}
}

func TestRepoAccessOfAnOrganizationsRepository(t *testing.T) {
	g, fake := newTestGitHub(t)
	fake.Route("GET /api/v3/repos/github/kozmic-ci", 200, "org_repo.json")
	fake.Route("GET /api/v3/repos/github/kozmic-ci/teams", 200, "repo_teams.json")
	fake.Route("GET /api/v3/orgs/github/teams/justice-league/members", 200, "team_members_pushers.json")
	fake.Route("GET /api/v3/orgs/github/teams/readers/members", 200, "team_members_readers.json")
	fake.Route("GET /api/v3/orgs/github/members", 200, "org_admins.json")
	acc, err := g.RepoAccess(context.Background(), "tok", "github/kozmic-ci")
	if err != nil {
		t.Fatal(err)
	}
	// hubot pushes through one team and reads through another: the larger right wins.
	if got := accessString(acc); got != "hubot:manager monalisa:member octocat:manager" {
		t.Errorf("access = %s", got)
	}
	if calls := fake.CallsTo("GET /api/v3/orgs/github/members"); len(calls) != 1 || !strings.Contains(calls[0].Query, "role=admin") {
		t.Errorf("organization owners asked as %+v", calls)
	}
	if n := len(fake.CallsTo("GET /api/v3/repos/github/kozmic-ci/collaborators")); n != 0 {
		t.Error("collaborators were listed for an organization's repository")
	}
}

func TestAccessibleRepos(t *testing.T) {
	g, fake := newTestGitHub(t)
	fake.Script("GET /api/v3/user/repos", fakegithub.Reply{Status: 200, Body: `[
		{"id": 10, "full_name": "a/pushable", "permissions": {"admin": false, "push": true, "pull": true}},
		{"id": 11, "full_name": "a/readable", "permissions": {"admin": false, "push": false, "pull": true}}]`})
	m, err := g.AccessibleRepos(context.Background(), "tok")
	if err != nil || len(m) != 2 || !m[10] || m[11] {
		t.Errorf("accessible = %v, %v", m, err)
	}
}
