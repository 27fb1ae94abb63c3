package hub

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"
)

// crockford is Crockford's base32 alphabet: ids sort as their bytes do.
var crockford = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewID returns prefix_ followed by 26 characters: 48 bits of milliseconds
// since the epoch, then 80 random bits, so that ids sort by creation time (the
// stores page on them) and never collide in practice. Within a millisecond,
// the ids a process makes sort in the order it made them: the random bits of
// an id of the same millisecond as the one made before it are that one's,
// plus one (a message received right after another is newer, not one time in
// two; several processes' ids of one millisecond still sort at random).
func NewID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16)
	rand.Read(b[6:])
	lastID.Lock()
	switch bytes.Compare(b[:6], lastID.b[:6]) {
	case 0:
		next := lastID.b
		for i := len(next) - 1; i >= 6; i-- { // the 80 bits, plus one
			if next[i]++; next[i] != 0 {
				b = next
				break
			} // else all 80 bits were ones: keep b's fresh random bits
		}
		fallthrough
	case 1:
		lastID.b = b
	} // an id of an earlier millisecond (a time given, not the clock's) leaves the newest one's sequence be
	lastID.Unlock()
	return prefix + "_" + crockford.EncodeToString(b[:])
}

// lastID is the newest id NewID made, without its prefix.
var lastID struct {
	sync.Mutex
	b [16]byte
}

// CanonicalHash returns "sha256:" and the hex SHA-256 of v's canonical JSON
// (object keys sorted, no insignificant space), so that two bodies that differ
// only in key order or spacing hash alike. It is the dedup key of providers
// that send no event id.
func CanonicalHash(body []byte) (string, error) {
	v, err := ReadJSON(body, NumbersAsWritten) // numbers hash as sent, not as float64
	if err != nil {
		return "", err
	}
	return CanonicalHashOf(v), nil
}

// CanonicalHashOf is CanonicalHash for an already decoded JSON value, or
// one read by ReadJSON.
func CanonicalHashOf(v any) string {
	buf := canonicalBufs.Get().(*[]byte)
	defer canonicalBufs.Put(buf)
	canon, ok := appendCanonical((*buf)[:0], v)
	if !ok {
		canon, _ = json.Marshal(v) // maps marshal with sorted keys
	} else if cap(canon) <= 64<<10 {
		*buf = canon
	}
	sum := sha256.Sum256(canon)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// canonicalBufs keeps the buffers CanonicalHashOf writes canonical bytes
// into, hashes and drops: a body's worth for each webhook (4 KB of the
// 13 KB a parse of iDenfy's largest webhook allocated).
var canonicalBufs = sync.Pool{New: func() any { return new([]byte) }}

// RawHash returns "sha256:" and the hex SHA-256 of raw bytes, the dedup key of
// bodies that are not JSON.
func RawHash(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha256:" + hex.EncodeToString(sum[:])
}
