package hub

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
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
// A Cipher holds one current key, which seals, and any number of previous
// keys, which only open: during a key rotation, values sealed under the old
// key open while they are sealed again under the new one (see Reseal).
//
// A sealed value is a version byte, for versions 3 and 4 the 8-byte id of
// the key that sealed it (KeyID), the 12-byte nonce, then the ciphertext and
// tag. Version 3 is bound to its place and names its key. Version 4 is
// version 3 with its plaintext compressed first (raw deflate with a preset
// dictionary of its column, see codecs): Seal writes it for the JSON
// columns when that makes the value smaller, version 3 for everything
// else, so that no value grows. Compressing before encrypting lets a
// value's length tell how repetitive its plaintext is, which leaks a secret
// only to whoever can mix text of their choosing with that secret in one
// value and watch the sizes change (CRIME, BREACH); at rest here, a value
// holds one webhook or one event, written once, and none of those columns
// holds a secret of the hub's beside text a sender chooses (dispatch
// content, which does, is not compressed). Version 2, bound but
// written before keys had ids, and version 1, written before verihook bound
// values, which is not bound and still opens anywhere, open with whichever
// key they were sealed with, so that existing databases keep working (such
// a value is bound, under the current key, once it is written again).
// The version byte itself is not secret nor authenticated, but it cannot be
// changed to open a value elsewhere: a version 2 value's associated data
// starts with a label and is never empty, while version 1's is empty, and
// GCM's tag covers the associated data, so a value relabelled 1 -> 2 or
// 2 -> 1 is opened with other associated data than it was sealed with and
// fails like any tampered value; the labels of versions 3 and 4 differ from
// the others' for the same reason (a version 4 value relabelled 3 does not
// open as its compressed bytes).
type Cipher struct {
	keys []sealKey // keys[0] seals; every one opens
}

// sealKey is one key of a Cipher.
type sealKey struct {
	id   [keyIDSize]byte
	aead cipher.AEAD
}

// keyIDSize is the size of a key id: 64 bits tell a handful of keys apart
// and give away nothing of a 256-bit key.
const keyIDSize = 8

// The formats of a sealed value, told apart by its first byte.
const (
	sealUnbound = 1 // no associated data (before values were bound)
	sealBound   = 2 // bound to its place: associated data boundLabel, column, 0, row
	sealKeyed   = 3 // bound, after the id of its key: associated data keyedLabel, column, 0, row
	sealDeflate = 4 // sealKeyed, its plaintext deflated with its column's codec: associated data deflateLabel, column, 0, row
)

// boundLabel, keyedLabel and deflateLabel start the associated data of a
// bound value: never empty, and naming the format.
const (
	boundLabel   = "verihook sealed v2\x00"
	keyedLabel   = "verihook sealed v3\x00"
	deflateLabel = "verihook sealed v4\x00"
)

// The places where verihook seals values, as "table.column": a value sealed
// for one of them and a row's id opens only there (see Cipher).
const (
	SealedMessageBody        = "messages.body"
	SealedEventData          = "events.data"
	SealedSourceSecrets      = "sources.secrets"
	SealedSourcePrevSecrets  = "sources.previous_secrets"
	SealedEndpointSecret     = "endpoints.secret"
	SealedEndpointPrevSecret = "endpoints.previous_secret"
	SealedDispatchContent    = "dispatches.content"
	// SealedCertCache holds TLS certificates and the ACME account key, each
	// sealed under its cache key.
	SealedCertCache = "cert_cache.data"
	sealedKeyCheck  = "key_check.sealed"
)

// SealedColumns lists every place where verihook seals values, for Reseal
// (TestSealedColumnsComplete checks that none is missing).
var SealedColumns = []string{SealedSourceSecrets, SealedSourcePrevSecrets, SealedEndpointSecret, SealedEndpointPrevSecret,
	SealedDispatchContent, SealedEventData, SealedMessageBody, SealedCertCache}

// NewCipher returns a Cipher that seals with key and opens with key and
// each of previous (every one 32 bytes).
func NewCipher(key []byte, previous ...[]byte) (*Cipher, error) {
	c := &Cipher{}
	for i, k := range append([][]byte{key}, previous...) {
		if len(k) != KeySize {
			return nil, fmt.Errorf("encryption key must be %d bytes, got %d", KeySize, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sk := sealKey{aead: aead}
		sum := sha256.Sum256(k)
		copy(sk.id[:], sum[:])
		if i > 0 && slices.ContainsFunc(c.keys, func(o sealKey) bool { return o.id == sk.id }) {
			continue // a key given twice is one key
		}
		c.keys = append(c.keys, sk)
	}
	return c, nil
}

// KeyFingerprint returns the id of key, in hex: the first 8 bytes of its
// SHA-256. It names a key in messages, key checks and backups without
// giving it away.
func KeyFingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:keyIDSize])
}

// KeyID returns the fingerprint of the current key (see KeyFingerprint).
func (c *Cipher) KeyID() string { return hex.EncodeToString(c.keys[0].id[:]) }

// KeyIDs returns the fingerprints of every key, the current one first.
func (c *Cipher) KeyIDs() []string {
	ids := make([]string, len(c.keys))
	for i, k := range c.keys {
		ids[i] = hex.EncodeToString(k.id[:])
	}
	return ids
}

// SealedPrefixes returns the bytes that a value Seal writes now starts
// with, one per format (versions 3 and 4 under the current key): stores
// find the values to reseal as those that start with none of them.
func (c *Cipher) SealedPrefixes() [][]byte {
	return [][]byte{append([]byte{sealKeyed}, c.keys[0].id[:]...), append([]byte{sealDeflate}, c.keys[0].id[:]...)}
}

// SealedNow reports whether sealed is in a format Seal writes now, under
// the current key (see SealedPrefixes): Reseal leaves it as it is.
func (c *Cipher) SealedNow(sealed []byte) bool {
	return slices.ContainsFunc(c.SealedPrefixes(), func(p []byte) bool { return bytes.HasPrefix(sealed, p) })
}

// boundAD is the associated data of a value sealed for column and row, after
// label. The column is one of the Sealed names, which hold no NUL byte, so
// the NUL after it ends it without ambiguity, whatever the row id holds.
func boundAD(label, column, row string) []byte {
	ad := make([]byte, 0, len(label)+len(column)+1+len(row))
	ad = append(ad, label...)
	ad = append(ad, column...)
	ad = append(ad, 0)
	return append(ad, row...)
}

// Seal encrypts plaintext under the current key for the row whose id is
// row, in column ("table.column", one of the Sealed names): Open gives it
// back only for the same column and row. nil stays nil. The JSON columns'
// values are compressed first when that makes them smaller (version 4).
func (c *Cipher) Seal(plaintext []byte, column, row string) []byte {
	if plaintext == nil {
		return nil
	}
	if cd := codecs[column]; cd != nil {
		if z, d, ok := cd.deflate(plaintext); ok {
			defer d.release()
			return c.seal(sealDeflate, deflateLabel, z, column, row)
		}
	}
	return c.seal(sealKeyed, keyedLabel, plaintext, column, row)
}

// seal seals plaintext under the current key in a keyed format: version,
// the key's id, the nonce, the ciphertext and tag, bound by label.
func (c *Cipher) seal(version byte, label string, plaintext []byte, column, row string) []byte {
	k := c.keys[0]
	head := 1 + keyIDSize + k.aead.NonceSize()
	out := make([]byte, head, head+len(plaintext)+k.aead.Overhead())
	out[0] = version
	copy(out[1:], k.id[:])
	rand.Read(out[1+keyIDSize:])
	return k.aead.Seal(out, out[1+keyIDSize:], plaintext, boundAD(label, column, row))
}

// Reseal returns sealed, from the same column and row, sealed again under
// the current key (compressed, in the columns Seal compresses), or
// ErrDecrypt when it does not open. A value sealed under the current key
// already (SealedNow) is returned as it is.
func (c *Cipher) Reseal(sealed []byte, column, row string) ([]byte, error) {
	if sealed == nil || c.SealedNow(sealed) {
		return sealed, nil
	}
	plain, err := c.Open(sealed, column, row)
	if err != nil {
		return nil, err
	}
	return c.Seal(plain, column, row), nil
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

// CheckKey returns ErrKeyMismatch unless sealed came from KeyCheck with one
// of c's keys (now or before values were bound).
func (c *Cipher) CheckKey(sealed []byte) error {
	if plain, err := c.Open(sealed, sealedKeyCheck, keyCheckRow); err != nil || string(plain) != keyCheckText {
		return ErrKeyMismatch
	}
	return nil
}

// StoredKey is a key that a store has sealed values under, as it records it:
// its fingerprint (KeyFingerprint), a KeyCheck value sealed with it, and
// when it first became the current key.
type StoredKey struct {
	ID      string
	Check   []byte
	AddedAt time.Time
}

// CheckKeys decides whether a store may be opened with c. known are the
// keys the store recorded, oldest first; legacy is the single key check
// that stores kept before they recorded keys (nil when there is none).
//
// The store's newest key, the one it seals under now, must be one of c's:
// c's current key, or a previous one when c starts a rotation to a new key,
// which CheckKeys then returns for the store to record (a StoredKey whose
// AddedAt the store sets). A key the store replaced already may not become
// current again, so that an instance started with an old configuration does
// not seal under a retired key. Anything else is ErrKeyMismatch, wrapped in
// a message naming the keys by fingerprint.
func (c *Cipher) CheckKeys(legacy []byte, known []StoredKey) (add *StoredKey, err error) {
	fresh := &StoredKey{ID: c.KeyID(), Check: c.KeyCheck()}
	if len(known) == 0 {
		if legacy != nil && c.CheckKey(legacy) != nil {
			return nil, ErrKeyMismatch
		}
		return fresh, nil
	}
	newest := known[len(known)-1]
	if c.CheckKey(newest.Check) != nil {
		return nil, fmt.Errorf("%w: the database's current key is %s, the configured keys are %v",
			ErrKeyMismatch, newest.ID, c.KeyIDs())
	}
	if newest.ID == c.KeyID() {
		return nil, nil
	}
	for _, k := range known {
		if k.ID == c.KeyID() {
			return nil, fmt.Errorf("%w: the configured key %s was replaced by %s on %s: make %s the current key",
				ErrKeyMismatch, k.ID, newest.ID, newest.AddedAt.UTC().Format(time.DateOnly), newest.ID)
		}
	}
	return fresh, nil
}

// Open decrypts what Seal produced for the same column and row with any of
// c's keys, or a value sealed before values were bound (see Cipher); nil
// stays nil. Anything else is ErrDecrypt.
func (c *Cipher) Open(sealed []byte, column, row string) ([]byte, error) {
	if sealed == nil {
		return nil, nil
	}
	var ad []byte
	keys := c.keys
	switch {
	case len(sealed) == 0:
		return nil, ErrDecrypt
	case sealed[0] == sealKeyed || sealed[0] == sealDeflate:
		if len(sealed) < 1+keyIDSize {
			return nil, ErrDecrypt
		}
		i := slices.IndexFunc(keys, func(k sealKey) bool { return bytes.Equal(k.id[:], sealed[1:1+keyIDSize]) })
		if i < 0 {
			return nil, ErrDecrypt
		}
		if sealed[0] == sealKeyed {
			return open(keys[i], sealed[1+keyIDSize:], boundAD(keyedLabel, column, row))
		}
		z, err := open(keys[i], sealed[1+keyIDSize:], boundAD(deflateLabel, column, row))
		if err != nil {
			return nil, err
		}
		if codecs[column] == nil { // sealed for a column that Seal does not compress
			return nil, ErrDecrypt
		}
		return codecs[column].inflate(z)
	case sealed[0] == sealBound:
		ad, sealed = boundAD(boundLabel, column, row), sealed[1:]
	case sealed[0] == sealUnbound:
		// No associated data: such a value opens anywhere until rewritten.
		sealed = sealed[1:]
	default:
		return nil, ErrDecrypt
	}
	// A value without a key id opens with whichever key sealed it.
	for _, k := range keys {
		if out, err := open(k, sealed, ad); err == nil {
			return out, nil
		}
	}
	return nil, ErrDecrypt
}

// open opens a nonce, ciphertext and tag sealed with k for ad.
func open(k sealKey, sealed, ad []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, ErrDecrypt
	}
	out, err := k.aead.Open(nil, sealed[:n], sealed[n:], ad)
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
