// Package ansi removes terminal escape sequences from output read in pieces.
package ansi

import (
	"bytes"
	"slices"
)

// escapeState is where a Stripper stands in the escape sequence
// syntax of ECMA-48 (and xterm's OSC): between sequences, or inside one.
type escapeState uint8

const (
	inText      escapeState = iota
	inEscape                // after ESC
	inEscInter              // after ESC and intermediate bytes (ESC ( B)
	inCSI                   // after ESC [: parameters until a final byte
	inString                // OSC, DCS, SOS, PM, APC: until BEL or ESC \
	inStringEsc             // after ESC inside a string
)

// Stripper removes terminal escape sequences from a log read in
// pieces: CSI (colours, cursor moves), OSC (titles, hyperlinks), the other
// string sequences and two- or three-byte escapes. It keeps its state from
// one piece to the next, so a sequence split between reads is removed as a
// whole. Everything else, line ends and \r included, stays as it is.
type Stripper struct {
	state escapeState
	out   []byte
}

// Strip returns p without the escape sequences in it, in a buffer reused by
// the next call.
func (s *Stripper) Strip(p []byte) []byte {
	out := s.out[:0]
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch s.state {
		case inText:
			// Copy up to the next escape in one step: most of a log is text.
			n := bytes.IndexByte(p[i:], 0x1b)
			if n < 0 {
				out = append(out, p[i:]...)
				i = len(p)
				continue
			}
			out = append(out, p[i:i+n]...)
			i += n
			s.state = inEscape
		case inEscape:
			switch {
			case c == '[':
				s.state = inCSI
			case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
				s.state = inString
			case c == 0x1b:
				// A new escape abandons the one before it.
			case c >= 0x20 && c <= 0x2f:
				s.state = inEscInter
			case c >= 0x30 && c <= 0x7e:
				s.state = inText // a two-byte escape, such as ESC 7
			default:
				// Not an escape after all: a control or text byte stays.
				out, s.state = append(out, c), inText
			}
		case inEscInter:
			switch {
			case c >= 0x20 && c <= 0x2f:
			case c >= 0x30 && c <= 0x7e:
				s.state = inText
			case c == 0x1b:
				s.state = inEscape
			default:
				out, s.state = append(out, c), inText
			}
		case inCSI:
			switch {
			case c >= 0x20 && c <= 0x3f: // parameters and intermediates
			case c >= 0x40 && c <= 0x7e:
				s.state = inText
			case c == 0x1b:
				s.state = inEscape
			default:
				// A control inside a sequence takes effect, as on a
				// terminal; any other byte (DEL, or past ASCII) cuts the
				// sequence short and stays, so that text in UTF-8 is never
				// lost to a broken sequence.
				out = append(out, c)
				if c >= 0x20 {
					s.state = inText
				}
			}
		case inString:
			switch c {
			case 0x07:
				s.state = inText
			case 0x1b:
				s.state = inStringEsc
			case '\n':
				// A string that never ends would swallow the rest of the
				// log: a line end ends it, and stays.
				out, s.state = append(out, c), inText
			}
		case inStringEsc:
			if c == '\\' {
				s.state = inText
			} else {
				// ESC followed by anything but \ starts a new sequence.
				s.state = inEscape
				i--
			}
		}
	}
	s.out = out
	return out
}

// Matcher returns a test of whether a line of terminal output contains
// query, ignoring case and escape sequences. It strips with one Stripper
// from line to line, so it must be given the lines of one log in order,
// each with its line end, as a sequence may span lines.
func Matcher(query string) func(line []byte) bool {
	q := bytes.ToLower([]byte(query))
	var s Stripper
	var lower []byte // reused: a search of a long log tests every line
	return func(line []byte) bool {
		lower = appendLower(lower[:0], s.Strip(line))
		return bytes.Contains(lower, q)
	}
}

// appendLower appends p in lower case to dst.
func appendLower(dst, p []byte) []byte {
	n := len(dst)
	dst = slices.Grow(dst, len(p))[:n+len(p)]
	var high byte // any byte past ASCII sets its top bit
	for i, c := range p {
		dst[n+i] = asciiLower[c]
		high |= c
	}
	if high >= 0x80 {
		return append(dst[:n], bytes.ToLower(p)...) // Unicode's rules
	}
	return dst
}

// asciiLower maps each byte to itself, but A to Z to a to z.
var asciiLower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] += 'a' - 'A'
		}
	}
	return t
}()
