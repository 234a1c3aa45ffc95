package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MinSecretKeyLen is the shortest KOZMIC_SECRET_KEY accepted, in bytes.
const MinSecretKeyLen = 32

// sealVersion prefixes every sealed value so the scheme can change later
// without guessing what old rows hold.
const sealVersion byte = 1

// sealer encrypts secrets at rest with AES-256-GCM under a key derived from
// KOZMIC_SECRET_KEY with HKDF-SHA256.
type sealer struct{ aead cipher.AEAD }

func newSealer(secretKey []byte) (*sealer, error) {
	if len(secretKey) < MinSecretKeyLen {
		return nil, fmt.Errorf("secret key: %d bytes, need at least %d", len(secretKey), MinSecretKeyLen)
	}
	key, err := hkdf.Key(sha256.New, secretKey, nil, "kozmic secrets at rest v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns version || nonce || ciphertext.
func (s *sealer) seal(plain []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return s.aead.Seal(out, out[1:], plain, nil), nil
}

// open reverses seal. A value sealed under another key fails with ErrWrongKey.
func (s *sealer) open(sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errors.New("open sealed value: malformed")
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], nil)
	if err != nil {
		return nil, ErrWrongKey
	}
	return plain, nil
}
