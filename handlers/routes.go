package handlers

// routes is the server's one route table.
func (h *Handler) routes() {
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /static/{file}", h.staticFile)
	h.mux.HandleFunc("POST /webhooks/{projectID}", h.webhook)

	h.mux.HandleFunc("GET /{$}", h.home)
	h.mux.HandleFunc("GET /login", h.loginPage)
	h.mux.HandleFunc("GET /auth/github", h.githubLogin)
	h.mux.HandleFunc("GET /auth/github/callback", h.githubCallback)
	h.mux.HandleFunc("POST /logout", h.logout)
	h.mux.HandleFunc("GET /account", h.requireUser(h.account))
	h.mux.HandleFunc("POST /account", h.requireUser(h.saveAccount))

	h.mux.HandleFunc("GET /repositories", h.requireUser(h.repositories))
	h.mux.HandleFunc("POST /repositories/sync", h.requireUser(h.syncRepositories))
	h.mux.HandleFunc("POST /projects", h.requireUser(h.createProject))
	h.mux.HandleFunc("GET /projects/{id}", h.requireUser(h.showProject))
	h.mux.HandleFunc("POST /projects/{id}/members/sync", h.requireUser(h.syncMembers))
	h.mux.HandleFunc("GET /projects/{id}/delete", h.requireUser(h.confirmDeleteProject))
	h.mux.HandleFunc("POST /projects/{id}/delete", h.requireUser(h.deleteProject))
	h.mux.HandleFunc("GET /projects/{id}/settings", h.requireUser(h.settings))
	h.mux.HandleFunc("GET /projects/{id}/hooks/new", h.requireUser(h.newHook))
	h.mux.HandleFunc("POST /projects/{id}/hooks", h.requireUser(h.saveHook))
	h.mux.HandleFunc("GET /projects/{id}/hooks/{hook}", h.requireUser(h.editHook))
	h.mux.HandleFunc("POST /projects/{id}/hooks/{hook}", h.requireUser(h.saveHook))
	h.mux.HandleFunc("POST /projects/{id}/hooks/{hook}/delete", h.requireUser(h.deleteHook))
	h.mux.HandleFunc("POST /projects/{id}/secrets", h.requireUser(h.setSecret))
	h.mux.HandleFunc("POST /projects/{id}/secrets/{name}/delete", h.requireUser(h.deleteSecret))
	h.mux.HandleFunc("/", h.notFound)
}
