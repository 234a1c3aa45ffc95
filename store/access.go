package store

import (
	"context"
	"time"
)

// Role is what a user may do with a project.
type Role int

const (
	RoleNone    Role = iota
	RoleMember       // pull access: view
	RoleManager      // push access: view and configure
	RoleOwner        // created the project: view, configure and delete
)

func (r Role) String() string {
	return [...]string{"none", "member", "manager", "owner"}[r]
}

// RoleOf returns the user's role in the project: owner, manager, member or
// none. A missing project is ErrNotFound.
func (db *DB) RoleOf(ctx context.Context, projectID, userID int64) (Role, error) {
	var owner, manage, member bool
	err := db.read.QueryRowContext(ctx, `SELECT p.owner_id = ?2, COALESCE(m.allows_management, 0), m.user_id IS NOT NULL
		FROM projects p LEFT JOIN memberships m ON m.project_id = p.id AND m.user_id = ?2 WHERE p.id = ?1`,
		projectID, userID).Scan(&owner, &manage, &member)
	switch {
	case err != nil:
		return RoleNone, wrap("get role", err)
	case owner:
		return RoleOwner, nil
	case manage:
		return RoleManager, nil
	case member:
		return RoleMember, nil
	}
	return RoleNone, nil
}

// GitHubAccess is a GitHub user's access to a repository.
type GitHubAccess struct {
	GitHubID int64
	Manage   bool
}

// SyncMemberships replaces a project's memberships with the given access,
// for the people who have logged in to Kozmic; everyone else is skipped and
// the owner keeps owning. It returns how many memberships it set.
func (db *DB) SyncMemberships(ctx context.Context, projectID int64, access []GitHubAccess) (int, error) {
	n := 0
	err := db.writeTx(ctx, func(tx txn) error {
		if err := projectExists(ctx, tx, projectID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE project_id = ?`, projectID); err != nil {
			return wrap("clear memberships", err)
		}
		for _, a := range access {
			res, err := tx.ExecContext(ctx, `INSERT INTO memberships (project_id, user_id, allows_management)
				SELECT p.id, u.id, ? FROM projects p JOIN users u ON u.github_id = ? WHERE p.id = ? AND u.id <> p.owner_id`,
				a.Manage, a.GitHubID, projectID)
			if err != nil {
				return wrap("insert membership", err)
			}
			added, _ := res.RowsAffected()
			n += int(added)
		}
		return nil
	})
	return n, err
}

// SyncUserMemberships sets a user's memberships of GitHub projects from the
// repositories they can see (repository id → may manage), as at login: new
// access is added, changed access updated, lost access removed. Projects
// the user owns are left alone.
func (db *DB) SyncUserMemberships(ctx context.Context, userID int64, repos map[int64]bool) error {
	return db.writeTx(ctx, func(tx txn) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM memberships WHERE user_id = ?
			AND project_id IN (SELECT id FROM projects WHERE source = 'github')`, userID); err != nil {
			return wrap("clear user memberships", err)
		}
		for repoID, manage := range repos {
			if _, err := tx.ExecContext(ctx, `INSERT INTO memberships (project_id, user_id, allows_management)
				SELECT id, ?, ? FROM projects WHERE github_id = ? AND owner_id <> ?`, userID, manage, repoID, userID); err != nil {
				return wrap("insert user membership", err)
			}
		}
		return nil
	})
}

// CachedRepo is a repository in a user's repository cache.
type CachedRepo struct {
	GitHubID      int64
	FullName      string
	SSHCloneURL   string
	HTTPSCloneURL string
	IsPublic      bool
}

// CachedOrg is an organization in a user's repository cache, with the
// repositories the user may make projects of.
type CachedOrg struct {
	GitHubID  int64
	Login     string
	Name      string
	AvatarURL string
	Repos     []CachedRepo
}

// ReplaceRepoCache replaces the user's cached repositories and
// organizations in one transaction and records the time of the sync.
func (db *DB) ReplaceRepoCache(ctx context.Context, userID int64, own []CachedRepo, orgs []CachedOrg) error {
	return db.writeTx(ctx, func(tx txn) error {
		for _, q := range []string{`DELETE FROM user_repositories WHERE user_id = ?`, `DELETE FROM organizations WHERE user_id = ?`} {
			if _, err := tx.ExecContext(ctx, q, userID); err != nil {
				return wrap("clear repository cache", err)
			}
		}
		for _, r := range own {
			if _, err := tx.ExecContext(ctx, `INSERT INTO user_repositories (user_id, github_id, full_name, ssh_clone_url,
				https_clone_url, is_public) VALUES (?, ?, ?, ?, ?, ?)`,
				userID, r.GitHubID, r.FullName, r.SSHCloneURL, r.HTTPSCloneURL, r.IsPublic); err != nil {
				return wrap("cache repository", err)
			}
		}
		for _, o := range orgs {
			var orgID int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO organizations (user_id, github_id, login, name, avatar_url)
				VALUES (?, ?, ?, ?, ?) RETURNING id`, userID, o.GitHubID, o.Login, o.Name, o.AvatarURL).Scan(&orgID); err != nil {
				return wrap("cache organization", err)
			}
			for _, r := range o.Repos {
				if _, err := tx.ExecContext(ctx, `INSERT INTO organization_repositories (organization_id, github_id, full_name,
					ssh_clone_url, https_clone_url, is_public) VALUES (?, ?, ?, ?, ?, ?)`,
					orgID, r.GitHubID, r.FullName, r.SSHCloneURL, r.HTTPSCloneURL, r.IsPublic); err != nil {
					return wrap("cache organization repository", err)
				}
			}
		}
		return execOne(ctx, tx, "stamp repository sync", `UPDATE users SET repos_synced_at = ? WHERE id = ?`, db.nowMS(), userID)
	})
}

func scanCachedRepo(row scanner) (CachedRepo, error) {
	var r CachedRepo
	return r, row.Scan(&r.GitHubID, &r.FullName, &r.SSHCloneURL, &r.HTTPSCloneURL, &r.IsPublic)
}

// RepoCache returns a user's cached repositories and organizations, by
// name, and when they were synced (zero: never).
func (db *DB) RepoCache(ctx context.Context, userID int64) (own []CachedRepo, orgs []CachedOrg, synced time.Time, err error) {
	err = db.readTx(ctx, func(tx txn) error {
		if err := tx.QueryRowContext(ctx, `SELECT repos_synced_at FROM users WHERE id = ?`, userID).Scan(msTime{&synced}); err != nil {
			return wrap("get repository sync time", err)
		}
		var err error
		if own, err = queryAll(ctx, tx, "list cached repositories", scanCachedRepo, `SELECT github_id, full_name,
			ssh_clone_url, https_clone_url, is_public FROM user_repositories WHERE user_id = ? ORDER BY full_name`, userID); err != nil {
			return err
		}
		type org struct {
			id int64
			CachedOrg
		}
		os, err := queryAll(ctx, tx, "list cached organizations", func(row scanner) (org, error) {
			var o org
			return o, row.Scan(&o.id, &o.GitHubID, &o.Login, &o.Name, &o.AvatarURL)
		}, `SELECT id, github_id, login, name, avatar_url FROM organizations WHERE user_id = ? ORDER BY login`, userID)
		if err != nil {
			return err
		}
		for _, o := range os {
			if o.Repos, err = queryAll(ctx, tx, "list cached organization repositories", scanCachedRepo, `SELECT github_id,
				full_name, ssh_clone_url, https_clone_url, is_public FROM organization_repositories
				WHERE organization_id = ? ORDER BY full_name`, o.id); err != nil {
				return err
			}
			orgs = append(orgs, o.CachedOrg)
		}
		return nil
	})
	return own, orgs, synced, err
}
