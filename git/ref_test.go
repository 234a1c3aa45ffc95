package git

import (
	"os/exec"
	"testing"
)

func TestValidSHA(t *testing.T) {
	for s, want := range map[string]bool{
		"0123456789abcdef0123456789abcdef01234567":                         true,
		"0123456789ABCDEF0123456789abcdef01234567":                         true,
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": true,
		"--orphan=pwn": false,
		"0123456789abcdef0123456789abcdef0123456":   false, // 39
		"0123456789abcdef0123456789abcdef012345678": false, // 41
		"0123456789abcdef0123456789abcdef0123456g":  false,
		"refs/heads/main":                           false,
		"":                                          false,
	} {
		if got := ValidSHA(s); got != want {
			t.Errorf("ValidSHA(%q) = %v, want %v", s, got, want)
		}
	}
}

// refCases are ref names with whether they are valid.
var refCases = map[string]bool{
	"refs/heads/main":        true,
	"refs/heads/feature/x-1": true,
	"refs/tags/v1.0":         true,
	"refs/pull/12/head":      true,
	"refs/heads/a@b":         true,
	"refs/heads/a..b":        false,
	"refs/heads/-x":          false,
	"refs/heads/.hidden":     false,
	"refs/heads/x.lock":      false,
	"refs/heads/a@{1}":       false,
	"refs/heads/a b":         false,
	"refs/heads/a\rb":        false,
	"refs/heads/a\nb":        false,
	"refs/heads/a\x7fb":      false,
	"refs/heads/a~1":         false,
	"refs/heads/a^":          false,
	"refs/heads/a:b":         false,
	"refs/heads/a?":          false,
	"refs/heads/a*":          false,
	"refs/heads/a[":          false,
	"refs/heads/a\\b":        false,
	"refs/heads/x/":          false,
	"refs/heads//x":          false,
	"refs/heads/x.":          false,
	"refs/":                  false,
	"heads/main":             false,
	"main":                   false,
	"--orphan=pwn":           false,
	"":                       false,
}

func TestValidRef(t *testing.T) {
	for ref, want := range refCases {
		if got := ValidRef(ref); got != want {
			t.Errorf("ValidRef(%q) = %v, want %v", ref, got, want)
		}
	}
}

// TestValidRefNeverAcceptsWhatGitRefuses checks ValidRef against git
// check-ref-format itself: every ref ValidRef accepts, git accepts too. (check-ref-format
// knows no --end-of-options; a ref ValidRef accepts starts with "refs/".)
func TestValidRefNeverAcceptsWhatGitRefuses(t *testing.T) {
	for ref := range refCases {
		if !ValidRef(ref) {
			continue
		}
		if out, err := exec.Command("git", "check-ref-format", ref).CombinedOutput(); err != nil {
			t.Errorf("ValidRef accepts %q but git check-ref-format refuses it: %v %s", ref, err, out)
		}
	}
}
