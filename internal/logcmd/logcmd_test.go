package logcmd

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseReadsCommandsAndLeavesEverythingElseText(t *testing.T) {
	long := strings.Repeat("é", MaxMessage) // 2 bytes each: cut between characters
	for _, tc := range []struct {
		line string
		want Command
		ok   bool
	}{
		{"::group::Build the app", Command{Kind: GroupStart, Title: "Build the app"}, true},
		{"::group::", Command{Kind: GroupStart}, true},
		{"::endgroup::", Command{Kind: GroupEnd}, true},
		{"::endgroup::ignored", Command{Kind: GroupEnd}, true},
		{"::error::it broke", Command{Kind: Annotation, Level: Error, Message: "it broke"}, true},
		{"::warning::careful", Command{Kind: Annotation, Level: Warning, Message: "careful"}, true},
		{"::notice::fyi", Command{Kind: Annotation, Level: Notice, Message: "fyi"}, true},
		{"::ERROR::shouting", Command{Kind: Annotation, Level: Error, Message: "shouting"}, true},
		{"::error file=app.go,line=12,col=3,title=Bad::msg",
			Command{Kind: Annotation, Level: Error, File: "app.go", Line: 12, Col: 3, Title: "Bad", Message: "msg"}, true},
		{"::warning  file=a.go , line=7::two blanks",
			Command{Kind: Annotation, Level: Warning, File: "a.go ", Message: "two blanks"}, true},
		{"::error line=x,col=-1,line=0,file=,=v,novalue::bad params", Command{Kind: Annotation, Level: Error, Message: "bad params"}, true},
		{"::error title=a%3Ab%2Cc%25d%0Ae::m%3A%2C%250A%0Ax%0D", Command{Kind: Annotation, Level: Error, Title: "a:b,c%d\ne", Message: "m%3A%2C%0A\nx\r"}, true},
		{"::error::%0a stays%", Command{Kind: Annotation, Level: Error, Message: "%0a stays%"}, true},
		{"::error::crlf\r", Command{Kind: Annotation, Level: Error, Message: "crlf"}, true},
		{"::group::crlf\r", Command{Kind: GroupStart, Title: "crlf"}, true},
		{"::error::has :: inside", Command{Kind: Annotation, Level: Error, Message: "has :: inside"}, true},
		{"::error::\x1b[31mred\x1b[0m <b>&", Command{Kind: Annotation, Level: Error, Message: "red <b>&"}, true},
		{"::error::bad \xff utf8", Command{Kind: Annotation, Level: Error, Message: "bad \uFFFD utf8"}, true},
		{"::error::" + long, Command{Kind: Annotation, Level: Error, Message: long[:MaxMessage]}, true},
		{"::error::" + "x" + long, Command{Kind: Annotation, Level: Error, Message: "x" + long[:MaxMessage-2]}, true},
		// Not commands: text as it is.
		{"", Command{}, false},
		{":", Command{}, false},
		{"::", Command{}, false},
		{"::error", Command{}, false},
		{"::error message without end", Command{}, false},
		{"::debug::not ours", Command{}, false},
		{"::set-output name=x::y", Command{}, false},
		{" ::error::indented", Command{}, false},
		{"\t::group::tabbed", Command{}, false},
		{"\x1b[31m::error::coloured", Command{}, false},
		{"\x1b[1;36m==> Kozmic's own line\x1b[0m\r", Command{}, false},
		{"text ::error::later in the line", Command{}, false},
		{": :error::", Command{}, false},
	} {
		got, ok := Parse([]byte(tc.line))
		if ok != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseBoundsFields(t *testing.T) {
	big := strings.Repeat("f", 3*MaxField)
	c, ok := Parse([]byte("::notice file=" + big + ",title=" + big + "::m"))
	if !ok || len(c.File) != MaxField || len(c.Title) != MaxField || c.Message != "m" {
		t.Fatalf("got file %d bytes, title %d, message %q, ok %v", len(c.File), len(c.Title), c.Message, ok)
	}
	// A line longer than MaxLine is read up to MaxLine: its "::" comes too late.
	if _, ok := Parse([]byte("::error title=" + strings.Repeat("t", MaxLine) + "::m")); ok {
		t.Fatal("a command whose parameters pass MaxLine was read")
	}
}

// scanAll feeds out to a Scanner cut at the given positions and lists what
// it found as "line:kind:message".
func scanAll(out string, cuts ...int) []string {
	var s Scanner
	var got []string
	found := func(n int, c Command) { got = append(got, fmt.Sprintf("%d:%d:%s%s", n, c.Kind, c.Title, c.Message)) }
	prev := 0
	for _, cut := range append(cuts, len(out)) {
		s.Scan([]byte(out[prev:cut]), found)
		prev = cut
	}
	s.End(found)
	return got
}

func TestScannerNumbersCommandLinesHoweverTheOutputIsCut(t *testing.T) {
	out := "one\n::group::Setup\r\n: not\n:: not either\n::error file=a.go,line=3::broken\nx ::error::no\n\n" +
		"::endgroup::\n" + strings.Repeat("y", 100) + "\n\x1b[33m::warning::coloured\x1b[0m\n::notice::last, no newline"
	want := []string{"2:1:Setup", "5:3:broken", "8:2:", "11:3:last, no newline"}
	if got := scanAll(out); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("whole: got %q, want %q", got, want)
	}
	for i := 0; i <= len(out); i++ {
		if got := scanAll(out, i); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("cut at %d: got %q, want %q", i, got, want)
		}
		for j := i; j <= len(out); j += 7 {
			if got := scanAll(out, i, j); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("cut at %d and %d: got %q, want %q", i, j, got, want)
			}
		}
	}
}

func TestScannerHoldsAtMostMaxLineOfALine(t *testing.T) {
	var s Scanner
	n := 0
	line := "::error::" + strings.Repeat("z", 10*MaxLine)
	for i := 0; i < len(line); i += 1000 {
		s.Scan([]byte(line[i:min(i+1000, len(line))]), func(int, Command) { n++ })
		if len(s.held) > MaxLine {
			t.Fatalf("holds %d bytes of one line", len(s.held))
		}
	}
	var msg string
	s.Scan([]byte("\n"), func(_ int, c Command) { n++; msg = c.Message })
	if n != 1 || len(msg) != MaxMessage {
		t.Fatalf("found %d commands, message of %d bytes; want 1 of %d", n, len(msg), MaxMessage)
	}
}

// BenchmarkScanner scans build output of ordinary lines with a command
// line now and then, as the runner does every byte of a job's log, in
// pieces of 32 KiB; b.SetBytes makes its figure MB/s.
func BenchmarkScanner(b *testing.B) {
	var out strings.Builder
	for i := 0; out.Len() < 8<<20; i++ {
		fmt.Fprintf(&out, "\x1b[36mstep\x1b[0m %d of a very long build: compiling package number %d\n", i, i)
		if i%1000 == 0 {
			fmt.Fprintf(&out, "::warning file=pkg%d.go,line=%d::something to look at\n", i, i)
		}
	}
	data := []byte(out.String())
	b.SetBytes(int64(len(data)))
	n := 0
	for b.Loop() {
		var s Scanner
		for p := data; len(p) > 0; p = p[min(len(p), 32<<10):] {
			s.Scan(p[:min(len(p), 32<<10)], func(int, Command) { n++ })
		}
	}
	if n == 0 {
		b.Fatal("found no commands")
	}
}
