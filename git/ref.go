package git

import "strings"

// ValidSHA says whether s is a full object name: 40 (SHA-1) or 64 (SHA-256)
// lower- or upper-case hex digits.
func ValidSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// ValidRef says whether ref is a full ref name that git check-ref-format
// accepts and that no git command can take for an option: it starts with
// "refs/", has no empty component, no component that starts with "." or "-"
// or ends with ".lock", no "..", no "@{", no control character, space or any
// of ~^:?*[\, and does not end with "/" or ".".
func ValidRef(ref string) bool {
	rest, ok := strings.CutPrefix(ref, "refs/")
	if !ok || rest == "" || strings.HasSuffix(ref, ".") ||
		strings.Contains(ref, "..") || strings.Contains(ref, "@{") {
		return false
	}
	for _, c := range []byte(ref) {
		if c < 0x20 || c == 0x7f || strings.IndexByte(" ~^:?*[\\", c) >= 0 {
			return false
		}
	}
	// Splitting also catches a trailing "/" and "//": both leave an empty component.
	for comp := range strings.SplitSeq(rest, "/") {
		if comp == "" || comp[0] == '.' || comp[0] == '-' || strings.HasSuffix(comp, ".lock") {
			return false
		}
	}
	return true
}
