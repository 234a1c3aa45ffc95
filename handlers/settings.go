package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"kozmic/internal/paths"
	"kozmic/store"
	"kozmic/views"
)

// sentence turns a store message ("a hook needs a title") into one for a page.
func sentence(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

// formError is what to tell the person who filled in a form that err
// refused, and false when err is not about the form.
func formError(err error, conflict string) (string, bool) {
	var inv *store.InvalidError
	switch {
	case errors.As(err, &inv):
		return sentence(inv.Msg), true
	case errors.Is(err, store.ErrConflict):
		return conflict, true
	}
	return "", false
}

func (h *Handler) settings(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.renderSettings(w, r, p, http.StatusOK, r.URL.Query().Get("flash"), "")
}

// settingsWarnings are said after a hook was saved, by the key in ?warn=.
// A script without a #! line is saved anyway (it may be fixed in a moment),
// but every job of the hook would fail until it is.
var settingsWarnings = map[string]string{
	"no-shebang-build": "Its build script does not begin with a #! line, so Docker cannot run it (exec format error): " +
		"make its first line name the interpreter, such as #!/bin/sh.",
	"no-shebang-install": "Its install script does not begin with a #! line, so Docker cannot run it (exec format error): " +
		"make its first line name the interpreter, such as #!/bin/sh.",
	"no-shebang-build-install": "Its build and install scripts do not begin with a #! line, so Docker cannot run them (exec format error): " +
		"make the first line of each name the interpreter, such as #!/bin/sh.",
}

var settingsFlashes = map[string]string{
	"hook-saved": "Hook saved. Run a build below to run it: on a commit built before, that adds its job to that build.", "hook-deleted": "Hook deleted.", "secret-saved": "Secret saved.", "secret-deleted": "Secret deleted.",
	"cache-cleared": "Install cache cleared: the next job of each hook runs its install script again.",
}

// clearCache removes the project's install cache images, so that every
// hook's next job runs its install script afresh.
func (h *Handler) clearCache(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	n, err := h.jobs.ClearCache(r.Context(), p.ID)
	if err != nil {
		h.log.Warn("clear install cache", "project", p.ID, "removed", n, "err", err)
		h.renderSettings(w, r, p, http.StatusConflict, "", "Some install cache images could not be removed: "+h.whyNotCleared()+". Try again later.")
		return
	}
	h.log.Info("install cache cleared", "project", p.ID, "images", n, "by", user(r).Login())
	http.Redirect(w, r, settingsURL(p, "cache-cleared"), http.StatusSeeOther)
}

// whyNotCleared says why install cache images a Clear was to remove may
// have stayed: the Docker engines that do not answer, named when there are
// several, or else a running job that uses them.
func (h *Handler) whyNotCleared() string {
	engines := h.jobs.Engines()
	var down []string
	for _, e := range engines {
		if e.Down {
			down = append(down, e.Name)
		}
	}
	switch {
	case len(down) == 0:
		return "a running job uses them"
	case len(engines) == 1:
		return "Docker is unreachable"
	case len(down) == 1:
		return "the Docker engine " + down[0] + " is not reachable"
	}
	return "the Docker engines " + strings.Join(down, ", ") + " are not reachable"
}

func (h *Handler) renderSettings(w http.ResponseWriter, r *http.Request, p store.Project, status int, flash, errMsg string) {
	hooks, err := h.db.Hooks(r.Context(), p.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	names, err := h.db.SecretNames(r.Context(), p.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := views.SettingsView{User: user(r).Login(), ProjectID: p.ID, FullName: p.FullName, Secrets: names,
		Flash: settingsFlashes[flash], Warning: settingsWarnings[r.URL.Query().Get("warn")], Error: errMsg}
	// The newest build's branch is what a hook just saved is most likely to be tried on.
	switch b, err := h.db.LatestBuild(r.Context(), p.ID, ""); {
	case err == nil && strings.HasPrefix(b.Ref, "refs/heads/"):
		v.RunRef = b.Branch()
	case err != nil && !errors.Is(err, store.ErrNotFound):
		h.fail(w, r, err)
		return
	}
	for _, hk := range hooks {
		v.Hooks = append(v.Hooks, views.HookRow{ID: hk.ID, Title: hk.Title, Image: hk.DockerImage, Install: hk.InstallScript != ""})
	}
	h.render(w, r, status, views.SettingsPage(v))
}

func settingsURL(p store.Project, flash string) string {
	return paths.Project(p.ID) + "/settings?flash=" + flash
}

// hookFor loads the hook named in the path, which must belong to p.
func (h *Handler) hookFor(r *http.Request, p store.Project) (store.Hook, error) {
	id, err := strconv.ParseInt(r.PathValue("hook"), 10, 64)
	if err != nil {
		return store.Hook{}, store.ErrNotFound
	}
	hk, err := h.db.HookByID(r.Context(), id)
	if err == nil && hk.ProjectID != p.ID {
		err = store.ErrNotFound
	}
	return hk, err
}

func hookFormView(r *http.Request, p store.Project, hk store.Hook) views.HookFormView {
	return views.HookFormView{User: user(r).Login(), ProjectID: p.ID, FullName: p.FullName, HookID: hk.ID, Title: hk.Title,
		Image: hk.DockerImage, Install: hk.InstallScript, Build: hk.BuildScript, TrackedFiles: strings.Join(hk.TrackedFiles, "\n")}
}

func (h *Handler) newHook(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, views.HookForm(hookFormView(r, p, store.Hook{BuildScript: "#!/bin/sh\nset -e\n"})))
}

func (h *Handler) editHook(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hk, err := h.hookFor(r, p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, views.HookForm(hookFormView(r, p, hk)))
}

// hookFromForm reads the hook form. Scripts keep their text as typed, with
// the browser's \r\n turned into \n: a #! line ending in \r names no interpreter.
func hookFromForm(r *http.Request, p store.Project) store.Hook {
	text := func(name string) string { return strings.ReplaceAll(r.PostFormValue(name), "\r\n", "\n") }
	return store.Hook{ProjectID: p.ID, Title: r.PostFormValue("title"), DockerImage: r.PostFormValue("image"),
		InstallScript: text("install"), BuildScript: text("build"), TrackedFiles: strings.Split(text("tracked"), "\n")}
}

// saveHook creates the hook (no hook in the path) or updates it.
func (h *Handler) saveHook(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hk := hookFromForm(r, p)
	if r.PathValue("hook") == "" {
		_, err = h.db.CreateHook(r.Context(), hk)
	} else {
		var old store.Hook
		if old, err = h.hookFor(r, p); err == nil {
			hk.ID = old.ID
			_, err = h.db.UpdateHook(r.Context(), hk)
		}
	}
	if msg, ok := formError(err, "Another hook of this project already has that title."); ok {
		v := hookFormView(r, p, hk)
		v.TrackedFiles, v.Error = r.PostFormValue("tracked"), msg
		h.render(w, r, http.StatusUnprocessableEntity, views.HookForm(v))
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	to := settingsURL(p, "hook-saved")
	if missing := hk.ScriptsWithoutShebang(); len(missing) > 0 {
		to += "&warn=no-shebang-" + strings.Join(missing, "-")
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// deleteHook deletes a hook; its past jobs and their logs stay.
func (h *Handler) deleteHook(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hk, err := h.hookFor(r, p)
	if err == nil {
		err = h.db.DeleteHook(r.Context(), hk.ID)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, settingsURL(p, "hook-deleted"), http.StatusSeeOther)
}

func (h *Handler) setSecret(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	err = h.db.SetSecret(r.Context(), p.ID, store.Secret{Name: strings.TrimSpace(r.PostFormValue("name")), Value: r.PostFormValue("value")})
	if msg, ok := formError(err, ""); ok {
		h.renderSettings(w, r, p, http.StatusUnprocessableEntity, "", msg)
		return
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, settingsURL(p, "secret-saved"), http.StatusSeeOther)
}

func (h *Handler) deleteSecret(w http.ResponseWriter, r *http.Request) {
	p, _, err := h.projectFor(r, store.RoleManager)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.db.DeleteSecret(r.Context(), p.ID, r.PathValue("name")); err != nil {
		h.fail(w, r, err)
		return
	}
	http.Redirect(w, r, settingsURL(p, "secret-deleted"), http.StatusSeeOther)
}
