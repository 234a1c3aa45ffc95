package gh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"kozmic/git"
	"kozmic/internal/paths"
	"kozmic/store"
)

var (
	// ErrNotConnected means the user signed in without GitHub, so Kozmic
	// holds no token to act for them there.
	ErrNotConnected = errors.New("the account is not connected to GitHub")
	// ErrNotAllowed means the user's role in the project does not allow the step.
	ErrNotAllowed = errors.New("not allowed")
	// ErrNoAdminRights means the user may not administer the repository
	// on GitHub, or GitHub does not show it to them.
	ErrNoAdminRights = errors.New("no admin rights on the repository")
)

// Failure is a step that GitHub refused or Kozmic could not finish, with
// Msg saying so in words fit to show the person who asked (see Message).
type Failure struct {
	Msg string
	Err error
}

func (f *Failure) Error() string { return f.Msg + ": " + f.Err.Error() }
func (f *Failure) Unwrap() error { return f.Err }

// refused is the Failure of a GitHub call, told in GitHub's words.
func refused(err error) *Failure { return &Failure{Msg: Message(err), Err: err} }

// ProjectStore is what Projects needs of the database.
type ProjectStore interface {
	UserAccessToken(ctx context.Context, id int64) (string, error)
	CreateProject(ctx context.Context, np store.NewProject) (store.Project, error)
	ProjectByGitHubID(ctx context.Context, githubID int64) (store.Project, error)
	RoleOf(ctx context.Context, projectID, userID int64) (store.Role, error)
	DeleteProject(ctx context.Context, id int64) error
	WebhookSecret(ctx context.Context, projectID int64) (string, error)
	SetGitHubHookID(ctx context.Context, projectID, hookID int64) error
	SetDefaultBranch(ctx context.Context, projectID int64, branch string) error
	DeployKeyOf(ctx context.Context, projectID int64) (store.DeployKey, error)
	SetDeployKey(ctx context.Context, k store.DeployKey) error
	SyncMemberships(ctx context.Context, projectID int64, access []store.GitHubAccess) (int, error)
	SyncUserMemberships(ctx context.Context, userID int64, repos map[int64]bool) error
	ReplaceRepoCache(ctx context.Context, userID int64, own []store.CachedRepo, orgs []store.CachedOrg) error
}

// Projects ties GitHub projects to their repositories, acting on GitHub
// with the token of the user who asks: it makes projects of repositories
// (webhook, deploy key, members), deletes them with what they left on
// GitHub, keeps members in step with who may access the repository, and
// caches the repositories a user may make projects of.
type Projects struct {
	gh  *GitHub
	db  ProjectStore
	log *slog.Logger

	// recreating is held while a deploy key is replaced (JobDeployKey
	// re-creating a missing one, RegenerateDeployKey), so that jobs
	// starting together add one key, not one each, and a regeneration
	// does not cross them.
	recreating sync.Mutex
}

// NewProjects returns a Projects acting on g and recording in db.
func NewProjects(g *GitHub, db ProjectStore, log *slog.Logger) *Projects {
	return &Projects{gh: g, db: db, log: log}
}

// token is the user's GitHub token, or ErrNotConnected.
func (ps *Projects) token(ctx context.Context, userID int64) (string, error) {
	token, err := ps.db.UserAccessToken(ctx, userID)
	switch {
	case err != nil:
		return "", fmt.Errorf("read GitHub token of user %d: %w", userID, err)
	case token == "":
		return "", ErrNotConnected
	}
	return token, nil
}

// SyncRepos replaces the user's cache of repositories they may make
// projects of with what GitHub lists now. If GitHub or the database fails,
// the cache is left as it was; a store failure is a *Failure.
func (ps *Projects) SyncRepos(ctx context.Context, userID int64) error {
	token, err := ps.token(ctx, userID)
	if err != nil {
		return err
	}
	own, orgs, err := ps.gh.ProjectCandidates(ctx, token)
	if err != nil {
		return err
	}
	cached := func(repos []Repo) []store.CachedRepo {
		out := make([]store.CachedRepo, 0, len(repos))
		for _, x := range repos {
			out = append(out, store.CachedRepo{GitHubID: x.ID, FullName: x.FullName, SSHCloneURL: x.SSHURL,
				HTTPSCloneURL: x.HTTPSURL, IsPublic: !x.Private})
		}
		return out
	}
	var cachedOrgs []store.CachedOrg
	for _, o := range orgs {
		cachedOrgs = append(cachedOrgs, store.CachedOrg{GitHubID: o.ID, Login: o.Login, Name: o.Name, AvatarURL: o.AvatarURL, Repos: cached(o.Repos)})
	}
	if err := ps.db.ReplaceRepoCache(ctx, userID, cached(own), cachedOrgs); err != nil {
		return &Failure{Msg: "Kozmic could not save the list of repositories; try again.", Err: err}
	}
	return nil
}

// Create makes a project of the GitHub repository fullName, which the user
// must administer: the project, a webhook signed with a fresh secret, and
// for a private repository a read-only deploy key; then it syncs the
// members (a failure there is only logged). For a repository that is a
// project already, which the user must manage, it repairs the webhook and
// key instead. Either way the project takes the repository's default
// branch, which its badge shows. If GitHub refuses a step, what was done is
// undone: the webhook it set up is removed and a project it created deleted.
//
// Errors: ErrNotConnected; ErrNotAllowed for an existing project the user
// may not manage; a *Failure when GitHub refuses or the user lacks admin
// rights; anything else is a store failure.
func (ps *Projects) Create(ctx context.Context, userID int64, fullName string) (store.Project, error) {
	token, err := ps.token(ctx, userID)
	if err != nil {
		return store.Project{}, err
	}
	repo, err := ps.gh.Repo(ctx, token, fullName)
	if err != nil {
		return store.Project{}, refused(err)
	}
	if !repo.Admin {
		return store.Project{}, noAdminRights(repo.FullName)
	}
	if !validBranch(repo.DefaultBranch) {
		// An empty repository has one still; a strange one is not worth refusing the project for.
		repo.DefaultBranch = ""
	}
	p, err := ps.db.ProjectByGitHubID(ctx, repo.ID)
	created := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		p, err = ps.db.CreateProject(ctx, store.NewProject{OwnerID: userID, Source: store.SourceGitHub, GitHubID: repo.ID,
			FullName: repo.FullName, SSHCloneURL: repo.SSHURL, HTTPSCloneURL: repo.HTTPSURL, IsPublic: !repo.Private,
			DefaultBranch: repo.DefaultBranch, WebhookSecret: store.NewWebhookSecret()})
		if err != nil {
			return store.Project{}, err
		}
		created = true
	case err != nil:
		return store.Project{}, err
	default:
		if role, err := ps.db.RoleOf(ctx, p.ID, userID); err != nil || role < store.RoleManager {
			return store.Project{}, errors.Join(ErrNotAllowed, err)
		}
		if repo.DefaultBranch != "" && repo.DefaultBranch != p.DefaultBranch {
			if err := ps.db.SetDefaultBranch(ctx, p.ID, repo.DefaultBranch); err != nil {
				return store.Project{}, err
			}
			p.DefaultBranch = repo.DefaultBranch
		}
	}
	if err := ps.connect(ctx, token, p, repo); err != nil {
		if created {
			if derr := ps.db.DeleteProject(ctx, p.ID); derr != nil {
				ps.log.ErrorContext(ctx, "undo project creation", "project", p.ID, "err", derr)
			}
		}
		return store.Project{}, err
	}
	if err := ps.syncMembers(ctx, token, p); err != nil {
		ps.log.WarnContext(ctx, "sync members of new project", "project", p.ID, "err", err)
	}
	return p, nil
}

// noAdminRights is the Failure of a user without admin rights on fullName.
func noAdminRights(fullName string) *Failure {
	return &Failure{Msg: "Only someone with admin rights on " + fullName + " can make it a project.",
		Err: fmt.Errorf("%w: %s", ErrNoAdminRights, fullName)}
}

// Administers returns nil when the user may administer the GitHub
// repository fullName, as GitHub tells it with their token now.
//
// Errors: ErrNotConnected; a *Failure wrapping ErrNoAdminRights when they
// may not, or GitHub shows them no such repository; another *Failure when
// GitHub could not answer.
func (ps *Projects) Administers(ctx context.Context, userID int64, fullName string) error {
	token, err := ps.token(ctx, userID)
	if err != nil {
		return err
	}
	repo, err := ps.gh.Repo(ctx, token, fullName)
	switch {
	case statusCode(err) == http.StatusNotFound:
		return noAdminRights(fullName)
	case err != nil:
		return refused(err)
	case !repo.Admin:
		return noAdminRights(repo.FullName)
	}
	return nil
}

// connect ensures the project's webhook and, for a private repository, its
// deploy key on GitHub. When it fails it removes the webhook it set up and
// returns a *Failure.
func (ps *Projects) connect(ctx context.Context, token string, p store.Project, repo Repo) error {
	secret, err := ps.db.WebhookSecret(ctx, p.ID)
	if err != nil {
		return &Failure{Msg: "Kozmic could not read the project's webhook secret.", Err: err}
	}
	url := strings.TrimRight(ps.gh.cfg.BaseURL.String(), "/") + paths.Webhook(p.ID)
	hookID, err := ps.gh.EnsureWebhook(ctx, token, repo.FullName, url, secret)
	if err != nil {
		return refused(err)
	}
	if err := ps.db.SetGitHubHookID(ctx, p.ID, hookID); err != nil {
		return &Failure{Msg: "Kozmic could not save the webhook's id.", Err: err}
	}
	if !repo.Private {
		return nil
	}
	key, err := ps.db.DeployKeyOf(ctx, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		key = store.DeployKey{ProjectID: p.ID}
		key.PrivateKey, key.PublicKey, err = git.GenerateDeployKey("kozmic")
	}
	if err != nil {
		return &Failure{Msg: "Kozmic could not make a deploy key.", Err: err}
	}
	key.GitHubKeyID, err = ps.gh.EnsureDeployKey(ctx, token, repo.FullName, "Kozmic", key.PublicKey)
	if err == nil {
		err = ps.db.SetDeployKey(ctx, key)
	}
	if err != nil {
		if derr := ps.gh.DeleteWebhook(ctx, token, repo.FullName, hookID); derr != nil {
			ps.log.WarnContext(ctx, "undo webhook", "project", p.ID, "err", derr)
		}
		return refused(err)
	}
	return nil
}

// SyncMembers replaces the project's members with the people GitHub says
// may access its repository, asking as the user. Errors: ErrNotConnected,
// GitHub's, or the store's.
func (ps *Projects) SyncMembers(ctx context.Context, userID int64, p store.Project) error {
	token, err := ps.token(ctx, userID)
	if err != nil {
		return err
	}
	return ps.syncMembers(ctx, token, p)
}

func (ps *Projects) syncMembers(ctx context.Context, token string, p store.Project) error {
	access, err := ps.gh.RepoAccess(ctx, token, p.FullName)
	if err != nil {
		return err
	}
	acc := make([]store.GitHubAccess, len(access))
	for i, a := range access {
		acc[i] = store.GitHubAccess{GitHubID: a.GitHubID, Manage: a.Manage}
	}
	if _, err := ps.db.SyncMemberships(ctx, p.ID, acc); err != nil {
		return fmt.Errorf("sync members of project %d: %w", p.ID, err)
	}
	return nil
}

// SyncUserAccess brings the user's memberships in line with the
// repositories GitHub lets them see and push now, acting with token: at
// login, as their access may have changed since. On failure the
// memberships stay as they were.
func (ps *Projects) SyncUserAccess(ctx context.Context, userID int64, token string) error {
	repos, err := ps.gh.AccessibleRepos(ctx, token)
	if err != nil {
		return err
	}
	return ps.db.SyncUserMemberships(ctx, userID, repos)
}

// RegenerateDeployKey replaces the deploy key of the private GitHub project
// p with a new one, acting as the user: the new key is added on GitHub and
// stored, then the old one is deleted from GitHub. If adding or storing
// fails, the old key stays in use and the error is a *Failure (a key
// added but not stored is removed again). If only the old key's removal
// fails, the new key is in use and oldLeft is GitHub's answer, so that the
// old key can be removed by hand.
//
// Errors: ErrNotConnected; store.ErrInvalid for a public or non-GitHub
// project, which has no deploy key on GitHub; a *Failure.
func (ps *Projects) RegenerateDeployKey(ctx context.Context, userID int64, p store.Project) (k store.DeployKey, oldLeft string, err error) {
	if p.Source != store.SourceGitHub || p.IsPublic {
		return store.DeployKey{}, "", fmt.Errorf("regenerate deploy key of project %d: %w", p.ID, store.ErrInvalid)
	}
	token, err := ps.token(ctx, userID)
	if err != nil {
		return store.DeployKey{}, "", err
	}
	ps.recreating.Lock()
	defer ps.recreating.Unlock()
	old, err := ps.db.DeployKeyOf(ctx, p.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.DeployKey{}, "", &Failure{Msg: "Kozmic could not read the project's deploy key.", Err: err}
	}
	if k, err = ps.replaceDeployKey(ctx, token, p); err != nil {
		return store.DeployKey{}, "", err
	}
	if old.GitHubKeyID != 0 && old.GitHubKeyID != k.GitHubKeyID {
		if err := ps.gh.DeleteDeployKey(ctx, token, p.FullName, old.GitHubKeyID); err != nil {
			ps.log.WarnContext(ctx, "remove the replaced deploy key", "project", p.ID, "key", old.GitHubKeyID, "err", err)
			return k, Message(err), nil
		}
	}
	return k, "", nil
}

// replaceDeployKey makes a new deploy key, adds it to p's repository and
// stores it in place of the project's key, leaving the old one on GitHub.
// If storing fails, the added key is removed from GitHub again. Errors are
// *Failure.
func (ps *Projects) replaceDeployKey(ctx context.Context, token string, p store.Project) (store.DeployKey, error) {
	k := store.DeployKey{ProjectID: p.ID}
	var err error
	if k.PrivateKey, k.PublicKey, err = git.GenerateDeployKey("kozmic"); err != nil {
		return store.DeployKey{}, &Failure{Msg: "Kozmic could not make a deploy key.", Err: err}
	}
	if k.GitHubKeyID, err = ps.gh.AddDeployKey(ctx, token, p.FullName, "Kozmic", k.PublicKey); err != nil {
		return store.DeployKey{}, refused(err)
	}
	if err := ps.db.SetDeployKey(ctx, k); err != nil {
		if derr := ps.gh.DeleteDeployKey(ctx, token, p.FullName, k.GitHubKeyID); derr != nil {
			ps.log.WarnContext(ctx, "undo deploy key", "project", p.ID, "key", k.GitHubKeyID, "err", derr)
		}
		return store.DeployKey{}, &Failure{Msg: "Kozmic could not save the new deploy key.", Err: err}
	}
	return k, nil
}

// JobDeployKey returns the private deploy key a job of project p fetches
// with, stored being the one Kozmic holds ("" for none). For a private
// GitHub project it first checks, with one call as the project's owner,
// that GitHub still lists the stored key; a key missing in Kozmic or on
// GitHub is re-created (added on GitHub and stored) and returned instead.
// Whenever GitHub cannot be asked (the owner has no token, GitHub fails or
// refuses), the failure is logged and stored is returned: the job runs
// with what is stored.
func (ps *Projects) JobDeployKey(ctx context.Context, p store.Project, stored string) string {
	if p.Source != store.SourceGitHub || p.IsPublic {
		return stored
	}
	log := ps.log.With("project", p.ID)
	token, err := ps.token(ctx, p.OwnerID)
	if err != nil {
		log.WarnContext(ctx, "cannot check the deploy key on GitHub", "err", err)
		return stored
	}
	k, err := ps.db.DeployKeyOf(ctx, p.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		log.WarnContext(ctx, "read the deploy key", "err", err)
		return stored
	case k.GitHubKeyID != 0:
		listed, err := ps.gh.HasDeployKey(ctx, token, p.FullName, k.GitHubKeyID)
		if err != nil {
			log.WarnContext(ctx, "cannot check the deploy key on GitHub", "err", err)
			return stored
		}
		if listed {
			return k.PrivateKey
		}
	}
	ps.recreating.Lock()
	defer ps.recreating.Unlock()
	if again, err := ps.db.DeployKeyOf(ctx, p.ID); err == nil && again.GitHubKeyID != k.GitHubKeyID {
		return again.PrivateKey // another job re-created it meanwhile
	}
	nk, err := ps.replaceDeployKey(ctx, token, p)
	if err != nil {
		log.WarnContext(ctx, "re-create the missing deploy key", "err", err)
		return stored
	}
	log.InfoContext(ctx, "re-created the missing deploy key", "key", nk.GitHubKeyID, "replaced", k.GitHubKeyID)
	return nk.PrivateKey
}

// Delete deletes the project with everything that belongs to it. For a
// GitHub project it first removes the webhook and deploy key from GitHub
// (already gone is fine), acting as the user; if that fails nothing is
// deleted and the error is a *Failure.
func (ps *Projects) Delete(ctx context.Context, userID int64, p store.Project) error {
	if p.Source == store.SourceGitHub {
		if err := ps.disconnect(ctx, userID, p); err != nil {
			return refused(err)
		}
	}
	return ps.db.DeleteProject(ctx, p.ID)
}

// Leftover is something of a deleted project that stayed on GitHub, with
// the page where it can be removed by hand.
type Leftover struct {
	What string // "the webhook", "the deploy key"
	URL  string // the repository's settings page that lists it
}

// DeleteAnyway deletes the project like Delete, also when GitHub refuses
// to remove its webhook or deploy key (admin rights lost, say): it tries
// each and returns what stayed on GitHub. Only a store failure keeps the
// project.
func (ps *Projects) DeleteAnyway(ctx context.Context, userID int64, p store.Project) ([]Leftover, error) {
	var left []Leftover
	if p.Source == store.SourceGitHub {
		settings := strings.TrimRight(ps.gh.cfg.WebURL.String(), "/") + "/" + p.FullName + "/settings/"
		token, terr := ps.token(ctx, userID)
		remove := func(what, page string, del func() error) {
			err := terr
			if err == nil {
				err = del()
			}
			if err != nil {
				ps.log.WarnContext(ctx, "delete anyway: left on GitHub", "project", p.ID, "what", what, "err", err)
				left = append(left, Leftover{What: what, URL: settings + page})
			}
		}
		if p.GitHubHookID != 0 {
			remove("the webhook", "hooks", func() error { return ps.gh.DeleteWebhook(ctx, token, p.FullName, p.GitHubHookID) })
		}
		k, err := ps.db.DeployKeyOf(ctx, p.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		case k.GitHubKeyID != 0:
			remove("the deploy key", "keys", func() error { return ps.gh.DeleteDeployKey(ctx, token, p.FullName, k.GitHubKeyID) })
		}
	}
	return left, ps.db.DeleteProject(ctx, p.ID)
}

func (ps *Projects) disconnect(ctx context.Context, userID int64, p store.Project) error {
	token, err := ps.token(ctx, userID)
	if err != nil {
		return err
	}
	if p.GitHubHookID != 0 {
		if err := ps.gh.DeleteWebhook(ctx, token, p.FullName, p.GitHubHookID); err != nil {
			return err
		}
	}
	k, err := ps.db.DeployKeyOf(ctx, p.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case k.GitHubKeyID != 0:
		return ps.gh.DeleteDeployKey(ctx, token, p.FullName, k.GitHubKeyID)
	}
	return nil
}
