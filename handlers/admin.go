package handlers

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	textclip "kozmic/internal/clip"
	"kozmic/internal/paths"
	"kozmic/runner"
	"kozmic/store"
	"kozmic/views"
)

// requireAdmin runs next for a signed-in admin, with the user in the
// request's context. Anyone else, signed out too, gets the 404 of a page
// that does not exist, so that the admin pages' existence is not told.
func (h *Handler) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, ok := h.currentUser(r)
		if !ok || !u.IsAdmin {
			h.fail(w, r, errNoSuchRoute)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	}
}

// pageContext is the context a page renders with: the banner signed-in
// people see, and whether the person is an admin (the top bar then links
// the admin page).
func (h *Handler) pageContext(r *http.Request) context.Context {
	ctx := views.WithBanner(r.Context(), h.jobs.Unreachable())
	if u, ok := r.Context().Value(userKey{}).(store.User); ok && u.IsAdmin {
		ctx = views.WithAdmin(ctx)
	}
	return ctx
}

// adminErrorLen bounds a Docker engine's error as the admin page shows it.
const adminErrorLen = 300

// engineError is a Docker engine's error as an admin sees it: one line of
// printable text, cut at adminErrorLen bytes.
func engineError(err error) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, err.Error())
	return textclip.To(strings.Join(strings.Fields(s), " "), adminErrorLen)
}

// byteSize writes n bytes as people read them: 512 B, 3.4 KiB, 12.0 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// admin is the admin page: workers and queue, each Docker engine with its
// load and this server's containers on it, the install cache images of
// every engine, the database and the server. The engines are asked at
// once; one that does not answer costs the page at most the runner's
// engine timeout, and the page says it is unreachable.
func (h *Handler) admin(w http.ResponseWriter, r *http.Request) {
	v, err := h.adminView(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if n, err := strconv.Atoi(r.URL.Query().Get("cleared")); err == nil && n >= 0 {
		v.Flash = fmt.Sprintf("Removed %d install cache %s.", n, plural(n, "image", "images"))
	}
	h.render(w, r, http.StatusOK, views.AdminPage(v))
}

// plural is one or many, as n asks.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// adminClearCache removes every install cache image of a project (of any
// scope, also of a project deleted since), as the project's settings do,
// and says how many went.
func (h *Handler) adminClearCache(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		h.fail(w, r, store.ErrNotFound)
		return
	}
	n, err := h.jobs.ClearCache(r.Context(), id)
	if err != nil {
		h.log.WarnContext(r.Context(), "clear install cache", "project", id, "removed", n, "err", err, "by", user(r).Login())
		v, verr := h.adminView(r)
		if verr != nil {
			h.fail(w, r, verr)
			return
		}
		v.Error = fmt.Sprintf("Removed %d install cache %s; others could not be removed: %s. Try again later.",
			n, plural(n, "image", "images"), h.whyNotCleared())
		h.render(w, r, http.StatusConflict, views.AdminPage(v))
		return
	}
	h.log.InfoContext(r.Context(), "install cache cleared", "project", id, "images", n, "by", user(r).Login())
	http.Redirect(w, r, "/admin?cleared="+strconv.Itoa(n), http.StatusSeeOther)
}

// adminView gathers the admin page: the queue and the database from the
// store, the Docker engines from the runner.
func (h *Handler) adminView(r *http.Request) (views.AdminView, error) {
	ctx := r.Context()
	v := views.AdminView{User: user(r).Login(), Version: cmp.Or(h.version, "unknown"), Workers: len(h.jobs.Slots()),
		Started: ago(h.started), Uptime: took(h.started, time.Time{})}
	q, err := h.db.JobQueue(ctx)
	if err != nil {
		return v, err
	}
	v.Queued, v.QueuedSince = q.Queued, took(q.OldestQueued, time.Time{})
	running := map[int64]store.RunningJob{}
	for _, j := range q.Running {
		running[j.JobID] = j
		v.Running = append(v.Running, views.AdminJob{Project: j.Project, Hook: j.HookTitle, Build: j.BuildNumber,
			URL: paths.Job(j.ProjectID, j.BuildNumber, j.JobID), Elapsed: took(j.StartedAt, time.Time{})})
	}
	st, err := h.db.Stats(ctx)
	if err != nil {
		return v, err
	}
	v.Database = views.AdminDatabase{File: byteSize(st.FileBytes), Free: byteSize(st.FreeBytes), WAL: byteSize(st.WALBytes),
		Logs: fmt.Sprintf("%s compressed, of %d %s", byteSize(st.LogBytes), st.Logs, plural(int(st.Logs), "job", "jobs"))}

	infos := h.jobs.EngineInfos(ctx)
	var ids []int64
	var imgs []engineImage
	for _, e := range infos {
		if e.Err != nil {
			continue
		}
		for _, c := range e.Containers {
			ids = append(ids, c.ProjectID)
		}
		for _, img := range e.CacheImages {
			// With one engine, its name would tell nothing.
			on := ""
			if len(infos) > 1 {
				on = e.Name
			}
			imgs = append(imgs, engineImage{img, on})
			ids = append(ids, img.ProjectID)
		}
	}
	uses := make([]store.ProjectCacheUse, len(imgs))
	for i, img := range imgs {
		uses[i] = store.ProjectCacheUse{ProjectID: img.ProjectID, CacheUse: img.Use}
	}
	names, err := h.db.ProjectNames(ctx, ids)
	if err != nil {
		return v, err
	}
	lastUsed, err := h.db.CacheLastUsedOf(ctx, uses)
	if err != nil {
		return v, err
	}
	for _, e := range infos {
		ae := views.AdminEngine{Name: e.Name, Endpoint: e.Endpoint, Reachable: e.Err == nil, Busy: e.Busy, Slots: e.Slots,
			Started: e.Started, Failed: e.Failed}
		if e.Err != nil {
			ae.Error = engineError(e.Err)
			v.CacheUnknown = append(v.CacheUnknown, e.Name)
			v.Engines = append(v.Engines, ae)
			continue
		}
		ae.Version, ae.APIVersion, ae.Platform = e.Version, e.APIVersion, e.OS+"/"+e.Arch
		for _, c := range e.Containers {
			row := views.AdminContainer{ID: c.ID, Project: projectName(names, c.ProjectID), Age: ago(c.Created)}
			if j, ok := running[c.JobID]; ok {
				row.Job = fmt.Sprintf("#%d %s", j.BuildNumber, j.HookTitle)
				row.URL = paths.Job(j.ProjectID, j.BuildNumber, j.JobID)
			} else if c.JobID != 0 {
				row.Job = fmt.Sprintf("job %d", c.JobID)
			}
			ae.Containers = append(ae.Containers, row)
		}
		v.Engines = append(v.Engines, ae)
	}
	v.Caches = cacheGroups(imgs, names, lastUsed)
	return v, nil
}

// projectName is a project's full name, or what it was when it is gone.
func projectName(names map[int64]string, id int64) string {
	if n, ok := names[id]; ok {
		return n
	}
	return fmt.Sprintf("project %d (deleted)", id)
}

// engineImage is an install cache image and the engine that has it ("":
// the only one).
type engineImage struct {
	runner.CacheImage
	engine string
}

// cacheGroups groups install cache images by project, projects by name,
// each project's images most recently used first (an image no job used yet
// counts as used when it was made), an image on several engines in the
// engines' order.
func cacheGroups(imgs []engineImage, names map[int64]string, lastUsed map[store.ProjectCacheUse]time.Time) []views.AdminCache {
	type image struct {
		engineImage
		used    time.Time
		wasUsed bool
	}
	byProject := map[int64][]image{}
	for _, img := range imgs {
		used, ok := lastUsed[store.ProjectCacheUse{ProjectID: img.ProjectID, CacheUse: img.Use}]
		if !ok {
			used = img.Created
		}
		byProject[img.ProjectID] = append(byProject[img.ProjectID], image{img, used, ok})
	}
	var groups []views.AdminCache
	for id, imgs := range byProject {
		slices.SortStableFunc(imgs, func(a, b image) int { return b.used.Compare(a.used) })
		g := views.AdminCache{ProjectID: id, Project: projectName(names, id)}
		var total int64
		for _, img := range imgs {
			total += img.Size
			g.Images = append(g.Images, views.AdminImage{CacheID: img.Use.ID[:min(12, len(img.Use.ID))], Scope: string(img.Use.Scope),
				Size: byteSize(img.Size), LastUsed: ago(img.used), Used: img.wasUsed, Engine: img.engine})
		}
		g.Summary = fmt.Sprintf("%d %s, %s", len(imgs), plural(len(imgs), "image", "images"), byteSize(total))
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b views.AdminCache) int { return cmp.Compare(a.Project, b.Project) })
	return groups
}
