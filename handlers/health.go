package handlers

import (
	"context"
	"net/http"
	"time"
)

// health is the body of GET /healthz.
type health struct {
	Status   string `json:"status"`   // ok, or unavailable when any part is not ok
	Database string `json:"database"` // ok or unavailable
	Docker   string `json:"docker"`   // ok or unreachable
	Writes   string `json:"writes"`   // ok or failing
	Disk     string `json:"disk"`     // ok, low, or unavailable when its space cannot be read
	// DiskFree is the bytes free in the database's directory; absent when
	// they cannot be read.
	DiskFree *uint64 `json:"disk_free_bytes,omitempty"`
}

// healthz reports whether the server can do its work: 200 with
// {"status":"ok","database":"ok","docker":"ok","writes":"ok","disk":"ok","disk_free_bytes":N},
// else 503 with "status":"unavailable" and the part that failed:
// "database":"unavailable" when it does not answer, "docker":"unreachable",
// "writes":"failing" while the database's writes fail (a write refused for
// reasons of the disk, and none succeeded since), or "disk":"low" when the
// database's directory has less than Deps.MinFreeDisk bytes free
// ("unavailable" when that cannot be read). The database is pinged; the
// rest reads what the runner's last Docker ping and the last writes found,
// and one statfs, so a request costs little. Errors are logged, never shown.
func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	hl, code := health{Status: "ok", Database: "ok", Docker: "ok", Writes: "ok", Disk: "ok"}, http.StatusOK
	fail := func(part *string, word string) {
		*part, hl.Status, code = word, "unavailable", http.StatusServiceUnavailable
	}
	if err := h.db.Ping(ctx); err != nil {
		h.log.ErrorContext(r.Context(), "health check: database", "err", err)
		fail(&hl.Database, "unavailable")
	}
	if h.jobs.Unreachable() != "" {
		fail(&hl.Docker, "unreachable")
	}
	if _, err := h.db.WriteFailure(); err != nil { // logged where the write failed
		fail(&hl.Writes, "failing")
	}
	free, err := h.db.FreeSpace()
	switch {
	case err != nil:
		h.log.ErrorContext(r.Context(), "health check: disk", "err", err)
		fail(&hl.Disk, "unavailable")
	case free < h.minFreeDisk:
		hl.DiskFree = &free
		fail(&hl.Disk, "low")
	default:
		hl.DiskFree = &free
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, hl)
}
