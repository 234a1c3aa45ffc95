// Package handlers is all of Kozmic's HTTP: the route table, sessions,
// webhooks and live logs. Handlers parse the request, call the store or the
// runner, and render a view; every failure goes through Handler.fail.
package handlers

import (
	"context"
	"log/slog"
	"net/http"

	"kozmic/store"
)

// Store is what the handlers need of the database.
type Store interface {
	Ping(ctx context.Context) error
	WebhookSecret(ctx context.Context, projectID int64) (string, error)
	CreateBuild(ctx context.Context, nb store.NewBuild) (store.Build, []store.Job, error)
}

// Jobs is what the handlers need of the job runner.
type Jobs interface {
	// Enqueued wakes the runner after jobs were enqueued.
	Enqueued()
}

// Deps are the parts the handlers work with.
type Deps struct {
	DB   Store
	Jobs Jobs
	Log  *slog.Logger
}

// Handler serves every route of the server.
type Handler struct {
	db   Store
	jobs Jobs
	log  *slog.Logger
	mux  *http.ServeMux
}

// New returns the server's HTTP handler.
func New(d Deps) *Handler {
	h := &Handler{db: d.DB, jobs: d.Jobs, log: d.Log, mux: http.NewServeMux()}
	h.routes()
	return h
}

// ServeHTTP serves a request, answering a panic in a handler with the 500
// page instead of a dropped connection.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p)
			h.fail(w, r, errPanic)
		}
	}()
	h.mux.ServeHTTP(w, r)
}
