package handlers

import (
	"net/http"

	"kozmic/static"
)

// staticFile serves an embedded asset. A request carrying the file's current
// version may be cached for a year; any other is revalidated.
func (h *Handler) staticFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	v := static.Version(name)
	if v == "" {
		h.notFound(w, r)
		return
	}
	if r.URL.Query().Get("v") == v {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeFileFS(w, r, static.FS, name)
}
