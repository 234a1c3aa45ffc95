package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"kozmic/gh"
	"kozmic/git"
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
	return h.projectAccess(r.Context(), id, user(r).ID, need)
}

// projectAccess is projectFor's check, of user userID on project id.
func (h *Handler) projectAccess(ctx context.Context, id, userID int64, need store.Role) (store.Project, store.Role, error) {
	p, err := h.db.ProjectByID(ctx, id)
	if err != nil {
		return store.Project{}, store.RoleNone, err
	}
	role, err := h.db.RoleOf(ctx, id, userID)
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

func (h *Handler) repositories(w http.ResponseWriter, r *http.Request) {
	u := user(r)
	own, orgs, synced, err := h.db.RepoCache(r.Context(), u.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if synced.IsZero() {
		// Never read from GitHub: read now, so the first visit is not empty.
		if err := h.projects.SyncRepos(r.Context(), u.ID); err != nil {
			h.log.WarnContext(r.Context(), "list repositories", "user", u.ID, "err", err)
			h.renderRepositories(w, r, nil, nil, synced, gh.Message(err))
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

// syncRepositories reads the user's repositories from GitHub into the
// cache and shows them; if that fails, it says why and lists nothing.
func (h *Handler) syncRepositories(w http.ResponseWriter, r *http.Request) {
	if err := h.projects.SyncRepos(r.Context(), user(r).ID); err != nil {
		h.log.WarnContext(r.Context(), "list repositories", "user", user(r).ID, "err", err)
		h.renderRepositories(w, r, nil, nil, time.Time{}, gh.Message(err))
		return
	}
	http.Redirect(w, r, "/repositories", http.StatusSeeOther)
}

// createProject makes a project of a GitHub repository the user
// administers, or repairs the one it is (see gh.Projects.Create). If GitHub
// refuses, its answer is shown.
func (h *Handler) createProject(w http.ResponseWriter, r *http.Request) {
	p, err := h.projects.Create(r.Context(), user(r).ID, r.PostFormValue("repo"))
	var f *gh.Failure
	switch {
	case errors.Is(err, gh.ErrNotConnected) || errors.Is(err, gh.ErrNotAllowed):
		h.fail(w, r, errors.Join(errForbidden, err))
	case errors.As(err, &f):
		h.log.WarnContext(r.Context(), "connect project to GitHub", "repo", clip(r.PostFormValue("repo")), "err", err)
		h.renderRepositories(w, r, nil, nil, time.Time{}, f.Msg)
	case err != nil:
		h.fail(w, r, err)
	default:
		http.Redirect(w, r, paths.Project(p.ID), http.StatusSeeOther)
	}
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
	if err == nil {
		v.Insights, err = h.insightsSection(r, p)
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
	case q.Has("deploy-key") && p.Source == store.SourceGit:
		v.Flash = "New deploy key made (" + v.DeployKeyFingerprint + "): give its public half (below) read access on the git server in place of the old one; fetches fail until then."
	case q.Has("deploy-key"):
		v.Flash = "New deploy key made (" + v.DeployKeyFingerprint + ") and added to the repository on GitHub; the old one is deleted there."
	case q.Has("host-key"):
		v.Flash = "The pinned SSH host key is forgotten: the next fetch pins the key the git server shows then."
	case q.Has("created") && v.DeployKey != "" && p.Source == store.SourceGit:
		v.Flash = "Project created. Give its deploy key (below) read access on the git server, add a hook in its settings, then run a build. " +
			"Kozmic could not check the URL yet, as the git server does not know the key: the first build does."
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
		v.DeployKeyFingerprint, _ = git.Fingerprint(k.PublicKey) // Kozmic made the key
	} else if !errors.Is(err, store.ErrNotFound) {
		return v, err
	}
	v.OverSSH = git.OverSSH(p.CloneURL())
	v.CanRegenerateKey = regeneratesKey(p)
	if v.OverSSH && p.SSHHostKey != "" {
		v.HostKeyFingerprint = "an unreadable key"
		if fp, err := git.Fingerprint(p.SSHHostKey); err == nil {
			v.HostKeyFingerprint = fp
		}
	}
	v.GitHubHostKeys = git.GitHubSSH(p.CloneURL())
	if p.Source == store.SourceGit {
		return v, h.gitProjectView(ctx, &v, p, role)
	}
	return v, nil
}

// resetHostKey forgets the project's pinned SSH host key, so that the next
// contact with its git server pins the key the server shows then. Managers
// and the owner may.
func (h *Handler) resetHostKey(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err == nil {
		err = h.db.ResetHostKey(r.Context(), p.ID)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	fp, _ := git.Fingerprint(p.SSHHostKey) // "" when none was pinned
	h.log.InfoContext(r.Context(), "reset the pinned SSH host key", "project", p.ID, "fingerprint", fp, "by", user(r).Login())
	http.Redirect(w, r, paths.Project(p.ID)+"?host-key", http.StatusSeeOther)
}

// regeneratesKey tells whether p clones with a deploy key that managers
// may regenerate: a private GitHub project's, or a git URL project's over
// SSH.
func regeneratesKey(p store.Project) bool {
	if p.Source == store.SourceGitHub {
		return !p.IsPublic
	}
	return git.OverSSH(p.CloneURL())
}

// regenerateDeployKey replaces the project's deploy key with a new one.
// A private GitHub project's is replaced on GitHub too, the new key added
// before the old one is deleted (gh.Projects.RegenerateDeployKey); if
// GitHub refuses, the old key stays and GitHub's answer is shown. A git URL
// project's new public half is shown, to be given to the git server.
// Managers and the owner may; a project without a deploy key is 422.
func (h *Handler) regenerateDeployKey(w http.ResponseWriter, r *http.Request) {
	p, role, err := h.projectFor(r, store.RoleManager)
	if err == nil && !regeneratesKey(p) {
		err = &store.InvalidError{Msg: p.FullName + " clones without a deploy key"}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	ctx := r.Context()
	var k store.DeployKey
	var oldLeft string
	if p.Source == store.SourceGitHub {
		k, oldLeft, err = h.projects.RegenerateDeployKey(ctx, user(r).ID, p)
	} else {
		k = store.DeployKey{ProjectID: p.ID}
		if k.PrivateKey, k.PublicKey, err = git.GenerateDeployKey("kozmic " + p.FullName); err == nil {
			err = h.db.SetDeployKey(ctx, k)
		}
	}
	var f *gh.Failure
	if errors.As(err, &f) || errors.Is(err, gh.ErrNotConnected) {
		h.log.WarnContext(ctx, "regenerate the deploy key", "project", p.ID, "err", err)
		h.renderProjectError(w, r, p, role, http.StatusBadGateway, gh.Message(err))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	fp, _ := git.Fingerprint(k.PublicKey) // Kozmic made the key
	h.log.InfoContext(ctx, "regenerated the deploy key", "project", p.ID, "fingerprint", fp, "github_key", k.GitHubKeyID, "by", user(r).Login())
	if oldLeft != "" {
		// The new key is in use; the old one still gives read access on GitHub, so say so now.
		h.renderProjectError(w, r, p, role, http.StatusOK, "New deploy key made ("+fp+") and added to the repository on GitHub, but GitHub did not let Kozmic delete the old one ("+
			oldLeft+"): remove it by hand in the repository's settings, under Deploy keys.")
		return
	}
	http.Redirect(w, r, paths.Project(p.ID)+"?deploy-key", http.StatusSeeOther)
}

// renderProjectError shows the project page with status and msg, what
// GitHub refused of a step.
func (h *Handler) renderProjectError(w http.ResponseWriter, r *http.Request, p store.Project, role store.Role, status int, msg string) {
	v, err := h.projectView(r, p, role)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v.Error = msg
	h.render(w, r, status, views.ProjectPage(v))
}

func (h *Handler) syncMembers(w http.ResponseWriter, r *http.Request) {
	p, role, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.projects.SyncMembers(r.Context(), user(r).ID, p); err != nil {
		h.log.WarnContext(r.Context(), "sync members", "project", p.ID, "err", err)
		h.renderProjectError(w, r, p, role, http.StatusBadGateway, gh.Message(err))
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

// deleteProject deletes the project, removing what it left on GitHub (see
// gh.Projects.Delete). If GitHub refuses, nothing is deleted and GitHub's
// answer is shown.
func (h *Handler) deleteProject(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleOwner)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	err = h.projects.Delete(r.Context(), user(r).ID, p)
	var f *gh.Failure
	switch {
	case errors.As(err, &f):
		h.log.WarnContext(r.Context(), "disconnect project from GitHub", "project", p.ID, "err", err)
		h.render(w, r, http.StatusBadGateway, views.DeleteProjectPage(views.DeleteProjectView{User: user(r).Login(),
			ID: p.ID, FullName: p.FullName, GitHub: true, Error: f.Msg}))
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(r.Context(), "project deleted", "project", p.ID, "name", p.FullName, "by", user(r).ID)
	http.Redirect(w, r, "/repositories", http.StatusSeeOther)
}

// deleteProjectAnyway deletes the project also when GitHub refuses to
// remove its webhook or deploy key (gh.Projects.DeleteAnyway), and says
// what stayed on GitHub and where to remove it by hand. The owner may; the
// page offers it, with a confirmation, after GitHub refused a deletion.
func (h *Handler) deleteProjectAnyway(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleOwner)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	left, err := h.projects.DeleteAnyway(r.Context(), user(r).ID, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := views.DeleteProjectView{User: user(r).Login(), ID: p.ID, FullName: p.FullName, GitHub: p.Source == store.SourceGitHub, Deleted: true}
	for _, l := range left {
		v.Left = append(v.Left, views.Leftover{What: l.What, URL: l.URL})
	}
	h.log.InfoContext(r.Context(), "project deleted anyway", "project", p.ID, "name", p.FullName, "by", user(r).ID, "left_on_github", len(left))
	h.render(w, r, http.StatusOK, views.DeleteProjectPage(v))
}
