package handlers

import (
	"errors"
	"net/http"

	"kozmic/store"
	"kozmic/views"
)

// home is the dashboard: the projects the signed-in person may see, each
// with its latest build. Anonymous visitors are sent to sign in.
func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	u, ok := h.currentUser(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	projects, err := h.db.ProjectsOf(r.Context(), u.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := views.DashboardView{User: u.Login(), GitHub: h.github.Enabled()}
	for _, p := range projects {
		row := views.DashboardRow{ProjectID: p.ID, FullName: p.FullName}
		b, err := h.db.LatestBuild(r.Context(), p.ID, "")
		switch {
		case err == nil:
			row.HasBuild, row.Number, row.Status, row.Branch, row.ShortSHA, row.Age = true, b.Number, views.BuildStatus(b.Status), b.Branch(), b.ShortSHA(), ago(b.CreatedAt)
		case !errors.Is(err, store.ErrNotFound):
			h.fail(w, r, err)
			return
		}
		v.Projects = append(v.Projects, row)
	}
	h.render(w, r, http.StatusOK, views.DashboardPage(v))
}
