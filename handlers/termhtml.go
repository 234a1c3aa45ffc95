package handlers

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/buildkite/terminal-to-html/v3"
)

// appendTerminalHTML appends the HTML of one line of terminal output (no
// \n in it) as terminal-to-html renders it on a screen of its own, so that
// no line's colours or cursor moves reach another; an empty line is empty,
// and no line break is left in it.
// Text with only SGR sequences (colours and such, the bulk of a build's
// output) takes a fast path of its own; anything else goes through
// terminal.Render.
func appendTerminalHTML(b, line []byte) []byte {
	if out, ok := appendSGRText(b, line); ok {
		return out
	}
	out := noLineBreaks.Replace(terminal.Render(line))
	if out == "&nbsp;" { // terminal.Render's empty line
		return b
	}
	return append(b, out...)
}

// noLineBreaks drops what terminal.Render leaves of line breaks: the \n it
// ends lines with, and any \r in an element's attributes.
var noLineBreaks = strings.NewReplacer("\n", "", "\r", "")

// textEscape says which bytes of a line's text the fast path cannot copy
// as they are: control characters (escape sequences among them), which it
// handles or leaves to terminal.Render, and what HTML must escape.
var textEscape = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['&'], t['<'], t['>'] = true, true, true
	return t
}()

// plainPrefix is how many bytes p starts with that textEscape lets
// through: eight at a time while none of them needs a look.
func plainPrefix(p []byte) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	n := 0
	for ; n+8 <= len(p); n += 8 {
		x := binary.LittleEndian.Uint64(p[n:])
		// The high bit of a byte of each term is set where a byte of x is
		// below 0x20 (given that it is below 0x80), or is &, < or >.
		below := (x - ones*0x20) &^ x
		amp, lt, gt := x^(ones*'&'), x^(ones*'<'), x^(ones*'>')
		zero := (amp-ones)&^amp | (lt-ones)&^lt | (gt-ones)&^gt
		if (below|zero)&highs != 0 {
			break
		}
	}
	for n < len(p) && !textEscape[p[n]] {
		n++
	}
	return n
}

// sgrStyle is the part of terminal-to-html's style that the fast path
// sets: SGR colours (30–37, 90–97 and their backgrounds) and attributes.
type sgrStyle struct {
	fg, bg uint8
	attrs  uint8 // sgrBold and the others
}

const (
	sgrBold = 1 << iota
	sgrFaint
	sgrItalic
	sgrUnderline
	sgrBlink
	sgrStrike
)

// sgrAttrClasses are the classes of the attributes, in terminal-to-html's order.
var sgrAttrClasses = []struct {
	bit   uint8
	class string
}{{sgrBold, "term-fg1"}, {sgrFaint, "term-fg2"}, {sgrItalic, "term-fg3"}, {sgrUnderline, "term-fg4"}, {sgrBlink, "term-fg5"}, {sgrStrike, "term-fg9"}}

// appendSpan appends the span that starts text of style s, with the
// classes terminal-to-html gives it.
func (s sgrStyle) appendSpan(b []byte) []byte {
	b = append(b, `<span class="`...)
	sep := ""
	add := func(class string, n uint8) {
		b = append(append(b, sep...), class...)
		if n > 0 {
			b = strconv.AppendInt(b, int64(n), 10)
		}
		sep = " "
	}
	switch {
	case s.fg >= 30 && s.fg <= 37:
		add("term-fg", s.fg)
	case s.fg >= 90 && s.fg <= 97:
		add("term-fgi", s.fg)
	}
	switch {
	case s.bg >= 40 && s.bg <= 47:
		add("term-bg", s.bg)
	case s.bg >= 100 && s.bg <= 107:
		add("term-bgi", s.bg)
	}
	for _, a := range sgrAttrClasses {
		if s.attrs&a.bit != 0 {
			add(a.class, 0)
		}
	}
	return append(b, `">`...)
}

// apply changes s as terminal-to-html does for the SGR sequence whose
// parameters are params ("1;32"). It reports false for what the fast path
// leaves to terminal-to-html: 256 and 24-bit colours.
func (s *sgrStyle) apply(params []byte) bool {
	var fields [][]byte
	for f := range bytes.SplitSeq(params, []byte(";")) {
		if len(f) > 0 { // terminal-to-html skips empty parameters
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 || (len(fields) == 1 && string(fields[0]) == "0") {
		*s = sgrStyle{}
		return true
	}
	for _, f := range fields {
		n, err := strconv.ParseUint(string(f), 10, 8)
		if err != nil {
			continue // as terminal-to-html does
		}
		switch c := uint8(n); c {
		case 0:
			*s = sgrStyle{}
		case 1:
			s.attrs = s.attrs&^sgrFaint | sgrBold
		case 2:
			s.attrs = s.attrs&^sgrBold | sgrFaint
		case 3:
			s.attrs |= sgrItalic
		case 4:
			s.attrs |= sgrUnderline
		case 5, 6:
			s.attrs |= sgrBlink
		case 9:
			s.attrs |= sgrStrike
		case 21, 22:
			s.attrs &^= sgrBold | sgrFaint
		case 23:
			s.attrs &^= sgrItalic
		case 24:
			s.attrs &^= sgrUnderline
		case 25:
			s.attrs &^= sgrBlink
		case 29:
			s.attrs &^= sgrStrike
		case 38, 48:
			return false
		case 39:
			s.fg = 0
		case 49:
			s.bg = 0
		case 30, 31, 32, 33, 34, 35, 36, 37, 90, 91, 92, 93, 94, 95, 96, 97:
			s.fg = c
		case 40, 41, 42, 43, 44, 45, 46, 47, 100, 101, 102, 103, 104, 105, 106, 107:
			s.bg = c
		}
	}
	return true
}

// appendSGRText is appendTerminalHTML's fast path: for a line of valid
// UTF-8 whose only control characters start SGR sequences (ESC [ … m), it
// appends the HTML terminal.Render makes of it (escaping only what HTML
// needs escaped in text) and reports true; for any other line it appends
// nothing and reports false.
func appendSGRText(b, line []byte) ([]byte, bool) {
	if !utf8.Valid(line) {
		return b, false
	}
	start := len(b)
	var cur, open sgrStyle // the style now, and the open span's
	spanOpen := false
	for i := 0; i < len(line); {
		j := i + plainPrefix(line[i:])
		if j > i || (j < len(line) && line[j] != 0x1b) {
			// Text: in a span of the current style.
			if spanOpen && (cur == sgrStyle{} || cur != open) {
				b = append(b, "</span>"...)
				spanOpen = false
			}
			if !spanOpen && cur != (sgrStyle{}) {
				b = cur.appendSpan(b)
				open, spanOpen = cur, true
			}
		}
		b = append(b, line[i:j]...)
		if j == len(line) {
			break
		}
		switch c := line[j]; c {
		case '&':
			b = append(b, "&amp;"...)
			i = j + 1
		case '<':
			b = append(b, "&lt;"...)
			i = j + 1
		case '>':
			b = append(b, "&gt;"...)
			i = j + 1
		case 0x1b:
			k := j + 1
			if k == len(line) || line[k] != '[' {
				return b[:start], false
			}
			k++
			for k < len(line) && (line[k] >= '0' && line[k] <= '9' || line[k] == ';' || line[k] == '?') {
				k++
			}
			if k == len(line) || line[k] != 'm' && line[k] != 'M' || !cur.apply(line[j+2:k]) {
				return b[:start], false
			}
			i = k + 1
		default: // another control character
			return b[:start], false
		}
	}
	if spanOpen {
		b = append(b, "</span>"...)
	} else {
		// terminal-to-html trims trailing blanks outside a span.
		for len(b) > start && b[len(b)-1] == ' ' {
			b = b[:len(b)-1]
		}
	}
	return b, true
}
