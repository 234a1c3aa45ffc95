package handlers

import (
	"errors"
	"fmt"
	textclip "kozmic/internal/clip"
	"net/http"
)

// Caps on what strangers can make the server hold or log.
const (
	formLimit      = 64 << 10 // bytes of a POST form's body
	hookFormLimit  = 1 << 20  // bytes of a hook form's body: it carries scripts
	maxUsernameLen = 64       // bytes of a username at sign-in
	maxLoggedLen   = 64       // bytes of a user-supplied value in a log line
	maxGitSaidLen  = 512      // bytes of what git said shown on a form
)

// limitForms caps the body of every POST at formLimit, or at the limit of
// its route's bodyLimit, and parses it as a form before the route's handler
// runs, so that handlers read r.PostForm already bounded. A larger body is
// answered with errFormTooLarge (413) after reading no more than the cap; a
// malformed one with errBadRequest (400).
func (h *Handler) limitForms(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		route, _ := h.mux.Handler(r)
		limit := int64(formLimit)
		if l, ok := route.(bodyLimit); ok {
			limit = l.limit
		}
		if limit == 0 {
			next.ServeHTTP(w, r)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := r.ParseForm(); err != nil {
			if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
				h.fail(w, r, errFormTooLarge)
				return
			}
			h.fail(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clip returns s cut to maxLoggedLen bytes: what a log line may hold of a
// value that someone else chose.
func clip(s string) string { return textclip.To(s, maxLoggedLen) }
