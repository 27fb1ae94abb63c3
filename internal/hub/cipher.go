package hub

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// KeySize is the size of an encryption key: AES-256.
const KeySize = 32

// Cipher encrypts payloads and secrets at rest with AES-256-GCM. A sealed
// value is a version byte, the 12-byte nonce, then the ciphertext and tag.
type Cipher struct {
	aead cipher.AEAD
}

const sealVersion = 1

// NewCipher returns a Cipher for a 32-byte key.
func NewCipher(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Cipher{aead: aead}, nil
}

// Seal encrypts plaintext; nil stays nil.
func (c *Cipher) Seal(plaintext []byte) []byte {
	if plaintext == nil {
		return nil
	}
	out := make([]byte, 1+c.aead.NonceSize(), 1+c.aead.NonceSize()+len(plaintext)+c.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:])
	return c.aead.Seal(out, out[1:], plaintext, nil)
}

// ErrDecrypt is returned by Open for data that was not sealed with this key.
var ErrDecrypt = errors.New("decrypt: wrong key or corrupted data")

// ErrKeyMismatch is returned by a store opened with another key than the
// one its data was written with.
var ErrKeyMismatch = errors.New("the encryption key does not match the one this database was written with (VERIHOOK_ENCRYPTION_KEY or the key file)")

// keyCheckText is what stores seal once, to recognise their key later.
const keyCheckText = "verihook key check"

// KeyCheck returns a sealed value for a store to keep, so that CheckKey can
// later tell whether it is opened with the same key.
func (c *Cipher) KeyCheck() []byte { return c.Seal([]byte(keyCheckText)) }

// CheckKey returns ErrKeyMismatch unless sealed came from KeyCheck with this key.
func (c *Cipher) CheckKey(sealed []byte) error {
	if plain, err := c.Open(sealed); err != nil || string(plain) != keyCheckText {
		return ErrKeyMismatch
	}
	return nil
}

// Open decrypts what Seal produced; nil stays nil.
func (c *Cipher) Open(sealed []byte) ([]byte, error) {
	if sealed == nil {
		return nil, nil
	}
	n := c.aead.NonceSize()
	if len(sealed) < 1+n+c.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrDecrypt
	}
	out, err := c.aead.Open(nil, sealed[1:1+n], sealed[1+n:], nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// OpenData opens an event's data, sealed with c as a store keeps it, into
// e.Data.
func (e *Event) OpenData(c *Cipher, sealed []byte) error {
	data, err := c.Open(sealed)
	if err != nil {
		return fmt.Errorf("event %s: data: %w", e.ID, err)
	}
	e.Data = data
	return nil
}
