package ansi

import "testing"

// A search matches the text a terminal shows: case and escape sequences
// aside, also a string sequence left open on the line before.
func TestMatcherIgnoresCaseAndEscapes(t *testing.T) {
	match := Matcher("Needle")
	for _, tt := range []struct {
		line string
		want bool
	}{
		{"a \x1b[1mNEE\x1b[0mdle here\r\n", true},
		{"\x1b]0;title without an end\n", false},
		{"needle after the open title\n", true},
		{"\x1b]0;needle in a title\x07 only\n", false},
		{"need le\n", false},
	} {
		if got := match([]byte(tt.line)); got != tt.want {
			t.Errorf("match(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}
