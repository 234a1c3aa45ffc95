package gh

import (
	"context"
	"fmt"

	"github.com/google/go-github/v60/github"
)

// all gathers every page of a GitHub listing; list fetches one page.
func all[T any](list func(opts github.ListOptions) ([]T, *github.Response, error)) ([]T, error) {
	var out []T
	opts := github.ListOptions{PerPage: 100}
	for {
		items, res, err := list(opts)
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if res == nil || res.NextPage == 0 {
			return out, nil
		}
		opts.Page = res.NextPage
	}
}

// Org is a GitHub organization with the repositories the user may make
// projects of.
type Org struct {
	ID        int64
	Login     string
	Name      string
	AvatarURL string
	Repos     []Repo
}

// ProjectCandidates lists the repositories the user may make projects of:
// their own, and those of each of their organizations that one of their
// teams administers (the original get_gh_repos and get_gh_org_repos).
func (g *GitHub) ProjectCandidates(ctx context.Context, token string) ([]Repo, []Org, error) {
	c := g.client(ctx, token)
	own, err := all(func(o github.ListOptions) ([]*github.Repository, *github.Response, error) {
		return c.Repositories.ListByAuthenticatedUser(ctx, &github.RepositoryListByAuthenticatedUserOptions{Affiliation: "owner", Sort: "full_name", ListOptions: o})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list your repositories: %w", err)
	}
	orgs, err := all(func(o github.ListOptions) ([]*github.Organization, *github.Response, error) {
		return c.Organizations.List(ctx, "", &o)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list your organizations: %w", err)
	}
	teams, err := all(func(o github.ListOptions) ([]*github.Team, *github.Response, error) {
		return c.Teams.ListUserTeams(ctx, &o)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list your teams: %w", err)
	}
	var out []Org
	for _, org := range orgs {
		o := Org{ID: org.GetID(), Login: org.GetLogin(), Name: org.GetName(), AvatarURL: org.GetAvatarURL()}
		seen := map[int64]bool{}
		for _, t := range teams {
			if t.GetOrganization().GetID() != org.GetID() || t.GetPermission() != "admin" {
				continue
			}
			repos, err := all(func(lo github.ListOptions) ([]*github.Repository, *github.Response, error) {
				return c.Teams.ListTeamReposBySlug(ctx, org.GetLogin(), t.GetSlug(), &lo)
			})
			if err != nil {
				return nil, nil, fmt.Errorf("list the repositories of team %s/%s: %w", org.GetLogin(), t.GetSlug(), err)
			}
			for _, r := range repos {
				if !seen[r.GetID()] {
					seen[r.GetID()] = true
					o.Repos = append(o.Repos, repoOf(r))
				}
			}
		}
		out = append(out, o)
	}
	ownRepos := make([]Repo, len(own))
	for i, r := range own {
		ownRepos[i] = repoOf(r)
	}
	return ownRepos, out, nil
}

// Access is one GitHub user's access to a repository: to manage (push or
// admin) or just to see it (pull).
type Access struct {
	GitHubID int64
	Login    string
	Manage   bool
}

// RepoAccess lists who may access a repository (the original
// sync_memberships_with_github): for a user's repository its collaborators;
// for an organization's, the members of its teams with each team's
// permission, and the organization's owners, who manage.
func (g *GitHub) RepoAccess(ctx context.Context, token, fullName string) ([]Access, error) {
	owner, name, err := splitName(fullName)
	if err != nil {
		return nil, err
	}
	c := g.client(ctx, token)
	repo, _, err := c.Repositories.Get(ctx, owner, name)
	if err != nil {
		return nil, fmt.Errorf("read repository %s: %w", fullName, err)
	}
	acc := map[int64]Access{}
	add := func(u *github.User, manage bool) {
		a := acc[u.GetID()]
		acc[u.GetID()] = Access{GitHubID: u.GetID(), Login: u.GetLogin(), Manage: a.Manage || manage}
	}
	if repo.GetOwner().GetType() != "Organization" {
		users, err := all(func(o github.ListOptions) ([]*github.User, *github.Response, error) {
			return c.Repositories.ListCollaborators(ctx, owner, name, &github.ListCollaboratorsOptions{Affiliation: "all", ListOptions: o})
		})
		if err != nil {
			return nil, fmt.Errorf("list the collaborators of %s: %w", fullName, err)
		}
		for _, u := range users {
			p := u.GetPermissions()
			add(u, p["admin"] || p["push"])
		}
		return values(acc), nil
	}
	teams, err := all(func(o github.ListOptions) ([]*github.Team, *github.Response, error) {
		return c.Repositories.ListTeams(ctx, owner, name, &o)
	})
	if err != nil {
		return nil, fmt.Errorf("list the teams of %s: %w", fullName, err)
	}
	for _, t := range teams {
		members, err := all(func(o github.ListOptions) ([]*github.User, *github.Response, error) {
			return c.Teams.ListTeamMembersBySlug(ctx, owner, t.GetSlug(), &github.TeamListTeamMembersOptions{ListOptions: o})
		})
		if err != nil {
			return nil, fmt.Errorf("list the members of team %s/%s: %w", owner, t.GetSlug(), err)
		}
		manage := map[string]bool{"admin": true, "maintain": true, "push": true}[t.GetPermission()]
		for _, u := range members {
			add(u, manage)
		}
	}
	owners, err := all(func(o github.ListOptions) ([]*github.User, *github.Response, error) {
		return c.Organizations.ListMembers(ctx, owner, &github.ListMembersOptions{Role: "admin", ListOptions: o})
	})
	if err != nil {
		return nil, fmt.Errorf("list the owners of %s: %w", owner, err)
	}
	for _, u := range owners {
		add(u, true)
	}
	return values(acc), nil
}

func values(m map[int64]Access) []Access {
	out := make([]Access, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	return out
}

// AccessibleRepos maps the id of every repository the user can see to
// whether they may manage it (push or admin): their memberships at login.
func (g *GitHub) AccessibleRepos(ctx context.Context, token string) (map[int64]bool, error) {
	c := g.client(ctx, token)
	repos, err := all(func(o github.ListOptions) ([]*github.Repository, *github.Response, error) {
		return c.Repositories.ListByAuthenticatedUser(ctx, &github.RepositoryListByAuthenticatedUserOptions{ListOptions: o})
	})
	if err != nil {
		return nil, fmt.Errorf("list your repositories: %w", err)
	}
	m := make(map[int64]bool, len(repos))
	for _, r := range repos {
		m[r.GetID()] = repoOf(r).Push
	}
	return m, nil
}
