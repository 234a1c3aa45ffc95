package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"kozmic/gh"
	"kozmic/internal/paths"
	"kozmic/store"
	"kozmic/views"
)

// projectFor loads the project named in the path and checks that the
// signed-in user's role allows need: RoleMember to view (anyone may view a
// public project), RoleManager to configure, RoleOwner to delete. Someone
// who may not view it gets store.ErrNotFound, as if it did not exist;
// someone who may view but not act gets errForbidden.
func (h *Handler) projectFor(r *http.Request, need store.Role) (store.Project, store.Role, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return store.Project{}, store.RoleNone, store.ErrNotFound
	}
	p, err := h.db.ProjectByID(r.Context(), id)
	if err != nil {
		return store.Project{}, store.RoleNone, err
	}
	role, err := h.db.RoleOf(r.Context(), id, user(r).ID)
	if err != nil {
		return store.Project{}, store.RoleNone, err
	}
	switch {
	case role == store.RoleNone && !p.IsPublic:
		return store.Project{}, role, store.ErrNotFound
	case role < need && need > store.RoleMember:
		return store.Project{}, role, errForbidden
	}
	return p, role, nil
}

// token is the signed-in user's GitHub token; empty for local accounts.
func (h *Handler) token(r *http.Request) (string, error) {
	return h.db.UserAccessToken(r.Context(), user(r).ID)
}

func (h *Handler) repositories(w http.ResponseWriter, r *http.Request) {
	u := user(r)
	own, orgs, synced, err := h.db.RepoCache(r.Context(), u.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if synced.IsZero() {
		// Never read from GitHub: read now, so the first visit is not empty.
		if msg := h.syncRepoCache(r); msg != "" {
			h.renderRepositories(w, r, nil, nil, synced, msg)
			return
		}
		if own, orgs, synced, err = h.db.RepoCache(r.Context(), u.ID); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	h.renderRepositories(w, r, own, orgs, synced, "")
}

func (h *Handler) renderRepositories(w http.ResponseWriter, r *http.Request, own []store.CachedRepo, orgs []store.CachedOrg, synced time.Time, errMsg string) {
	projects, err := h.db.ProjectsOf(r.Context(), user(r).ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	projectOf := map[string]int64{}
	for _, p := range projects {
		projectOf[p.FullName] = p.ID
	}
	group := func(title string, repos []store.CachedRepo) views.RepoGroup {
		g := views.RepoGroup{Title: title}
		for _, c := range repos {
			g.Repos = append(g.Repos, views.RepoView{FullName: c.FullName, Private: !c.IsPublic, ProjectID: projectOf[c.FullName]})
		}
		return g
	}
	v := views.RepositoriesView{User: user(r).Login(), Error: errMsg, SyncedAt: "never"}
	if !synced.IsZero() {
		v.SyncedAt = "at " + synced.Local().Format("2 Jan 15:04")
	}
	if errMsg == "" {
		v.Groups = append(v.Groups, group("Your repositories", own))
		for _, o := range orgs {
			v.Groups = append(v.Groups, group(o.Login, o.Repos))
		}
	}
	h.render(w, r, http.StatusOK, views.RepositoriesPage(v))
}

// syncRepoCache reads the user's repositories from GitHub into the cache.
// It returns what to tell the user when that failed.
func (h *Handler) syncRepoCache(r *http.Request) string {
	token, err := h.token(r)
	if err != nil || token == "" {
		return "Your account is not connected to GitHub: sign in with GitHub to list its repositories."
	}
	own, orgs, err := h.github.ProjectCandidates(r.Context(), token)
	if err != nil {
		h.log.WarnContext(r.Context(), "list repositories", "user", user(r).ID, "err", err)
		return gh.Message(err)
	}
	cached := func(repos []gh.Repo) []store.CachedRepo {
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
	if err := h.db.ReplaceRepoCache(r.Context(), user(r).ID, cached(own), cachedOrgs); err != nil {
		h.log.ErrorContext(r.Context(), "store repository cache", "user", user(r).ID, "err", err)
		return "Kozmic could not save the list of repositories; try again."
	}
	return ""
}

func (h *Handler) syncRepositories(w http.ResponseWriter, r *http.Request) {
	if msg := h.syncRepoCache(r); msg != "" {
		h.renderRepositories(w, r, nil, nil, time.Time{}, msg)
		return
	}
	http.Redirect(w, r, "/repositories", http.StatusSeeOther)
}

// createProject makes a project of a GitHub repository the user
// administers: the project, a webhook signed with a fresh secret, and for a
// private repository a read-only deploy key; then it syncs the members. For
// a repository that is a project already, it repairs the webhook and key
// instead. If GitHub refuses a step, what was done is undone and GitHub's
// answer is shown.
func (h *Handler) createProject(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token, err := h.token(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if token == "" {
		h.fail(w, r, errForbidden)
		return
	}
	repo, err := h.github.Repo(ctx, token, r.PostFormValue("repo"))
	if err != nil {
		h.renderRepositories(w, r, nil, nil, time.Time{}, gh.Message(err))
		return
	}
	if !repo.Admin {
		h.renderRepositories(w, r, nil, nil, time.Time{}, "Only someone with admin rights on "+repo.FullName+" can make it a project.")
		return
	}
	p, err := h.db.ProjectByGitHubID(ctx, repo.ID)
	created := false
	switch {
	case errors.Is(err, store.ErrNotFound):
		p, err = h.db.CreateProject(ctx, store.NewProject{OwnerID: user(r).ID, Source: store.SourceGitHub, GitHubID: repo.ID,
			FullName: repo.FullName, SSHCloneURL: repo.SSHURL, HTTPSCloneURL: repo.HTTPSURL, IsPublic: !repo.Private,
			WebhookSecret: store.NewWebhookSecret()})
		if err != nil {
			h.fail(w, r, err)
			return
		}
		created = true
	case err != nil:
		h.fail(w, r, err)
		return
	default:
		if role, err := h.db.RoleOf(ctx, p.ID, user(r).ID); err != nil || role < store.RoleManager {
			h.fail(w, r, errors.Join(errForbidden, err))
			return
		}
	}
	if msg, err := h.connect(ctx, token, p, repo); err != nil {
		h.log.WarnContext(r.Context(), "connect project to GitHub", "project", p.ID, "err", err)
		if created {
			if err := h.db.DeleteProject(ctx, p.ID); err != nil {
				h.log.ErrorContext(r.Context(), "undo project creation", "project", p.ID, "err", err)
			}
		}
		h.renderRepositories(w, r, nil, nil, time.Time{}, msg)
		return
	}
	if _, err := h.syncProjectMembers(ctx, token, p); err != nil {
		h.log.WarnContext(r.Context(), "sync members of new project", "project", p.ID, "err", err)
	}
	http.Redirect(w, r, paths.Project(p.ID), http.StatusSeeOther)
}

// connect ensures the project's webhook and, for a private repository, its
// deploy key on GitHub. When it fails it removes a webhook it created and
// returns what to tell the user.
func (h *Handler) connect(ctx context.Context, token string, p store.Project, repo gh.Repo) (string, error) {
	secret, err := h.db.WebhookSecret(ctx, p.ID)
	if err != nil {
		return "Kozmic could not read the project's webhook secret.", err
	}
	hookID, err := h.github.EnsureWebhook(ctx, token, repo.FullName, h.baseURL+paths.Webhook(p.ID), secret)
	if err != nil {
		return gh.Message(err), err
	}
	if err := h.db.SetGitHubHookID(ctx, p.ID, hookID); err != nil {
		return "Kozmic could not save the webhook's id.", err
	}
	if !repo.Private {
		return "", nil
	}
	key, err := h.db.DeployKeyOf(ctx, p.ID)
	if errors.Is(err, store.ErrNotFound) {
		key = store.DeployKey{ProjectID: p.ID}
		key.PrivateKey, key.PublicKey, err = gh.GenerateDeployKey("kozmic")
	}
	if err != nil {
		return "Kozmic could not make a deploy key.", err
	}
	key.GitHubKeyID, err = h.github.EnsureDeployKey(ctx, token, repo.FullName, "Kozmic", key.PublicKey)
	if err == nil {
		err = h.db.SetDeployKey(ctx, key)
	}
	if err != nil {
		if derr := h.github.DeleteWebhook(ctx, token, repo.FullName, hookID); derr != nil {
			h.log.WarnContext(ctx, "undo webhook", "project", p.ID, "err", derr)
		}
		return gh.Message(err), err
	}
	return "", nil
}

// syncProjectMembers replaces the project's members with the people GitHub
// says may access the repository.
func (h *Handler) syncProjectMembers(ctx context.Context, token string, p store.Project) (int, error) {
	access, err := h.github.RepoAccess(ctx, token, p.FullName)
	if err != nil {
		return 0, err
	}
	acc := make([]store.GitHubAccess, len(access))
	for i, a := range access {
		acc[i] = store.GitHubAccess{GitHubID: a.GitHubID, Manage: a.Manage}
	}
	return h.db.SyncMemberships(ctx, p.ID, acc)
}

func (h *Handler) showProject(w http.ResponseWriter, r *http.Request) {
	p, role, err := h.projectFor(r, store.RoleMember)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.projectView(r, p, role)
	if err == nil {
		v.Builds, err = h.buildsSection(r, p)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	switch q := r.URL.Query(); {
	case q.Has("synced"):
		v.Flash = "Members synced with GitHub."
	case q.Has("people"):
		v.Flash = "People saved."
	case q.Has("created") && v.DeployKey != "" && p.Source == store.SourceGit:
		v.Flash = "Project created. Give its deploy key (below) read access on the git server, add a hook in its settings, then run a build."
	case q.Has("created"):
		v.Flash = "Project created. Add a hook in its settings, then run a build."
	}
	h.render(w, r, http.StatusOK, views.ProjectPage(v))
}

func (h *Handler) projectView(r *http.Request, p store.Project, role store.Role) (views.ProjectView, error) {
	ctx := r.Context()
	v := views.ProjectView{User: user(r).Login(), ID: p.ID, FullName: p.FullName, Public: p.IsPublic, Role: role.String(),
		CanConfigure: role >= store.RoleManager, CanDelete: role == store.RoleOwner}
	owner, err := h.db.UserByID(ctx, p.OwnerID)
	if err != nil {
		return v, err
	}
	v.Owner = owner.Login()
	members, err := h.db.Memberships(ctx, p.ID)
	if err != nil {
		return v, err
	}
	for _, m := range members {
		v.Members = append(v.Members, views.MemberView{UserID: m.UserID, Login: m.Login, Manager: m.AllowsManagement})
	}
	if !v.CanConfigure {
		return v, nil
	}
	v.WebhookURL = h.baseURL + paths.Webhook(p.ID)
	if k, err := h.db.DeployKeyOf(ctx, p.ID); err == nil {
		v.DeployKey = k.PublicKey
	} else if !errors.Is(err, store.ErrNotFound) {
		return v, err
	}
	if p.Source == store.SourceGit {
		return v, h.gitProjectView(ctx, &v, p, role)
	}
	return v, nil
}

func (h *Handler) syncMembers(w http.ResponseWriter, r *http.Request) {
	p, role, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	token, err := h.token(r)
	if err == nil && token == "" {
		err = errForbidden
	}
	if err == nil {
		_, err = h.syncProjectMembers(r.Context(), token, p)
	}
	if err != nil {
		h.log.WarnContext(r.Context(), "sync members", "project", p.ID, "err", err)
		v, verr := h.projectView(r, p, role)
		if verr != nil {
			h.fail(w, r, verr)
			return
		}
		v.Error = gh.Message(err)
		h.render(w, r, http.StatusBadGateway, views.ProjectPage(v))
		return
	}
	http.Redirect(w, r, paths.Project(p.ID)+"?synced", http.StatusSeeOther)
}

func (h *Handler) confirmDeleteProject(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleOwner)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, views.DeleteProjectPage(views.DeleteProjectView{User: user(r).Login(), ID: p.ID, FullName: p.FullName, GitHub: p.Source == store.SourceGitHub}))
}

// deleteProject removes the project's webhook and deploy key from GitHub
// (already gone is fine), then the project and everything that belongs to
// it. If GitHub refuses, nothing is deleted and GitHub's answer is shown.
func (h *Handler) deleteProject(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleOwner)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	if p.Source == store.SourceGitHub {
		if err := h.disconnect(ctx, r, p); err != nil {
			h.log.WarnContext(r.Context(), "disconnect project from GitHub", "project", p.ID, "err", err)
			h.render(w, r, http.StatusBadGateway, views.DeleteProjectPage(views.DeleteProjectView{User: user(r).Login(),
				ID: p.ID, FullName: p.FullName, GitHub: true, Error: gh.Message(err)}))
			return
		}
	}
	if err := h.db.DeleteProject(ctx, p.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(r.Context(), "project deleted", "project", p.ID, "name", p.FullName, "by", user(r).ID)
	http.Redirect(w, r, "/repositories", http.StatusSeeOther)
}

func (h *Handler) disconnect(ctx context.Context, r *http.Request, p store.Project) error {
	token, err := h.token(r)
	if err != nil {
		return err
	}
	if p.GitHubHookID != 0 {
		if err := h.github.DeleteWebhook(ctx, token, p.FullName, p.GitHubHookID); err != nil {
			return err
		}
	}
	k, err := h.db.DeployKeyOf(ctx, p.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return err
	case k.GitHubKeyID != 0:
		return h.github.DeleteDeployKey(ctx, token, p.FullName, k.GitHubKeyID)
	}
	return nil
}
