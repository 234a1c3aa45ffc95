package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Metrics is where the handlers count what they answer, and what serves
// GET /metrics (the metrics package implements it).
type Metrics interface {
	// Webhook counts a webhook delivery by its result, such as "created"
	// or "unauthorized" (see metrics.WebhookResults).
	Webhook(result string)
	// LogRendered counts bytes of job log rendered to HTML, for pages and
	// live streams (which render a live chunk once for all its followers).
	LogRendered(bytes int)
	// ServeHTTP answers a scrape in the Prometheus text format.
	http.Handler
}

// serveMetrics answers GET /metrics with the Prometheus metrics. When a
// metrics token is configured it requires "Authorization: Bearer <token>"
// and answers 401 without it; without a token anyone may scrape. Without
// Deps.Metrics the route is 404.
func (h *Handler) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if h.metrics == nil {
		h.fail(w, r, errNoSuchRoute)
		return
	}
	if h.metricsToken != "" && !bearerMatches(r.Header.Get("Authorization"), h.metricsToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kozmic metrics"`)
		h.fail(w, r, errUnauthorized)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.metrics.ServeHTTP(w, r)
}

// bearerMatches reports whether an Authorization header carries the bearer
// token want. The scheme is case-insensitive (RFC 9110); the token is
// compared in constant time, and through its hash so that not even its
// length shows in the timing.
func bearerMatches(header, want string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got, exp := sha256.Sum256([]byte(strings.TrimSpace(token))), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(got[:], exp[:]) == 1
}
