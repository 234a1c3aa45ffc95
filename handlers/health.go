package handlers

import (
	"context"
	"net/http"
	"time"
)

// healthz reports whether the database answers: 200 with
// {"status":"ok","database":"ok"}, or 503 with "unavailable".
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, code := map[string]string{"status": "ok", "database": "ok"}, http.StatusOK
	if err := h.db.Ping(ctx); err != nil {
		h.log.Error("health check: database", "err", err)
		status, code = map[string]string{"status": "unavailable", "database": "unavailable"}, http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, status)
}
