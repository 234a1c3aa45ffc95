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
	h.mux.HandleFunc("/", h.notFound)
}
