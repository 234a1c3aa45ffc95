package handlers

import (
	"errors"
	"net/http"

	"kozmic/store"
	"kozmic/views"
)

var (
	errPanic       = errors.New("handler panicked")
	errNoSuchRoute = errors.New("no such route")
)

// fail answers a request that went wrong: store.ErrNotFound (and unknown
// routes) with the 404 page, store.ErrConflict with 409, store.ErrInvalid
// with 422, anything else with the 500 page after logging it. The page never
// shows err's text.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	v := views.ErrorView{Status: http.StatusInternalServerError, Title: "Something went wrong",
		Message: "Kozmic could not finish this request. The problem has been logged; try again in a moment."}
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, errNoSuchRoute):
		v = views.ErrorView{Status: http.StatusNotFound, Title: "Page not found",
			Message: "There is nothing here, or you are not allowed to see it."}
	case errors.Is(err, store.ErrConflict):
		v = views.ErrorView{Status: http.StatusConflict, Title: "That clashes with something that exists",
			Message: "Another item already uses that name, or the item changed meanwhile. Reload and try again."}
	case errors.Is(err, store.ErrInvalid):
		v = views.ErrorView{Status: http.StatusUnprocessableEntity, Title: "That cannot be saved",
			Message: "Some of what was sent is missing or malformed. Go back, check the form and try again."}
	default:
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(v.Status)
	if r.Method == http.MethodHead {
		return
	}
	if err := views.ErrorPage(v).Render(r.Context(), w); err != nil {
		h.log.Warn("render error page", "err", err)
	}
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, errNoSuchRoute)
}
