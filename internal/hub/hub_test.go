package hub_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/storetest"
)

func TestPreviewRedactsPersonalData(t *testing.T) {
	t.Parallel()
	body := []byte(`{"scanRef":"scan-1","final":true,"status":{"overall":"SUSPECTED","fraudTags":["FACE_IN_BLACKLIST"]},
		"data":{"docFirstName":"JOHN","docNumber":"XX123","docDob":"1990-01-01"},"phoneNumber":"+995512345678",
		"text":"Your code is 6867","AML":[{"serviceName":"PilotApiAmlV2","data":[{"name":"JOHN DOE"}]}]}`)
	got := string(hub.Preview(body))
	for _, secret := range []string{"JOHN", "XX123", "1990-01-01", "+995512345678", "6867"} {
		if strings.Contains(got, secret) {
			t.Errorf("preview shows %q: %s", secret, got)
		}
	}
	for _, shown := range []string{`"scan-1"`, `"SUSPECTED"`, `"FACE_IN_BLACKLIST"`, `"PilotApiAmlV2"`, `"final":true`} {
		if !strings.Contains(got, shown) {
			t.Errorf("preview hides %s: %s", shown, got)
		}
	}
	if !json.Valid([]byte(got)) {
		t.Errorf("preview is not JSON: %s", got)
	}
	if p := string(hub.Preview([]byte("not json"))); strings.Contains(p, "not json") {
		t.Errorf("non-JSON preview shows the body: %s", p)
	}
	// A value under no key, such as an endpoint answering a bare JSON string.
	for _, bare := range []string{`"Your code is 6867"`, `["+995512345678"]`, `6867`} {
		if p := string(hub.Preview([]byte(bare))); strings.Contains(p, "6867") || strings.Contains(p, "+995") {
			t.Errorf("Preview(%s) = %s, want it redacted", bare, p)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "https://hooks.example.com/kyc", "https://hooks.example.com/kyc"},
		{"user info and query", "https://user:pa55@hooks.example.com:8443/kyc?token=t0k&v=2",
			"https://hooks.example.com:8443/kyc?token=[redacted]&v=[redacted]"},
		{"user alone", "http://user@127.0.0.1:9000/hooks", "http://127.0.0.1:9000/hooks"},
		{"query without key", "https://h.example/kyc?s3cr3t", "https://h.example/kyc?[redacted]"},
		{"fragment", "https://h.example/kyc#access_token=t0k", "https://h.example/kyc"},
		{"opaque", "mailto:someone@example.com", "[redacted]"},
		{"unparsable", "https://user:pa55@h.example/%zz", "[redacted]"},
	} {
		if got := hub.RedactURL(tc.in); got != tc.want {
			t.Errorf("%s: RedactURL(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestCipherRoundTrip(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, hub.KeySize)
	c, err := hub.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"docNumber":"XX123"}`)
	sealed := c.Seal(plain, hub.SealedMessageBody, "msg_1")
	if bytes.Contains(sealed, []byte("XX123")) {
		t.Fatal("sealed data holds the plaintext")
	}
	if bytes.Equal(sealed, c.Seal(plain, hub.SealedMessageBody, "msg_1")) {
		t.Error("two seals of the same plaintext are equal: the nonce is not random")
	}
	got, err := c.Open(sealed, hub.SealedMessageBody, "msg_1")
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other, _ := hub.NewCipher(bytes.Repeat([]byte{8}, hub.KeySize))
	if _, err := other.Open(sealed, hub.SealedMessageBody, "msg_1"); err != hub.ErrDecrypt {
		t.Errorf("Open with another key = %v, want ErrDecrypt", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := c.Open(sealed, hub.SealedMessageBody, "msg_1"); err != hub.ErrDecrypt {
		t.Errorf("Open of tampered data = %v, want ErrDecrypt", err)
	}
	if _, err := hub.NewCipher(key[:16]); err == nil {
		t.Error("NewCipher accepted a 16-byte key")
	}
}

// TestCipherBinding: a value opens only at the column and row it was
// sealed for; a value sealed before values were bound opens anywhere; and
// changing the format byte opens nothing.
func TestCipherBinding(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, hub.KeySize)
	c, _ := hub.NewCipher(key)
	plain := []byte("whsec_secret-of-crm")
	sealed := c.Seal(plain, hub.SealedEndpointSecret, "crm")
	for _, tc := range []struct{ name, column, row string }{
		{"another row", hub.SealedEndpointSecret, "billing"},
		{"another column", hub.SealedEndpointPrevSecret, "crm"},
		{"another table", hub.SealedSourceSecrets, "crm"},
		{"a row id that extends it", hub.SealedEndpointSecret, "crm2"},
		{"no place", "", ""},
	} {
		if got, err := c.Open(sealed, tc.column, tc.row); !errors.Is(err, hub.ErrDecrypt) {
			t.Errorf("Open at %s = %q, %v; want ErrDecrypt", tc.name, got, err)
		}
	}
	if got, err := c.Open(sealed, hub.SealedEndpointSecret, "crm"); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("Open at its place = %q, %v", got, err)
	}

	legacy := storetest.SealUnbound(key, plain)
	for _, row := range []string{"crm", "billing"} {
		if got, err := c.Open(legacy, hub.SealedEndpointSecret, row); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("Open of a value sealed before binding, at row %s = %q, %v; want the plaintext", row, got, err)
		}
	}
	// Relabelling a bound value as unbound, or the other way round, does
	// not open it anywhere: the formats' associated data differ.
	down := slices.Clone(sealed)
	down[0] = legacy[0]
	up := slices.Clone(legacy)
	up[0] = sealed[0]
	for name, v := range map[string][]byte{"bound relabelled unbound": down, "unbound relabelled bound": up} {
		for _, row := range []string{"crm", "billing", ""} {
			if got, err := c.Open(v, hub.SealedEndpointSecret, row); !errors.Is(err, hub.ErrDecrypt) {
				t.Errorf("Open of a %s value at row %q = %q, %v; want ErrDecrypt", name, row, got, err)
			}
		}
	}
	unknown := slices.Clone(sealed)
	unknown[0] = 3
	if _, err := c.Open(unknown, hub.SealedEndpointSecret, "crm"); !errors.Is(err, hub.ErrDecrypt) {
		t.Errorf("Open of an unknown format = %v, want ErrDecrypt", err)
	}
}

// TestKeyCheck: the key check opens with its key only, also when it was
// written before values were bound.
func TestKeyCheck(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, hub.KeySize)
	c, _ := hub.NewCipher(key)
	other, _ := hub.NewCipher(bytes.Repeat([]byte{8}, hub.KeySize))
	for name, check := range map[string][]byte{
		"bound":   c.KeyCheck(),
		"unbound": storetest.SealUnbound(key, []byte("verihook key check")),
	} {
		if err := c.CheckKey(check); err != nil {
			t.Errorf("CheckKey(%s check) with its key = %v", name, err)
		}
		if err := other.CheckKey(check); !errors.Is(err, hub.ErrKeyMismatch) {
			t.Errorf("CheckKey(%s check) with another key = %v, want ErrKeyMismatch", name, err)
		}
	}
	// A value of the right key but not a key check is refused too.
	if err := c.CheckKey(c.Seal([]byte("verihook key check"), hub.SealedMessageBody, "1")); !errors.Is(err, hub.ErrKeyMismatch) {
		t.Errorf("CheckKey(a body) = %v, want ErrKeyMismatch", err)
	}
}

func TestCanonicalHash(t *testing.T) {
	t.Parallel()
	a, err := hub.CanonicalHash([]byte(`{"a":1,"b":{"c":[1,2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := hub.CanonicalHash([]byte("{ \"b\": {\"c\": [1, 2]},\n \"a\": 1 }"))
	c, _ := hub.CanonicalHash([]byte(`{"a":2,"b":{"c":[1,2]}}`))
	if a != b {
		t.Errorf("key order or spacing changed the hash: %s vs %s", a, b)
	}
	if a == c {
		t.Error("different content hashed alike")
	}
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+64 {
		t.Errorf("hash %q: want sha256: and 64 hex digits", a)
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	t.Parallel()
	a := hub.NewID("msg", time.UnixMilli(1_700_000_000_000))
	b := hub.NewID("msg", time.UnixMilli(1_700_000_000_001))
	if !(a < b) || !strings.HasPrefix(a, "msg_") || len(a) != len("msg_")+26 {
		t.Errorf("ids %q, %q: want msg_ + 26 chars, sorted by time", a, b)
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	t.Parallel()
	err := hub.Errorf(hub.ENOTFOUND, "no source %q", "x")
	if hub.ErrorCode(err) != hub.ENOTFOUND || hub.ErrorMessage(err) != `no source "x"` {
		t.Errorf("got %s / %s", hub.ErrorCode(err), hub.ErrorMessage(err))
	}
	plain := bytes.ErrTooLarge
	if hub.ErrorCode(plain) != hub.EINTERNAL || hub.ErrorMessage(plain) != "internal error" {
		t.Error("a plain error must read as internal, without its details")
	}
	if hub.ErrorCode(nil) != "" {
		t.Error("nil has a code")
	}
}
