package handlers

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"kozmic/gh"
	"kozmic/git"
	textclip "kozmic/internal/clip"
	"kozmic/internal/paths"
	"kozmic/store"
	"kozmic/views"
)

func (h *Handler) newProject(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, views.NewProjectPage(newProjectView(user(r))))
}

// newProjectView is the empty new-project form for u.
func newProjectView(u store.User) views.NewProjectView {
	v := views.NewProjectView{User: u.Login(), ServerPaths: u.IsAdmin}
	if !u.IsAdmin {
		v.Owner = u.Login()
	}
	return v
}

// createGitProject makes a project of a git URL or server path, owned by
// the signed-in user. An ssh URL gets a fresh deploy key, stored with the
// project, whose public half the project page shows.
//
// Only Kozmic admins may choose any name, give a path or file:// URL on
// this server, and, with GitHub sign-in, any git URL. Anyone else gets 403
// and a sentence saying why, and nothing is written, unless the URL is on
// another machine and, with GitHub sign-in, names a GitHub repository they
// administer; their project is named under their own user name ("app" or
// "them/app" make them/app).
//
// A URL other than ssh is checked with git ls-remote before anything is
// written: one git cannot read (unreachable, or no git repository) is
// refused with 422 and what git said, the form keeping what was typed, and
// busy git slots get 503. The branch the repository's HEAD names becomes the
// project's default branch. An ssh URL is not checked: the git server
// cannot know the project's fresh deploy key yet.
func (h *Handler) createGitProject(w http.ResponseWriter, r *http.Request) {
	u := user(r)
	v := newProjectView(u)
	v.Name, v.GitURL, v.Public = strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("git_url")), r.PostFormValue("public") != ""
	refuseWith := func(status int, msg string) {
		v.Error = msg
		h.render(w, r, status, views.NewProjectPage(v))
	}
	refuse := func(msg string) { refuseWith(http.StatusUnprocessableEntity, msg) }
	if err := git.CheckURL(v.GitURL); err != nil {
		refuse(err.Error())
		return
	}
	name := v.Name
	if !u.IsAdmin {
		var err error
		var no *refusal
		name, err = h.nonAdminProject(r.Context(), u, v.Name, v.GitURL)
		if errors.As(err, &no) {
			// Not the URL: it may hold a token.
			h.log.WarnContext(r.Context(), "project refused", "by", u.Login(), "name", clip(v.Name), "status", no.status, "reason", clip(no.msg))
			refuseWith(no.status, no.msg)
			return
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	if filepath.IsAbs(v.GitURL) {
		// A path is checked now: a typo would otherwise show only when the first build fails.
		if fi, err := os.Stat(v.GitURL); err != nil || !fi.IsDir() {
			refuse("There is no directory " + v.GitURL + " on this server.")
			return
		}
	}
	var defaultBranch string
	if !git.OverSSH(v.GitURL) {
		// Checked now: a typo or a private repository would otherwise
		// show only when the first build fails.
		branch, err := git.CheckRemote(r.Context(), git.Remote{URL: v.GitURL})
		switch {
		case r.Context().Err() != nil:
			return // the person left while git ran: nobody to answer
		case errors.Is(err, git.ErrBusy):
			h.fail(w, r, errBusy)
			return
		case err != nil:
			refuse(textclip.To(err.Error(), maxGitSaidLen))
			return
		}
		defaultBranch = branch
	}
	np := store.NewProject{OwnerID: u.ID, Source: store.SourceGit, FullName: name, GitURL: v.GitURL,
		IsPublic: v.Public, WebhookSecret: store.NewWebhookSecret()}
	if git.OverSSH(v.GitURL) {
		private, public, err := git.GenerateDeployKey("kozmic " + name)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		np.DeployKey = &store.DeployKey{PrivateKey: private, PublicKey: public}
	}
	p, err := h.db.CreateProject(r.Context(), np)
	var inv *store.InvalidError
	switch {
	case errors.As(err, &inv):
		refuse(strings.ToUpper(inv.Msg[:1]) + inv.Msg[1:] + ".")
		return
	case errors.Is(err, store.ErrConflict):
		refuse("There is a project called " + name + " already.")
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(r.Context(), "project created", "project", p.ID, "name", p.FullName, "by", u.Login())
	// An ssh project learns its default branch at its first Run build or
	// webhook instead.
	h.learnDefaultBranch(r.Context(), p.ID, p.DefaultBranch, defaultBranch)
	http.Redirect(w, r, paths.Project(p.ID)+"?created", http.StatusSeeOther)
}

// learnDefaultBranch records branch as the default branch of the project
// projectID, which its badge shows, when it is known and not the one known
// already. A failure is only logged: the next webhook or Run build tells it
// again.
func (h *Handler) learnDefaultBranch(ctx context.Context, projectID int64, known, branch string) {
	if branch == "" || branch == known {
		return
	}
	if err := h.db.SetDefaultBranch(ctx, projectID, branch); err != nil {
		h.log.WarnContext(ctx, "record default branch", "project", projectID, "branch", clip(branch), "err", err)
		return
	}
	h.log.InfoContext(ctx, "default branch", "project", projectID, "branch", clip(branch))
}

// refusal is a request refused for a reason the person can act on: the
// status to answer with and a sentence saying why.
type refusal struct {
	status int
	msg    string
}

func (e *refusal) Error() string { return e.msg }

// nonAdminProject applies the rules of createGitProject to u, who is not
// an admin, and returns the project's name under u's own. A *refusal says
// why not: 403, or 502 when GitHub could not answer; any other error is a
// failure of Kozmic's own.
func (h *Handler) nonAdminProject(ctx context.Context, u store.User, name, gitURL string) (string, error) {
	forbid := func(msg string) (string, error) { return "", &refusal{status: http.StatusForbidden, msg: msg} }
	owner, rest, hasOwner := strings.Cut(name, "/")
	switch {
	case !hasOwner:
		name = u.Login() + "/" + name
	case strings.EqualFold(owner, u.Login()):
		name = u.Login() + "/" + rest
	default:
		return forbid("Your projects are named under your user name, such as " + u.Login() + "/" + rest +
			": only a Kozmic admin may name a project under " + owner + ".")
	}
	if git.OnServer(gitURL) {
		return forbid("Only a Kozmic admin may make a project of a path or file:// URL on this server; give the URL of a git server instead.")
	}
	if !h.github.Enabled() {
		return name, nil
	}
	repo, ok := h.github.RepoOfURL(gitURL)
	if !ok {
		return forbid("Only a Kozmic admin may make a project of a git URL that is not a repository on GitHub; " +
			"give the URL of a GitHub repository you administer.")
	}
	err := h.projects.Administers(ctx, u.ID, repo)
	var f *gh.Failure
	switch {
	case err == nil:
		return name, nil
	case errors.Is(err, gh.ErrNoAdminRights):
		return forbid("You have no admin rights on " + repo + " on GitHub, and only a Kozmic admin may make a project of a repository they do not administer.")
	case errors.Is(err, gh.ErrNotConnected):
		return forbid(gh.Message(err))
	case errors.As(err, &f):
		return "", &refusal{status: http.StatusBadGateway, msg: f.Msg}
	}
	return "", err
}

// addMember gives a local user a role in a git URL project; only its owner
// may. GitHub projects take their people from GitHub instead.
func (h *Handler) addMember(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleOwner)
	if err == nil && p.Source != store.SourceGit {
		err = errForbidden
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	u, err := h.db.UserByUsername(r.Context(), r.PostFormValue("username"))
	if err == nil && u.ID == p.OwnerID {
		err = &store.InvalidError{Msg: "the owner has every right already"}
	}
	if err == nil {
		err = h.db.SetMembership(r.Context(), store.Membership{ProjectID: p.ID, UserID: u.ID, AllowsManagement: r.PostFormValue("role") == "manager"})
	}
	if errors.Is(err, store.ErrNotFound) {
		err = &store.InvalidError{Msg: "no such user"}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, paths.Project(p.ID)+"?people#"+views.PeopleID, http.StatusSeeOther)
}

// removeMember takes a user's role in a git URL project away.
func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleOwner)
	if err == nil && p.Source != store.SourceGit {
		err = errForbidden
	}
	var id int64
	if err == nil {
		id, err = strconv.ParseInt(r.PathValue("user"), 10, 64)
		if err != nil {
			err = store.ErrNotFound
		}
	}
	if err == nil {
		err = h.db.RemoveMembership(r.Context(), p.ID, id)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, paths.Project(p.ID)+"?people#"+views.PeopleID, http.StatusSeeOther)
}

// gitProjectView adds what a git URL project's managers see: the URL, the
// webhook secret with a post-receive hook that uses it, and, for the
// owner, the local users who could join.
func (h *Handler) gitProjectView(ctx context.Context, v *views.ProjectView, p store.Project, role store.Role) error {
	v.GitURL = p.GitURL
	secret, err := h.db.WebhookSecret(ctx, p.ID)
	if err != nil {
		return err
	}
	v.WebhookSecret = secret
	v.PostReceive = postReceiveHook(v.WebhookURL, secret)
	if role < store.RoleOwner {
		return nil
	}
	users, err := h.db.LocalUsers(ctx)
	if err != nil {
		return err
	}
	in := map[string]bool{v.Owner: true}
	for _, m := range v.Members {
		in[m.Login] = true
	}
	for _, u := range users {
		if !in[u.Username] {
			v.Candidates = append(v.Candidates, u.Username)
		}
	}
	return nil
}

// postReceiveHook is a git post-receive hook for a bare repository that
// sends Kozmic a signed push webhook for every branch or tag pushed.
func postReceiveHook(webhookURL, secret string) string {
	return `#!/bin/sh
# Kozmic: ask for a build of every branch or tag pushed here.
url='` + webhookURL + `'
secret='` + secret + `'
json() { sed 's/\\/\\\\/g; s/"/\\"/g' | tr -d '\n\r\t'; }
while read -r old new ref; do
  [ "$new" = 0000000000000000000000000000000000000000 ] && continue # deleted
  msg=$(git log -1 --format=%s "$new" | json)
  who=$(git log -1 --format=%an "$new" | json)
  body=$(printf '{"ref":"%s","before":"%s","after":"%s","head_commit":{"id":"%s","message":"%s","author":{"name":"%s"}}}' \
    "$ref" "$old" "$new" "$new" "$msg" "$who")
  sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.*= *//')
  curl -fsS -o /dev/null -X POST "$url" -H 'Content-Type: application/json' \
    -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $new-$(date +%s)" \
    -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$body" ||
    echo "kozmic: could not ask for a build of $ref" >&2
done
`
}
