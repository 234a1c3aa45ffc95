package handlers

import (
	"strings"
	"testing"

	"github.com/buildkite/terminal-to-html/v3"
)

// Lines of text and SGR sequences, which appendTerminalHTML renders on a
// fast path of its own, come out as terminal-to-html renders them on a
// screen of their own (but for the characters it escapes and HTML does
// not need escaped in text); every other line goes to terminal-to-html.
func TestLogLinesRenderAsTerminalToHTMLRendersThem(t *testing.T) {
	fast := []string{
		"",
		"plain text: a/b 'quoted' \"double\" 100%",
		"<script>alert('x')</script> & &amp;",
		"trailing blanks   ",
		"\x1b[32mgreen\x1b[0m and plain",
		"\x1b[1;31mbold red\x1b[22m just red\x1b[39m plain",
		"\x1b[2mfaint\x1b[1mbold\x1b[21mnone",
		"\x1b[3;4;5;9mall\x1b[23;24;25;29m none",
		"\x1b[6mblink",
		"\x1b[41;97mbg\x1b[49m fg only\x1b[0m",
		"\x1b[104;90mbright\x1b[m reset by empty",
		"\x1b[;32mempty first\x1b[0;33m then yellow",
		"\x1b[32m\x1b[0m\x1b[33myellow only",
		"\x1b[32mgreen   ",
		"\x1b[32mgreen\x1b[0m   ",
		"\x1b[32mgreen\x1b[32m still\x1b[31m red",
		"\x1b[7mreverse is ignored\x1b[300mso is 300",
		"\x1b[?25mquestion\x1b[32M upper M",
		"\x1b[1m",
		"grün ✓ 漢字 \u0085 \x7f",
		strings.Repeat("\x1b[36mstep\x1b[0m wide ", 100),
	}
	slow := []string{
		"\x1b[38;5;196mred 256\x1b[0m",
		"\x1b[48;2;1;2;3mtrue colour",
		"progress 10%\rprogress 100%",
		"tab\there",
		"\x1b[2Kcleared",
		"\x1b[Aup",
		"\x1b]8;;https://example.com/\x1b\\link\x1b]8;;\x1b\\",
		"\x1b(Bcharset",
		"bell\x07",
		"invalid \xff utf-8",
		"\x1b[32",
		"back\bspace",
	}
	same := strings.NewReplacer("\n", "", "&#47;", "/", "&#39;", "'", "&quot;", `"`)
	for _, line := range append(fast, slow...) {
		want := same.Replace(terminal.Render([]byte(line)))
		if want == "&nbsp;" {
			want = ""
		}
		if got := string(appendTerminalHTML([]byte("<p>"), []byte(line))); got != "<p>"+want {
			t.Errorf("%q renders as\n%q, want\n%q", line, got, "<p>"+want)
		}
	}
	// The fast path's scan, eight bytes at a time, stops at each byte
	// that needs a look wherever it is, also among UTF-8 bytes.
	for _, special := range []byte("\x00\x1b\x1f&<>") {
		for at := range 40 {
			p := []byte(strings.Repeat("aü ~\x7f", 10))[:40]
			p[at] = special
			if n := plainPrefix(p); n != at {
				t.Errorf("%q: plain up to %d, want %d", p, n, at)
			}
		}
	}
	for _, line := range fast {
		if _, ok := appendSGRText(nil, []byte(line)); !ok {
			t.Errorf("%q does not take the fast path", line)
		}
	}
	for _, line := range slow {
		if out, ok := appendSGRText([]byte("x"), []byte(line)); ok || string(out) != "x" {
			t.Errorf("%q takes the fast path, or leaves %q", line, out)
		}
	}
}
