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

// Cipher encrypts payloads and secrets at rest with AES-256-GCM.
//
// A sealed value is bound to the place it is stored at: the column (as
// "table.column") and the id of its row are the GCM associated data, so that
// whoever can write the database cannot move a value to another row or
// column (a message's body under another message, an endpoint's secret
// under another endpoint): there it does not open.
//
// A sealed value is a version byte, the 12-byte nonce, then the ciphertext
// and tag. Version 2 is bound to its place; version 1, written before
// verihook bound values, is not, and still opens anywhere, so that existing
// databases keep working (such a value is bound once it is written again).
// The version byte itself is not secret nor authenticated, but it cannot be
// changed to open a value elsewhere: a version 2 value's associated data
// starts with a label and is never empty, while version 1's is empty, and
// GCM's tag covers the associated data, so a value relabelled 1 -> 2 or
// 2 -> 1 is opened with other associated data than it was sealed with and
// fails like any tampered value.
type Cipher struct {
	aead cipher.AEAD
}

// The formats of a sealed value, told apart by its first byte.
const (
	sealUnbound = 1 // no associated data (before values were bound)
	sealBound   = 2 // bound to its place: associated data boundLabel, column, 0, row
)

// boundLabel starts the associated data of a bound value: never empty, and
// names the scheme in case another one ever follows.
const boundLabel = "verihook sealed v2\x00"

// The places where verihook seals values, as "table.column": a value sealed
// for one of them and a row's id opens only there (see Cipher).
const (
	SealedMessageBody        = "messages.body"
	SealedEventData          = "events.data"
	SealedSourceSecrets      = "sources.secrets"
	SealedEndpointSecret     = "endpoints.secret"
	SealedEndpointPrevSecret = "endpoints.previous_secret"
	SealedDispatchContent    = "dispatches.content"
	sealedKeyCheck           = "key_check.sealed"
)

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

// boundAD is the associated data of a value sealed for column and row. The
// column is one of the Sealed names, which hold no NUL byte, so the NUL
// after it ends it without ambiguity, whatever the row id holds.
func boundAD(column, row string) []byte {
	ad := make([]byte, 0, len(boundLabel)+len(column)+1+len(row))
	ad = append(ad, boundLabel...)
	ad = append(ad, column...)
	ad = append(ad, 0)
	return append(ad, row...)
}

// Seal encrypts plaintext for the row whose id is row, in column ("table.column",
// one of the Sealed names): Open gives it back only for the same column and
// row. nil stays nil.
func (c *Cipher) Seal(plaintext []byte, column, row string) []byte {
	if plaintext == nil {
		return nil
	}
	return c.seal(sealBound, plaintext, boundAD(column, row))
}

// seal writes a value of the given format.
func (c *Cipher) seal(version byte, plaintext, ad []byte) []byte {
	out := make([]byte, 1+c.aead.NonceSize(), 1+c.aead.NonceSize()+len(plaintext)+c.aead.Overhead())
	out[0] = version
	rand.Read(out[1:])
	return c.aead.Seal(out, out[1:], plaintext, ad)
}

// ErrDecrypt is returned by Open for a value that does not open where it is
// read: another key sealed it, it was changed, or it was sealed for another
// row or column and moved here.
var ErrDecrypt = errors.New("decrypt: wrong key, or the value was altered or moved from another row")

// ErrKeyMismatch is returned by a store opened with another key than the
// one its data was written with.
var ErrKeyMismatch = errors.New("the encryption key does not match the one this database was written with (VERIHOOK_ENCRYPTION_KEY or the key file)")

// keyCheckText is what stores seal once, to recognise their key later.
const keyCheckText = "verihook key check"

// keyCheckRow is the id of the key check's row in both stores.
const keyCheckRow = "1"

// KeyCheck returns a sealed value for a store to keep (in key_check.sealed,
// row 1), so that CheckKey can later tell whether it is opened with the
// same key.
func (c *Cipher) KeyCheck() []byte {
	return c.Seal([]byte(keyCheckText), sealedKeyCheck, keyCheckRow)
}

// CheckKey returns ErrKeyMismatch unless sealed came from KeyCheck with this
// key (now or before values were bound).
func (c *Cipher) CheckKey(sealed []byte) error {
	if plain, err := c.Open(sealed, sealedKeyCheck, keyCheckRow); err != nil || string(plain) != keyCheckText {
		return ErrKeyMismatch
	}
	return nil
}

// Open decrypts what Seal produced for the same column and row, or a value
// sealed before values were bound (see Cipher); nil stays nil. Anything
// else is ErrDecrypt.
func (c *Cipher) Open(sealed []byte, column, row string) ([]byte, error) {
	if sealed == nil {
		return nil, nil
	}
	n := c.aead.NonceSize()
	if len(sealed) < 1+n+c.aead.Overhead() {
		return nil, ErrDecrypt
	}
	var ad []byte
	switch sealed[0] {
	case sealBound:
		ad = boundAD(column, row)
	case sealUnbound:
		// No associated data: such a value opens anywhere until rewritten.
	default:
		return nil, ErrDecrypt
	}
	out, err := c.aead.Open(nil, sealed[1:1+n], sealed[1+n:], ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}

// OpenData opens an event's data, sealed with c as a store keeps it, into
// e.Data.
func (e *Event) OpenData(c *Cipher, sealed []byte) error {
	data, err := c.Open(sealed, SealedEventData, e.ID)
	if err != nil {
		return fmt.Errorf("event %s: data: %w", e.ID, err)
	}
	e.Data = data
	return nil
}
