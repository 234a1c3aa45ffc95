// Package clip shortens text that someone else chose before Kozmic writes
// it where space is bounded: a log line, a mail.
package clip

import "unicode/utf8"

// To returns s cut to at most n bytes, on a character boundary, and marked
// "…" if it was longer.
func To(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
