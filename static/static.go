// Package static holds the stylesheet and scripts, embedded in the binary.
// Their URLs carry a version taken from their content, so browsers may cache
// them for good and still see a new release at once.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/url"
)

// FS holds the files served under /static/: Kozmic's stylesheet and
// script, and htmx 2.0.11 with its SSE extension 2.2.4 (from the npm
// registry, with their licence files).
//
//go:embed *.css *.js *.txt
var FS embed.FS

// versions maps each file name to the first 12 hex digits of its SHA-256.
var versions = func() map[string]string {
	v := map[string]string{}
	fs.WalkDir(FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := FS.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		v[name] = hex.EncodeToString(sum[:6])
		return nil
	})
	return v
}()

// Version returns the content version of an embedded file, or "" if there is
// no such file.
func Version(name string) string { return versions[name] }

// Path returns the versioned URL path of an embedded file.
func Path(name string) string {
	return "/static/" + url.PathEscape(name) + "?v=" + versions[name]
}
