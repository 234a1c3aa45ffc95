// Package logcmd reads the commands a build script writes into its output
// the way GitHub Actions' workflow commands are written: a line
// "::group::Title" starts a group of lines that "::endgroup::" ends, and
// "::error::message", "::warning::message" and "::notice::message",
// optionally with parameters ("::error file=app.go,line=12,col=3,title=Bad::message"),
// are annotations.
//
// A command is a line that starts with "::" itself: one that starts with
// blanks or an escape sequence (a coloured line, and so every line Kozmic
// writes of its own) is text. A trailing \r is no part of the line, so
// CRLF output works the same. An unknown command, or a line with no "::"
// after the name and parameters, is text too.
package logcmd

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"kozmic/internal/ansi"
)

// Kind is what a command line does.
type Kind uint8

const (
	Text       Kind = iota // not a command: shown as it is
	GroupStart             // ::group::Title
	GroupEnd               // ::endgroup::
	Annotation             // ::error::, ::warning:: or ::notice::
)

// Level is an annotation's severity, named as in its command.
type Level string

const (
	Error   Level = "error"
	Warning Level = "warning"
	Notice  Level = "notice"
)

// Bounds on what one command keeps, so that hostile output costs little:
// the message, and each of the title, the file and a group's title.
const (
	MaxMessage = 4 << 10
	MaxField   = 1 << 10
)

// MaxLine is how much of a command line Parse reads: the name, parameters
// and message bounded above fit well within it; a longer line's rest is
// ignored.
const MaxLine = 3*MaxField + MaxMessage + 1024

// Command is one command line, read. Strings are valid UTF-8 without
// escape sequences, cut at the bounds above; they are to be escaped for
// whatever they are shown in.
type Command struct {
	Kind    Kind
	Level   Level  // an annotation's
	Title   string // a group's title, or an annotation's title parameter
	File    string // an annotation's file parameter
	Line    int    // its line parameter; 0 if none or not a positive number
	Col     int    // its col parameter, likewise
	Message string // an annotation's message
}

// IsCommand reports cheaply whether line can be a command at all: whether
// it starts with "::". Parse says whether it is one.
func IsCommand(line []byte) bool {
	return len(line) >= 2 && line[0] == ':' && line[1] == ':'
}

// Parse reads line (without its \n; a trailing \r is dropped) as a command.
// It reports false for a line that is not a command, which is then text.
// At most MaxLine bytes of line are read.
func Parse(line []byte) (Command, bool) {
	if !IsCommand(line) {
		return Command{}, false
	}
	line = bytes.TrimSuffix(line[:min(len(line), MaxLine)], []byte("\r"))
	info, data, ok := bytes.Cut(line[2:], []byte("::"))
	if !ok {
		return Command{}, false
	}
	name, params, _ := bytes.Cut(info, []byte(" "))
	var c Command
	switch n := string(name); {
	case strings.EqualFold(n, "group"):
		return Command{Kind: GroupStart, Title: clean(unescape(data, false), MaxField)}, true
	case strings.EqualFold(n, "endgroup"):
		return Command{Kind: GroupEnd}, true
	case strings.EqualFold(n, "error"):
		c.Level = Error
	case strings.EqualFold(n, "warning"):
		c.Level = Warning
	case strings.EqualFold(n, "notice"):
		c.Level = Notice
	default:
		return Command{}, false
	}
	c.Kind = Annotation
	for p := range bytes.SplitSeq(bytes.TrimSpace(params), []byte(",")) {
		key, value, ok := bytes.Cut(p, []byte("="))
		if !ok || len(key) == 0 || len(value) == 0 {
			continue // as GitHub does: a parameter needs a name and a value
		}
		switch string(key) {
		case "title":
			c.Title = clean(unescape(value, true), MaxField)
		case "file":
			c.File = clean(unescape(value, true), MaxField)
		case "line":
			c.Line = positive(value)
		case "col":
			c.Col = positive(value)
		}
	}
	c.Message = clean(unescape(data, false), MaxMessage)
	return c, true
}

// positive reads a positive number of at most nine digits; anything else is 0.
func positive(p []byte) int {
	if len(p) > 9 {
		return 0
	}
	n, err := strconv.Atoi(string(p))
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// escapes are the escapes of commands, as GitHub's runner reads them
// (case-sensitive); paramOnly ones are read in parameter values only.
var escapes = map[string]struct {
	c         byte
	paramOnly bool
}{"25": {'%', false}, "0D": {'\r', false}, "0A": {'\n', false}, "3A": {':', true}, "2C": {',', true}}

// unescape undoes the escapes of a command's message (%25 %0D %0A) or, if
// param, of a parameter's value (also %3A and %2C), in one pass, so that
// an escaped "%" never starts another escape.
func unescape(p []byte, param bool) []byte {
	if bytes.IndexByte(p, '%') < 0 {
		return p
	}
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) {
			if e, ok := escapes[string(p[i+1:i+3])]; ok && (param || !e.paramOnly) {
				c = e.c
				i += 2
			}
		}
		out = append(out, c)
	}
	return out
}

// clean makes p a string of valid UTF-8 without terminal escape sequences,
// at most max bytes long (cut between characters).
func clean(p []byte, max int) string {
	if bytes.IndexByte(p, 0x1b) >= 0 {
		var s ansi.Stripper
		p = s.Strip(p)
	}
	s := strings.ToValidUTF8(string(p), "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Scanner finds the command lines in output read in pieces, numbering
// lines from 1 as the log's pages do (a line ends with \n). It looks
// closely only at lines that start with "::", holding at most MaxLine
// bytes of one; the rest of the output it only counts lines in.
type Scanner struct {
	line int    // the number of the current line, less 1
	skip bool   // the current line is not a command: skip to its end
	held []byte // else the current line's first bytes so far, at most MaxLine
}

// Scan reads the next piece of output, calling found with each command it
// completes and the number of its line.
func (s *Scanner) Scan(p []byte, found func(line int, c Command)) {
	for len(p) > 0 {
		if s.skip {
			// Lines that start with ":" are the only ones to look at.
			i := bytes.Index(p, []byte("\n:"))
			if i < 0 {
				s.line += bytes.Count(p, []byte("\n"))
				s.skip = p[len(p)-1] != '\n'
				return
			}
			s.line += bytes.Count(p[:i], []byte("\n")) + 1
			p, s.skip = p[i+1:], false
		}
		i := bytes.IndexByte(p, '\n')
		end := i
		if i < 0 {
			end = len(p)
		}
		// The first two bytes decide, before the rest is copied.
		first := min(end, max(0, 2-len(s.held)))
		s.held = append(s.held, p[:first]...)
		if len(s.held) > 0 && s.held[0] != ':' || len(s.held) > 1 && s.held[1] != ':' {
			s.held, s.skip = s.held[:0], true
			p = p[first:]
			continue // skips the rest of this line
		}
		s.held = append(s.held, p[first:max(first, min(end, MaxLine-len(s.held)+first))]...)
		if i < 0 {
			return
		}
		s.endLine(found)
		p = p[i+1:]
	}
}

// endLine ends the current line, reading it as a command if it is one.
func (s *Scanner) endLine(found func(line int, c Command)) {
	s.line++
	if c, ok := Parse(s.held); ok {
		found(s.line, c)
	}
	s.held = s.held[:0]
}

// End reads the log's last line when it has no \n, at the end of the output.
func (s *Scanner) End(found func(line int, c Command)) {
	if !s.skip && len(s.held) > 0 {
		s.endLine(found)
	}
}
