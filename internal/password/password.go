// Package password hashes and checks the passwords of local accounts with
// bcrypt, and makes new ones.
package password

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// cost is bcrypt's work factor: about a tenth of a second per check on a
// small server, slow enough to make guessing a stolen hash expensive.
const cost = 11

// Length limits: bcrypt reads at most 72 bytes, and a longer password
// would be silently cut, so it is refused instead.
const (
	MinLen = 8
	MaxLen = 72
)

// Check says whether pw is acceptable as a new password: ErrTooShort or
// ErrTooLong otherwise.
func Check(pw string) error {
	switch {
	case len(pw) < MinLen:
		return ErrTooShort
	case len(pw) > MaxLen:
		return ErrTooLong
	}
	return nil
}

var (
	ErrTooShort = fmt.Errorf("a password needs at least %d characters", MinLen)
	ErrTooLong  = fmt.Errorf("a password can have at most %d bytes", MaxLen)
)

// Hash returns the bcrypt hash of pw, which must pass Check.
func Hash(pw string) (string, error) {
	if err := Check(pw); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Matches reports whether pw is the password hashed as hash. An empty hash
// (no such user, or one without a password) never matches, but takes as
// long as a real check, so that the time taken does not tell which
// usernames exist.
func Matches(hash, pw string) bool {
	if hash == "" {
		bcrypt.CompareHashAndPassword(decoy(), []byte(pw))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

var decoy = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("no user has this password"), cost)
	if err != nil {
		panic(errors.Join(errors.New("hash the decoy password"), err))
	}
	return h
})

// Generate returns a new random password: 26 characters of base32, 128
// bits of randomness.
func Generate() string { return rand.Text() }
