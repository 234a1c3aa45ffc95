package clip

import (
	"strings"
	"testing"
)

func TestToCutsOnACharacterBoundary(t *testing.T) {
	const n = 64
	for _, tc := range []struct{ in, want string }{
		{"ann", "ann"},
		{strings.Repeat("a", n), strings.Repeat("a", n)},
		{strings.Repeat("a", n+1), strings.Repeat("a", n) + "…"},
		{"a" + strings.Repeat("é", n), "a" + strings.Repeat("é", (n-1)/2) + "…"},
	} {
		if got := To(tc.in, n); got != tc.want {
			t.Errorf("To(%q, %d) = %q, want %q", tc.in, n, got, tc.want)
		}
	}
}
