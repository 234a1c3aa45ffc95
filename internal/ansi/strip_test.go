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

// Case is ignored beyond ASCII too, and the buffer a line is lowered into
// keeps nothing of the line before.
func TestMatcherIgnoresCaseBeyondASCII(t *testing.T) {
	match := Matcher("grün")
	for _, tt := range []struct {
		line string
		want bool
	}{
		{"GRÜN\n", true},
		{"\x1b[1mGrÜn\x1b[0m light\n", true},
		{"grun\n", false},
		{"g\n", false},
	} {
		if got := match([]byte(tt.line)); got != tt.want {
			t.Errorf("match(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}
