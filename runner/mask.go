package runner

import (
	"bytes"
	"slices"

	"kozmic/store"
)

// masker replaces secret values with ******** in a stream written in
// arbitrary pieces. It holds back the end of the stream while it could be the
// start of a secret, so a secret split across two writes is still masked.
type masker struct {
	secrets [][]byte // longest first, so a secret containing another is masked whole
	pending []byte
}

// newMasker masks the values of at least store.MinMaskedLen bytes; shorter ones pass.
func newMasker(values []string) *masker {
	m := &masker{}
	for _, v := range values {
		if len(v) >= store.MinMaskedLen {
			m.secrets = append(m.secrets, []byte(v))
		}
	}
	slices.SortFunc(m.secrets, func(a, b []byte) int { return len(b) - len(a) })
	return m
}

// write takes more of the stream and returns what is safe to pass on. It
// decides left to right: where the rest of the stream could still grow into
// a secret it stops and holds the rest; where a secret is complete it masks
// the longest; anything else passes.
func (m *masker) write(p []byte) []byte {
	if len(m.secrets) == 0 {
		return p
	}
	m.pending = append(m.pending, p...)
	out := make([]byte, 0, len(m.pending))
	i := 0
	for i < len(m.pending) {
		// Pass bytes that start no secret in bulk.
		next := len(m.pending)
		for _, s := range m.secrets {
			if j := bytes.IndexByte(m.pending[i:], s[0]); j >= 0 && i+j < next {
				next = i + j
			}
		}
		out = append(out, m.pending[i:next]...)
		if i = next; i == len(m.pending) {
			break
		}
		rest := m.pending[i:]
		if m.couldGrow(rest) {
			break
		}
		matched := false
		for _, s := range m.secrets {
			if bytes.HasPrefix(rest, s) {
				out = append(out, store.SecretMask...)
				i += len(s)
				matched = true
				break
			}
		}
		if !matched {
			out = append(out, m.pending[i])
			i++
		}
	}
	m.pending = append(m.pending[:0], m.pending[i:]...)
	return out
}

// couldGrow reports whether rest is the unfinished start of some secret.
func (m *masker) couldGrow(rest []byte) bool {
	for _, s := range m.secrets {
		if len(rest) < len(s) && bytes.HasPrefix(s, rest) {
			return true
		}
	}
	return false
}

// flush returns what is held back: at the end of the stream it cannot become a secret.
func (m *masker) flush() []byte {
	out := m.pending
	m.pending = nil
	return out
}
