package handlers

import (
	"context"
	"net/http"
	"time"
)

// health is the body of GET /healthz.
type health struct {
	Status   string `json:"status"`   // ok, or unavailable when either part is not ok
	Database string `json:"database"` // ok or unavailable
	Docker   string `json:"docker"`   // ok or unreachable
}

// healthz reports whether the database and the Docker engine answer: 200
// with {"status":"ok","database":"ok","docker":"ok"}, else 503 with
// "status":"unavailable" and the part that failed as "database":"unavailable"
// or "docker":"unreachable". The database is pinged; Docker's state is the
// runner's last ping (every few seconds), so a request costs Docker
// nothing. Errors are logged, never shown.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	hl, code := health{Status: "ok", Database: "ok", Docker: "ok"}, http.StatusOK
	if err := h.db.Ping(ctx); err != nil {
		h.log.ErrorContext(r.Context(), "health check: database", "err", err)
		hl.Database, hl.Status, code = "unavailable", "unavailable", http.StatusServiceUnavailable
	}
	if h.jobs.Unreachable() != "" {
		hl.Docker, hl.Status, code = "unreachable", "unavailable", http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, hl)
}
