package handlers

import (
	"context"
	"net/http"

	"kozmic/views"
)

// home is the dashboard: what runs and waits now, and the projects the
// signed-in person may see, each with its latest build, its default
// branch's and its recent results; its poll gets the list alone (the now
// panel polls GET /now). Anonymous visitors are sent to sign in.
func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	u, ok := h.currentUser(r)
	if !ok {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), userKey{}, u)) // for the layout: is this an admin?
	projects, err := h.db.ProjectsWithLatestBuild(r.Context(), u.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := views.DashboardView{User: u.Login(), GitHub: h.github.Enabled()}
	// The poll of the list does not show the panel.
	if r.Header.Get("HX-Request") != "true" {
		if v.Now, err = h.nowView(r.Context(), u.ID); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	for _, p := range projects {
		row := views.DashboardRow{ProjectID: p.ID, FullName: p.FullName, Trend: trend(p)}
		if b := p.Latest; b != nil {
			row.HasBuild, row.Number, row.Status, row.Branch, row.ShortSHA, row.Age = true, b.Number, views.BuildStatus(b.Status), b.Branch(), b.ShortSHA(), ago(b.CreatedAt)
			row.Message, row.Author, row.Trigger = firstLine(b.Message), b.Author, h.trigger(p.Project, *b)
		}
		v.Projects = append(v.Projects, row)
	}
	h.renderPolled(w, r, views.DashboardPage(v), views.Dashboard(v))
}
