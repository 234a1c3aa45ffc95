package handlers

import "net/http"

// bodyLimit is a POST route's handler whose bodies limitForms caps at
// limit rather than formLimit; 0: its handler bounds them itself.
type bodyLimit struct {
	http.HandlerFunc
	limit int64
}

// routes is the server's one route table.
func (h *Handler) routes() {
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /metrics", h.serveMetrics)
	h.mux.HandleFunc("GET /static/{file}", h.staticFile)
	h.mux.Handle("POST /webhooks/{projectID}", bodyLimit{h.webhook, 0}) // not a form

	h.mux.HandleFunc("GET /{$}", h.home)
	h.mux.HandleFunc("GET /now", h.requireUser(h.nowPanel))
	h.mux.HandleFunc("GET /login", h.loginPage)
	h.mux.HandleFunc("POST /login", h.localLogin)
	h.mux.HandleFunc("GET /auth/github", h.githubLogin)
	h.mux.HandleFunc("GET /auth/github/callback", h.githubCallback)
	h.mux.HandleFunc("POST /logout", h.logout)
	h.mux.HandleFunc("GET /account", h.requireUser(h.account))
	h.mux.HandleFunc("POST /account", h.requireUser(h.saveAccount))
	h.mux.HandleFunc("POST /account/password", h.requireUser(h.changePassword))
	h.mux.HandleFunc("POST /account/sessions/delete", h.requireUser(h.signOutEverywhere))

	h.mux.HandleFunc("GET /repositories", h.requireUser(h.repositories))
	h.mux.HandleFunc("POST /repositories/sync", h.requireUser(h.syncRepositories))
	h.mux.HandleFunc("POST /projects", h.requireUser(h.createProject))
	h.mux.HandleFunc("GET /projects/new", h.requireUser(h.newProject))
	h.mux.HandleFunc("POST /projects/new", h.requireUser(h.createGitProject))
	h.mux.HandleFunc("GET /projects/{id}", h.requireUser(h.showProject))
	h.mux.HandleFunc("POST /projects/{id}/members/sync", h.requireUser(h.syncMembers))
	h.mux.HandleFunc("POST /projects/{id}/host-key/reset", h.requireUser(h.resetHostKey))
	h.mux.HandleFunc("POST /projects/{id}/deploy-key/regenerate", h.requireUser(h.regenerateDeployKey))
	h.mux.HandleFunc("POST /projects/{id}/members", h.requireUser(h.addMember))
	h.mux.HandleFunc("POST /projects/{id}/members/{user}/delete", h.requireUser(h.removeMember))
	h.mux.HandleFunc("GET /projects/{id}/delete", h.requireUser(h.confirmDeleteProject))
	h.mux.HandleFunc("POST /projects/{id}/delete", h.requireUser(h.deleteProject))
	h.mux.HandleFunc("POST /projects/{id}/delete/anyway", h.requireUser(h.deleteProjectAnyway))
	h.mux.HandleFunc("GET /projects/{id}/settings", h.requireUser(h.settings))
	h.mux.HandleFunc("GET /projects/{id}/hooks/new", h.requireUser(h.newHook))
	h.mux.Handle("POST /projects/{id}/hooks", bodyLimit{h.requireUser(h.saveHook), hookFormLimit})
	h.mux.HandleFunc("GET /projects/{id}/hooks/{hook}", h.requireUser(h.editHook))
	h.mux.Handle("POST /projects/{id}/hooks/{hook}", bodyLimit{h.requireUser(h.saveHook), hookFormLimit})
	h.mux.HandleFunc("POST /projects/{id}/hooks/{hook}/delete", h.requireUser(h.deleteHook))
	h.mux.HandleFunc("POST /projects/{id}/secrets", h.requireUser(h.setSecret))
	h.mux.HandleFunc("POST /projects/{id}/cache/clear", h.requireUser(h.clearCache))
	h.mux.HandleFunc("POST /projects/{id}/secrets/{name}/delete", h.requireUser(h.deleteSecret))
	h.mux.HandleFunc("GET /projects/{id}/builds", h.requireUser(h.buildsOfProject))
	h.mux.HandleFunc("POST /projects/{id}/builds", h.requireUser(h.runBuild))
	h.mux.HandleFunc("GET /projects/{id}/builds/{n}", h.requireUser(h.showBuild))
	h.mux.HandleFunc("POST /projects/{id}/builds/{n}/rerun", h.requireUser(h.rerunFailed))
	h.mux.HandleFunc("POST /projects/{id}/builds/{n}/cancel", h.requireUser(h.cancelBuild))
	h.mux.HandleFunc("GET /projects/{id}/builds/{n}/jobs/{job}", h.requireUser(h.showJob))
	h.mux.HandleFunc("POST /projects/{id}/builds/{n}/jobs/{job}/cancel", h.requireUser(h.cancelJob))
	h.mux.HandleFunc("POST /projects/{id}/builds/{n}/jobs/{job}/restart", h.requireUser(h.restartJob))
	h.mux.HandleFunc("GET /projects/{id}/builds/{n}/jobs/{job}/log/stream", h.requireUser(h.logStream))
	h.mux.HandleFunc("GET /projects/{id}/builds/{n}/jobs/{job}/log", h.requireUser(h.logPage))
	h.mux.HandleFunc("GET /projects/{id}/builds/{n}/jobs/{job}/log.txt", h.requireUser(h.rawLog))
	h.mux.HandleFunc("GET /projects/{id}/builds/{n}/jobs/{job}/log/search", h.requireUser(h.logSearch))
	h.mux.HandleFunc("GET /badges/{owner}/{file}", h.badge)
	h.mux.HandleFunc("GET /admin", h.requireAdmin(h.admin))
	h.mux.HandleFunc("POST /admin/projects/{id}/cache/clear", h.requireAdmin(h.adminClearCache))
	h.mux.HandleFunc("/", h.notFound)
}
