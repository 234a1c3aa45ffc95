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
	Docker   string `json:"docker"`   // ok, degraded or unreachable
	Writes   string `json:"writes"`   // ok or failing
	Disk     string `json:"disk"`     // ok, low, or unavailable when its space cannot be read
	// DiskFree is the bytes free in the database's directory; absent when
	// they cannot be read.
	DiskFree *uint64 `json:"disk_free_bytes,omitempty"`
	// Engines are the Docker engines, in the configured order.
	Engines []engineHealth `json:"engines"`
}

// engineHealth is a Docker engine in the body of GET /healthz: its name,
// whether it answered its last ping, and its jobs out of its slots. Not
// its endpoint: /healthz is public, and an engine's address is the
// operator's to tell.
type engineHealth struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok or unreachable
	Busy   int    `json:"busy"`
	Slots  int    `json:"slots"`
}

// healthz reports whether the server can do its work: 200 with
// {"status":"ok","database":"ok","docker":"ok","writes":"ok","disk":"ok","disk_free_bytes":N,
// "engines":[{"name":"local","status":"ok","busy":1,"slots":2}]},
// else 503 with "status":"unavailable" and the part that failed:
// "database":"unavailable" when it does not answer, "docker":"unreachable"
// when no Docker engine answered its last ping, "writes":"failing" while
// the database's writes fail (a write refused for reasons of the disk, and
// none succeeded since), or "disk":"low" when the database's directory has
// less than Deps.MinFreeDisk bytes free ("unavailable" when that cannot be
// read). While some engines answer and
// others do not, "docker" is "degraded" and the answer still 200: jobs run
// on the engines that answer; "engines" says which do not, each with its
// jobs and slots. The database is pinged; the rest reads what the
// runner's last Docker pings and the last writes found, and one statfs,
// so a request costs little. Errors are logged, never shown.
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
	down := 0
	for _, e := range h.jobs.Engines() {
		eh := engineHealth{Name: e.Name, Status: "ok", Busy: e.Busy, Slots: e.Slots}
		if e.Down {
			eh.Status = "unreachable"
			down++
		}
		hl.Engines = append(hl.Engines, eh)
	}
	switch {
	case down > 0 && down == len(hl.Engines):
		fail(&hl.Docker, "unreachable")
	case down > 0:
		hl.Docker = "degraded"
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
