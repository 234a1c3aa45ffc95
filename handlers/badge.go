package handlers

import (
	"fmt"
	"html"
	"net/http"
	"strings"
)

// badge answers GET /badges/{owner}/{name}.svg[?ref=BRANCH] with an SVG
// reading passing, failing, error, running or unknown, never cached: the
// newest build of BRANCH (or of a full ref, refs/…), or without ref of the
// project's default branch, unknown while that is not known. Pull requests'
// builds never count (store.BranchBuild), so a stranger's failing pull
// request cannot turn a README's badge red. It is public, as badges are
// shown in READMEs; a private project's badge reads unknown like a missing
// one, so it tells nothing.
func (h *Handler) badge(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("file"), ".svg")
	word := "unknown"
	if ok {
		if p, err := h.db.ProjectByName(r.Context(), r.PathValue("owner")+"/"+name); err == nil && p.IsPublic {
			ref := r.URL.Query().Get("ref")
			if ref == "" {
				ref = p.DefaultBranch
			}
			if ref != "" && !strings.HasPrefix(ref, "refs/") {
				ref = "refs/heads/" + ref
			}
			if b, err := h.db.BranchBuild(r.Context(), p.ID, ref); ref != "" && err == nil {
				word = b.Status.Badge()
			}
		}
	}
	colour := map[string]string{"passing": "#1a7f37", "failing": "#cf222e", "error": "#9a6700", "running": "#8250df", "unknown": "#6e7781"}[word]
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-cache, no-store, max-age=0")
	fmt.Fprintf(w, badgeSVG, word, word, colour, html.EscapeString(word))
}

const badgeSVG = `<svg xmlns="http://www.w3.org/2000/svg" width="98" height="20" role="img" aria-label="build: %s">` +
	`<title>build: %s</title><rect width="40" height="20" fill="#555"/><rect x="40" width="58" height="20" fill="%s"/>` +
	`<g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle">` +
	`<text x="20" y="14">build</text><text x="69" y="14">%s</text></g></svg>`
