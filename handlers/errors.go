package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"kozmic/store"
	"kozmic/views"
)

var (
	errPanic        = errors.New("handler panicked")
	errNoSuchRoute  = errors.New("no such route")
	errUnauthorized = errors.New("unauthorized")
	errForbidden    = errors.New("forbidden")
	errTooLarge     = errors.New("request body too large")
	errFormTooLarge = errors.New("form too large")
	errBadRequest   = errors.New("bad request")
	errBusy         = errors.New("too busy")
)

// retryAfterBusy is the Retry-After of a 503, in seconds.
const retryAfterBusy = "5"

var internalError = views.ErrorView{Status: http.StatusInternalServerError, Title: "Something went wrong",
	Message: "Kozmic could not finish this request. The problem has been logged; try again in a moment."}

// errorKinds are the failures with a page of their own, checked in order.
var errorKinds = []struct {
	err  error
	view views.ErrorView
}{
	{store.ErrNotFound, views.ErrorView{Status: http.StatusNotFound, Title: "Page not found",
		Message: "There is nothing here, or you are not allowed to see it."}},
	{errNoSuchRoute, views.ErrorView{Status: http.StatusNotFound, Title: "Page not found",
		Message: "There is nothing here, or you are not allowed to see it."}},
	{store.ErrConflict, views.ErrorView{Status: http.StatusConflict, Title: "That clashes with something that exists",
		Message: "Another item already uses that name, or the item changed meanwhile. Reload and try again."}},
	{store.ErrInvalid, views.ErrorView{Status: http.StatusUnprocessableEntity, Title: "That cannot be saved",
		Message: "Some of what was sent is missing or malformed. Go back, check the form and try again."}},
	{errUnauthorized, views.ErrorView{Status: http.StatusUnauthorized, Title: "Not allowed",
		Message: "The request's signature or credentials are missing or wrong."}},
	{errForbidden, views.ErrorView{Status: http.StatusForbidden, Title: "Not allowed",
		Message: "Your role in this project does not allow that. Its owner or managers can."}},
	{errFormTooLarge, views.ErrorView{Status: http.StatusRequestEntityTooLarge, Title: "Too large",
		Message: "What you sent is larger than Kozmic accepts: 64 KiB for a form, 1 MiB for a hook with its scripts. Go back, shorten it and try again."}},
	{errTooLarge, views.ErrorView{Status: http.StatusRequestEntityTooLarge, Title: "Too large",
		Message: "The request body is larger than Kozmic accepts."}},
	{errBadRequest, views.ErrorView{Status: http.StatusBadRequest, Title: "Malformed request",
		Message: "The request body could not be read as what it claims to be."}},
	{errBusy, views.ErrorView{Status: http.StatusServiceUnavailable, Title: "Too busy",
		Message: "Kozmic is receiving as much as it takes at once. Try again in a moment."}},
}

// fail answers a request that went wrong: store.ErrNotFound (and unknown
// routes) with 404, store.ErrConflict with 409, store.ErrInvalid with 422,
// the handlers' own errUnauthorized, errForbidden, errFormTooLarge,
// errTooLarge, errBadRequest and errBusy with 401, 403, 413, 413, 400 and
// 503 (saying Retry-After), and anything else with 500 after logging it. Pages get the
// friendly error page, API routes a JSON {"error": …}. Neither shows err's
// text.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	v := internalError
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			v = k.view
			break
		}
	}
	if v.Status == http.StatusInternalServerError {
		h.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Cache-Control", "no-store")
	if v.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterBusy)
	}
	if isAPI(r) {
		writeJSON(w, v.Status, map[string]string{"error": v.Message})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(v.Status)
	if r.Method == http.MethodHead {
		return
	}
	if u, ok := r.Context().Value(userKey{}).(store.User); ok {
		v.User = u.Login()
	} else if r.Context().Value(sessionKey{}) != nil {
		// A failure before requireUser ran (an unknown page): the session still tells who is here.
		u, _ := h.currentUser(r)
		v.User = u.Login()
		r = r.WithContext(context.WithValue(r.Context(), userKey{}, u)) // for the layout: is this an admin?
	}
	if err := views.ErrorPage(v).Render(h.pageContext(r), w); err != nil {
		h.log.WarnContext(r.Context(), "render error page", "err", err)
	}
}

// isAPI tells requests from machines (webhooks, metrics scrapers), which
// get JSON, from requests from browsers.
func isAPI(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/webhooks/") || r.URL.Path == "/metrics"
}

// writeJSON sends v as the JSON body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.fail(w, r, errNoSuchRoute)
}
