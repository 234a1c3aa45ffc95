package handlers

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"kozmic/git"
	"kozmic/internal/paths"
	"kozmic/store"
	"kozmic/views"
)

func (h *Handler) newProject(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, views.NewProjectPage(views.NewProjectView{User: user(r).Login()}))
}

// createGitProject makes a project of any git URL or server path, owned by
// the signed-in user. An ssh URL gets a fresh deploy key, stored with the
// project, whose public half the project page shows.
func (h *Handler) createGitProject(w http.ResponseWriter, r *http.Request) {
	v := views.NewProjectView{User: user(r).Login(), Name: strings.TrimSpace(r.PostFormValue("name")),
		GitURL: strings.TrimSpace(r.PostFormValue("git_url")), Public: r.PostFormValue("public") != ""}
	refuse := func(msg string) {
		v.Error = msg
		h.render(w, r, http.StatusUnprocessableEntity, views.NewProjectPage(v))
	}
	if err := git.CheckURL(v.GitURL); err != nil {
		refuse(err.Error())
		return
	}
	if filepath.IsAbs(v.GitURL) {
		// A path is checked now: a typo would otherwise show only when the first build fails.
		if fi, err := os.Stat(v.GitURL); err != nil || !fi.IsDir() {
			refuse("There is no directory " + v.GitURL + " on this server.")
			return
		}
	}
	np := store.NewProject{OwnerID: user(r).ID, Source: store.SourceGit, FullName: v.Name, GitURL: v.GitURL,
		IsPublic: v.Public, WebhookSecret: store.NewWebhookSecret()}
	if git.OverSSH(v.GitURL) {
		private, public, err := git.GenerateDeployKey("kozmic " + v.Name)
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
		refuse("There is a project called " + v.Name + " already.")
		return
	case err != nil:
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(r.Context(), "project created", "project", p.ID, "name", p.FullName, "by", user(r).Login())
	http.Redirect(w, r, paths.Project(p.ID)+"?created", http.StatusSeeOther)
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
