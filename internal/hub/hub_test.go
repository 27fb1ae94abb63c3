package hub_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
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
	// What a provider's payloads show is the provider's to say; verihook's
	// own keys (final) are shown for every body.
	if got := string(hub.Preview(body)); strings.Contains(got, "scan-1") || !strings.Contains(got, `"final":true`) {
		t.Errorf("Preview, no provider's keys: %s", got)
	}
	hub.RegisterPreviewKeys("preview-test", "scanRef", "OVERALL", "fraudtags", "serviceName")
	got := string(hub.PreviewOf("preview-test", body))
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
	unknown[0] = 9
	if _, err := c.Open(unknown, hub.SealedEndpointSecret, "crm"); !errors.Is(err, hub.ErrDecrypt) {
		t.Errorf("Open of an unknown format = %v, want ErrDecrypt", err)
	}
}

// TestCipherKeys: a cipher with previous keys seals under its current key
// and opens what any of its keys sealed, in every format; Reseal moves a
// value to the current key, and a cipher without the old key cannot open
// it.
func TestCipherKeys(t *testing.T) {
	t.Parallel()
	oldKey, newKey := bytes.Repeat([]byte{7}, hub.KeySize), bytes.Repeat([]byte{8}, hub.KeySize)
	old, _ := hub.NewCipher(oldKey)
	both, err := hub.NewCipher(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	onlyNew, _ := hub.NewCipher(newKey)
	if both.KeyID() != hub.KeyFingerprint(newKey) || len(both.KeyIDs()) != 2 || both.KeyIDs()[1] != old.KeyID() {
		t.Fatalf("KeyID %s, KeyIDs %v; want %s first, then %s", both.KeyID(), both.KeyIDs(), hub.KeyFingerprint(newKey), old.KeyID())
	}
	plain := []byte("whsec_secret-of-crm")
	col, row := hub.SealedEndpointSecret, "crm"
	for name, sealed := range map[string][]byte{
		"current format":   old.Seal(plain, col, row),
		"bound, no key id": storetest.SealBound(oldKey, plain, col, row),
		"unbound":          storetest.SealUnbound(oldKey, plain),
	} {
		if got, err := both.Open(sealed, col, row); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: Open with the old key as previous = %q, %v", name, got, err)
		}
		if _, err := onlyNew.Open(sealed, col, row); !errors.Is(err, hub.ErrDecrypt) {
			t.Errorf("%s: Open without the old key = %v, want ErrDecrypt", name, err)
		}
		resealed, err := both.Reseal(sealed, col, row)
		if err != nil || !both.SealedNow(resealed) {
			t.Fatalf("%s: Reseal = %x, %v; want a value under the new key", name, resealed, err)
		}
		if got, err := onlyNew.Open(resealed, col, row); err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: resealed value with the new key alone = %q, %v", name, got, err)
		}
		if again, _ := both.Reseal(resealed, col, row); !bytes.Equal(again, resealed) {
			t.Errorf("%s: Reseal of a value under the current key changed it", name)
		}
		if _, err := both.Reseal(sealed, col, "billing"); !errors.Is(err, hub.ErrDecrypt) && name != "unbound" {
			t.Errorf("%s: Reseal at another row = %v, want ErrDecrypt", name, err)
		}
	}
	if sealed := both.Seal(plain, col, row); !both.SealedNow(sealed) {
		t.Errorf("Seal wrote %x, not under the current key", sealed[:9])
	}
	// A value naming another key than the one that sealed it opens nothing.
	forged := old.Seal(plain, col, row)
	copy(forged[1:9], both.SealedPrefixes()[0][1:])
	if _, err := both.Open(forged, col, row); !errors.Is(err, hub.ErrDecrypt) {
		t.Errorf("Open of a value naming another key = %v, want ErrDecrypt", err)
	}
}

// TestSealedColumnsComplete: every exported Sealed constant of cipher.go
// is in SealedColumns, so that a key rotation re-seals every place values
// are sealed at.
func TestSealedColumnsComplete(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "cipher.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, obj := range f.Scope.Objects {
		if obj.Kind != ast.Con || !strings.HasPrefix(obj.Name, "Sealed") {
			continue
		}
		n++
		v := strings.Trim(obj.Decl.(*ast.ValueSpec).Values[0].(*ast.BasicLit).Value, `"`)
		if !slices.Contains(hub.SealedColumns, v) {
			t.Errorf("%s (%s) is not in hub.SealedColumns: a key rotation would leave it under the old key", obj.Name, v)
		}
	}
	if n != len(hub.SealedColumns) {
		t.Errorf("%d Sealed constants, %d SealedColumns", n, len(hub.SealedColumns))
	}
}

// TestCheckKeys: a store opens with its current key, starts a rotation
// with a cipher holding it as previous key, and refuses a key it never
// had, a key it replaced, and a cipher lacking its current key.
func TestCheckKeys(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := bytes.Repeat([]byte{1}, hub.KeySize), bytes.Repeat([]byte{2}, hub.KeySize), bytes.Repeat([]byte{3}, hub.KeySize)
	c := func(keys ...[]byte) *hub.Cipher {
		c, err := hub.NewCipher(keys[0], keys[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	stored := func(key []byte, day int) hub.StoredKey {
		return hub.StoredKey{ID: hub.KeyFingerprint(key), Check: c(key).KeyCheck(), AddedAt: time.Date(2026, 11, day, 0, 0, 0, 0, time.UTC)}
	}
	legacy := storetest.SealBound(k1, []byte("verihook key check"), "key_check.sealed", "1")
	for _, tc := range []struct {
		name    string
		cipher  *hub.Cipher
		legacy  []byte
		known   []hub.StoredKey
		wantAdd []byte // the key recorded, nil for none
		wantErr bool
	}{
		{"new store", c(k1), nil, nil, k1, false},
		{"legacy check, its key", c(k1), legacy, nil, k1, false},
		{"legacy check, another key", c(k2), legacy, nil, nil, true},
		{"legacy check, rotating", c(k2, k1), legacy, nil, k2, false},
		{"its key", c(k1), nil, []hub.StoredKey{stored(k1, 1)}, nil, false},
		{"rotation starts", c(k2, k1), nil, []hub.StoredKey{stored(k1, 1)}, k2, false},
		{"rotation under way", c(k2, k1), nil, []hub.StoredKey{stored(k1, 1), stored(k2, 2)}, nil, false},
		{"rotation done, old key dropped", c(k2), nil, []hub.StoredKey{stored(k1, 1), stored(k2, 2)}, nil, false},
		{"old configuration", c(k1), nil, []hub.StoredKey{stored(k1, 1), stored(k2, 2)}, nil, true},
		{"keys swapped", c(k1, k2), nil, []hub.StoredKey{stored(k1, 1), stored(k2, 2)}, nil, true},
		{"unknown key", c(k3), nil, []hub.StoredKey{stored(k1, 1)}, nil, true},
		{"new key without the current one", c(k3, k1), nil, []hub.StoredKey{stored(k1, 1), stored(k2, 2)}, nil, true},
	} {
		add, err := tc.cipher.CheckKeys(tc.legacy, tc.known)
		if gotErr := err != nil; gotErr != tc.wantErr || (err != nil && !errors.Is(err, hub.ErrKeyMismatch)) {
			t.Errorf("%s: err = %v, want error %v (ErrKeyMismatch)", tc.name, err, tc.wantErr)
			continue
		}
		switch {
		case tc.wantAdd == nil && add != nil:
			t.Errorf("%s: records key %s, want none", tc.name, add.ID)
		case tc.wantAdd != nil && (add == nil || add.ID != hub.KeyFingerprint(tc.wantAdd) || c(tc.wantAdd).CheckKey(add.Check) != nil):
			t.Errorf("%s: records %+v, want key %s with its check", tc.name, add, hub.KeyFingerprint(tc.wantAdd))
		}
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

// TestNewIDSortsByTime is not parallel, and its millisecond is in the 99th
// century: ids of one millisecond sort in the order a process made them as
// long as no id of a later millisecond comes between them, which other
// tests' ids, of their times, would.
func TestNewIDSortsByTime(t *testing.T) {
	a := hub.NewID("msg", time.UnixMilli(1_700_000_000_000))
	b := hub.NewID("msg", time.UnixMilli(1_700_000_000_001))
	if !(a < b) || !strings.HasPrefix(a, "msg_") || len(a) != len("msg_")+26 {
		t.Errorf("ids %q, %q: want msg_ + 26 chars, sorted by time", a, b)
	}
	// Within a millisecond, in the order they were made.
	at := time.UnixMilli(250_000_000_000_000)
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = hub.NewID("msg", at)
	}
	if !slices.IsSorted(ids) || ids[0][:len("msg_")+10] != ids[999][:len("msg_")+10] {
		t.Errorf("ids of one millisecond %q ... %q: want them in the order made, of that millisecond", ids[0], ids[999])
	}
	if c := hub.NewID("msg", at.Add(-time.Millisecond)); c > ids[0] {
		t.Errorf("an id of an earlier millisecond %q sorts after %q", c, ids[0])
	}
	if d := hub.NewID("msg", at); d < ids[999] {
		t.Errorf("an id made after one of an earlier millisecond %q sorts before %q", d, ids[999])
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
