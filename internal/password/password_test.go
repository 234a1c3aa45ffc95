package password

import (
	"errors"
	"strings"
	"testing"
)

func TestHashAndMatches(t *testing.T) {
	h, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$2a$11$") || strings.Contains(h, "correct horse") {
		t.Errorf("hash = %q", h)
	}
	if !Matches(h, "correct horse") {
		t.Error("the right password does not match")
	}
	for _, wrong := range []string{"correct hors", "Correct horse", "", "correct horse "} {
		if Matches(h, wrong) {
			t.Errorf("%q matches", wrong)
		}
	}
	if Matches("", "") || Matches("", "correct horse") {
		t.Error("an empty hash matches")
	}
	h2, _ := Hash("correct horse")
	if h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
}

func TestCheck(t *testing.T) {
	for pw, want := range map[string]error{
		"":                      ErrTooShort,
		"seven77":               ErrTooShort,
		"eight888":              nil,
		strings.Repeat("x", 72): nil,
		strings.Repeat("x", 73): ErrTooLong,
	} {
		if err := Check(pw); !errors.Is(err, want) {
			t.Errorf("Check(%d bytes) = %v, want %v", len(pw), err, want)
		}
		if _, err := Hash(pw); !errors.Is(err, want) {
			t.Errorf("Hash(%d bytes) = %v, want %v", len(pw), err, want)
		}
	}
}

func TestGenerate(t *testing.T) {
	a, b := Generate(), Generate()
	if len(a) != 26 || a == b || Check(a) != nil {
		t.Errorf("Generate() = %q, %q", a, b)
	}
}
