package hub

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// TokenPrefix starts every API token, so that a leaked one is recognisable.
const TokenPrefix = "vh_"

// NewTokenSecret returns a new random API token: the prefix and 32 random bytes.
func NewTokenSecret() string {
	var b [32]byte
	rand.Read(b[:])
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken returns the hex SHA-256 of a token: what the store keeps. Tokens
// are long and random, so a fast hash is enough.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
