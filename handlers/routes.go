package handlers

// routes is the server's one route table.
func (h *Handler) routes() {
	h.mux.HandleFunc("GET /healthz", h.healthz)
	h.mux.HandleFunc("GET /static/{file}", h.staticFile)
	h.mux.HandleFunc("POST /webhooks/{projectID}", h.webhook)
	h.mux.HandleFunc("/", h.notFound)
}
