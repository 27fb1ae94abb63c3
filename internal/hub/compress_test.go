package hub

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testCipher returns a Cipher under a fixed key.
func testCipher(t testing.TB) *Cipher {
	t.Helper()
	c, err := NewCipher(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// providerBodies returns the request bodies of the providers' golden
// cases (testdata/*/body beside each provider package): real shapes of
// every provider's payloads, none of which went into the dictionaries.
func providerBodies(t testing.TB) (files []string, bodies [][]byte) {
	t.Helper()
	files, err := filepath.Glob("../provider/*/testdata/*/body")
	if err != nil || len(files) < 50 {
		t.Fatalf("%d provider bodies (%v), want the providers' golden cases", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
	}
	return files, bodies
}

// TestSealDictFrozen pins the dictionaries of format 4: every value sealed
// in it needs these exact bytes to open, so changing a file would make
// every stored body or event unreadable. A new dictionary is a new format
// beside this one, never an edit of these files.
func TestSealDictFrozen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file, column string
		dict         []byte
		sha256       string
	}{
		{"body-1.bin", SealedMessageBody, bodyDict1, "bb584a3e00b129cc2a845a09b6c8f409398cb079f704f14945cb67751abbd252"},
		{"event-1.bin", SealedEventData, eventDict1, "e15fe8d9c7e7adb902de23966636cb7b99a97635eb4c8cb7ce6649fdca053388"},
	} {
		sum := sha256.Sum256(tc.dict)
		if got := hex.EncodeToString(sum[:]); got != tc.sha256 {
			t.Errorf("sealdict/%s has SHA-256 %s, want %s: values sealed with it would no longer open", tc.file, got, tc.sha256)
		}
		if !bytes.Equal(codecs[tc.column].dict, tc.dict) {
			t.Errorf("%s is not compressed with sealdict/%s", tc.column, tc.file)
		}
	}
	if len(codecs) != 2 {
		t.Errorf("%d compressed columns, want 2: a new one needs its own dictionary, pinned here", len(codecs))
	}
}

// TestSealCompressed: in the JSON columns, every provider body round-trips,
// and is sealed in format 4 when that is smaller, never larger than format 3;
// as message bodies, nearly all shrink, to well under half. Reseal of an
// older value compresses it.
func TestSealCompressed(t *testing.T) {
	t.Parallel()
	c := testCipher(t)
	var plain, sealed, v4 int // of the message bodies
	files, bodies := providerBodies(t)
	for i, body := range bodies {
		name := files[i]
		for _, col := range []string{SealedMessageBody, SealedEventData} {
			s := c.Seal(body, col, "row_1")
			if got, err := c.Open(s, col, "row_1"); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("%s in %s: Open = %q, %v; want the body", name, col, got, err)
			}
			if _, err := c.Open(s, col, "row_2"); !errors.Is(err, ErrDecrypt) {
				t.Errorf("%s in %s: Open at another row = %v, want ErrDecrypt", name, col, err)
			}
			v3 := c.seal(sealKeyed, keyedLabel, body, col, "row_1")
			if len(s) > len(v3) || s[0] == sealKeyed && len(s) != len(v3) {
				t.Errorf("%s in %s: sealed %d B, format 3 would be %d B", name, col, len(s), len(v3))
			}
			// As today's databases hold it: format 3 opens, and is sealed
			// now (a key rotation re-seals it, nothing else rewrites it).
			if got, err := c.Open(v3, col, "row_1"); err != nil || !bytes.Equal(got, body) || !c.SealedNow(v3) {
				t.Errorf("%s in %s, format 3: Open = %q, %v, SealedNow %v; want the body, true", name, col, got, err, c.SealedNow(v3))
			}
			if col == SealedMessageBody && s[0] == sealDeflate {
				v4++
			}
			if col == SealedMessageBody {
				plain, sealed = plain+len(body), sealed+len(s)
			}
		}
	}
	if v4*10 < len(bodies)*9 || sealed*2 > plain {
		t.Errorf("%d of %d bodies in format 4, %d B sealed for %d B; want 90 %% of them, under half the size",
			v4, len(bodies), sealed, plain)
	}
	t.Logf("%d of %d bodies compressed; %d B sealed in %d B (%.2f)", v4, len(bodies), plain, sealed, float64(sealed)/float64(plain))

	// A large value (its writer's buffer is dropped when it is put back),
	// and a small one after it.
	large := bytes.Repeat([]byte(`{"docNumber":"XX123","selfie":"iVBORw0KGgoAAAANSUhEUgAA"},`), 20000)
	for _, p := range [][]byte{large, bodies[0]} {
		if got, err := c.Open(c.Seal(p, SealedMessageBody, "msg_1"), SealedMessageBody, "msg_1"); err != nil || !bytes.Equal(got, p) {
			t.Errorf("a %d B body: Open = %d B, %v; want it back", len(p), len(got), err)
		}
	}

	old := c.seal(sealKeyed, keyedLabel, []byte(`{"status":"APPROVED","status":"APPROVED"}`), SealedEventData, "evt_1")
	other, _ := NewCipher(bytes.Repeat([]byte{8}, KeySize), bytes.Repeat([]byte{7}, KeySize))
	if again, err := other.Reseal(old, SealedEventData, "evt_1"); err != nil || again[0] != sealDeflate || !other.SealedNow(again) {
		t.Errorf("Reseal of a format 3 value under an old key = %x, %v; want format 4 under the new key", again, err)
	}
}

// TestSealNotCompressed: a value that does not shrink, one in a column
// that is not compressed, and one larger than maxInflated are sealed in
// format 3; format 3 values (all of today's databases) keep opening in the
// compressed columns, and count as sealed now.
func TestSealNotCompressed(t *testing.T) {
	t.Parallel()
	c := testCipher(t)
	random := make([]byte, 300)
	rand.Read(random)
	json := []byte(`{"status":"APPROVED","status":"APPROVED","status":"APPROVED"}`)
	for _, tc := range []struct {
		name   string
		plain  []byte
		column string
	}{
		{"random bytes", random, SealedMessageBody},
		{"one byte", []byte("1"), SealedEventData},
		{"not a JSON column", json, SealedDispatchContent},
		{"a secret", json, SealedEndpointSecret},
		{"larger than maxInflated", make([]byte, maxInflated+1), SealedMessageBody},
	} {
		s := c.Seal(tc.plain, tc.column, "row_1")
		if s[0] != sealKeyed || len(s) != 1+keyIDSize+12+len(tc.plain)+16 {
			t.Errorf("%s: sealed in format %d, %d B; want format 3, %d B", tc.name, s[0], len(s), 1+keyIDSize+12+len(tc.plain)+16)
		}
		if !c.SealedNow(s) {
			t.Errorf("%s: SealedNow = false for a value Seal wrote", tc.name)
		}
		if got, err := c.Open(s, tc.column, "row_1"); err != nil || !bytes.Equal(got, tc.plain) {
			t.Errorf("%s: Open = %v; want the plaintext", tc.name, err)
		}
	}
	if s := c.Seal(json, SealedMessageBody, "row_1"); s[0] != sealDeflate {
		t.Errorf("the same JSON as a message body: format %d, want 4", s[0])
	}
}

// TestSealCompressedTampered: a format 4 value changed anywhere, relabelled
// as format 3 (or a format 3 value as 4), or naming another key, opens
// nothing; nor does one whose sealed bytes do not inflate.
func TestSealCompressedTampered(t *testing.T) {
	t.Parallel()
	c := testCipher(t)
	body := []byte(`{"status":{"overall":"APPROVED","autoDocument":"DOC_VALIDATED","autoFace":"FACE_MATCH"}}`)
	s := c.Seal(body, SealedMessageBody, "msg_1")
	if s[0] != sealDeflate {
		t.Fatalf("format %d, want 4", s[0])
	}
	v3 := c.seal(sealKeyed, keyedLabel, body, SealedMessageBody, "msg_1")
	flip := func(v []byte, i int, x byte) []byte { v = slices.Clone(v); v[i] ^= x; return v }
	for name, v := range map[string][]byte{
		"last byte":           flip(s, len(s)-1, 1),
		"a ciphertext byte":   flip(s, 1+keyIDSize+12, 0x80),
		"nonce":               flip(s, 1+keyIDSize, 1),
		"relabelled 3":        flip(s, 0, sealDeflate^sealKeyed),
		"format 3 labelled 4": flip(v3, 0, sealDeflate^sealKeyed),
		"key id":              flip(s, 1, 1),
		"truncated":           s[:len(s)-20],
	} {
		if got, err := c.Open(v, SealedMessageBody, "msg_1"); !errors.Is(err, ErrDecrypt) || got != nil {
			t.Errorf("%s: Open = %q, %v; want ErrDecrypt", name, got, err)
		}
	}
	// Sealed by a key holder but not deflate: GCM passes, inflating fails.
	garbage := c.seal(sealDeflate, deflateLabel, []byte{0xff, 0xff, 0xff, 0xff}, SealedMessageBody, "msg_1")
	if got, err := c.Open(garbage, SealedMessageBody, "msg_1"); !errors.Is(err, ErrDecrypt) || !errors.Is(err, errInflate) {
		t.Errorf("Open of a format 4 value that is not deflate = %q, %v; want ErrDecrypt", got, err)
	}
	// Nor does format 4 in a column that Seal does not compress.
	z, _, _ := codecs[SealedMessageBody].deflate(body)
	secret := c.seal(sealDeflate, deflateLabel, z, SealedEndpointSecret, "crm")
	if got, err := c.Open(secret, SealedEndpointSecret, "crm"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open of a format 4 endpoint secret = %q, %v; want ErrDecrypt", got, err)
	}
}

// TestSealInflateBound: a format 4 value opens to at most maxInflated
// bytes, so that a crafted one (a few KB of deflate for gigabytes of
// zeros) cannot exhaust memory.
func TestSealInflateBound(t *testing.T) {
	t.Parallel()
	c := testCipher(t)
	zeros := func(n int) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriterDict(&b, flate.BestCompression, eventDict1)
		w.Write(make([]byte, n))
		w.Close()
		return c.seal(sealDeflate, deflateLabel, b.Bytes(), SealedEventData, "evt_1")
	}
	if got, err := c.Open(zeros(maxInflated), SealedEventData, "evt_1"); err != nil || len(got) != maxInflated {
		t.Errorf("Open of maxInflated bytes = %d B, %v; want them", len(got), err)
	}
	if got, err := c.Open(zeros(maxInflated+1), SealedEventData, "evt_1"); !errors.Is(err, ErrDecrypt) || !errors.Is(err, errInflate) || got != nil {
		t.Errorf("Open of maxInflated+1 bytes = %d B, %v; want ErrDecrypt", len(got), err)
	}
}

// benchValues returns what the benchmarks seal: the providers' golden
// bodies as message bodies, and verification.updated event data as the
// ingest path builds it.
func benchValues(b *testing.B) []struct {
	column string
	values [][]byte
} {
	_, bodies := providerBodies(b)
	var events [][]byte
	at := time.Date(2026, 11, 29, 10, 21, 34, 123456000, time.UTC)
	attempts := 2
	for i, p := range []string{"identomat", "idenfy", "kycaid", "fractal"} {
		o := Observation{
			VerificationKey: VerificationKey{Source: p + "-bench", ProviderRef: fmt.Sprintf("bench-1a2b3c4d-%09d", i)},
			Provider:        p, Kind: KindKYC, ApplicantRef: fmt.Sprintf("user-bench-1a2b3c4d-%09d", i), Status: StatusApproved,
			Final: true, ProviderTime: at, ProviderEvent: "VERIFICATION_COMPLETED", ReceivedAt: at, MessageID: NewID("msg", at),
		}
		if i%2 == 0 {
			o.AttemptsLeft = &attempts
		}
		v, _, _ := Apply(Verification{}, false, o)
		v.ID = NewID("ver", at)
		events = append(events, UpdatedEvent(NewID("evt", at), v, "", o).Data)
	}
	return []struct {
		column string
		values [][]byte
	}{{SealedMessageBody, bodies}, {SealedEventData, events}}
}

// BenchmarkSeal seals message bodies and event data in format 3 (as before
// compression) and as Seal does (format 4); sealed-B/op is the mean size
// written.
func BenchmarkSeal(b *testing.B) {
	c := testCipher(b)
	for _, set := range benchValues(b) {
		for _, v4 := range []bool{false, true} {
			seal := func(p []byte) []byte { return c.seal(sealKeyed, keyedLabel, p, set.column, "row_1") }
			if v4 {
				seal = func(p []byte) []byte { return c.Seal(p, set.column, "row_1") }
			}
			b.Run(fmt.Sprintf("%s/v%d", set.column, map[bool]int{false: 3, true: 4}[v4]), func(b *testing.B) {
				b.ReportAllocs()
				n, size, plain := 0, 0, 0
				for b.Loop() {
					p := set.values[n%len(set.values)]
					size, plain = size+len(seal(p)), plain+len(p)
					n++
				}
				b.ReportMetric(float64(size)/float64(n), "sealed-B/op")
				b.ReportMetric(float64(plain)/float64(n), "plain-B/op")
			})
		}
	}
}

// BenchmarkOpen opens what BenchmarkSeal writes.
func BenchmarkOpen(b *testing.B) {
	c := testCipher(b)
	for _, set := range benchValues(b) {
		for _, v4 := range []bool{false, true} {
			sealed := make([][]byte, len(set.values))
			for i, p := range set.values {
				if sealed[i] = c.seal(sealKeyed, keyedLabel, p, set.column, "row_1"); v4 {
					sealed[i] = c.Seal(p, set.column, "row_1")
				}
			}
			b.Run(fmt.Sprintf("%s/v%d", set.column, sealed[0][0]), func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				for b.Loop() {
					if _, err := c.Open(sealed[n%len(sealed)], set.column, "row_1"); err != nil {
						b.Fatal(err)
					}
					n++
				}
			})
		}
	}
}

// FuzzDeflate: what lz writes, compress/flate's reader opens to the same
// bytes with the same dictionary, for both columns' dictionaries: matches
// into the dictionary, across its end into the value, within the value,
// farther back than the window (the seeds include a value of 100 KB).
func FuzzDeflate(f *testing.F) {
	_, bodies := providerBodies(f)
	for _, b := range bodies[:10] {
		f.Add(b, uint8(0))
	}
	long := make([]byte, 100<<10)
	rand.Read(long[:40<<10])
	copy(long[40<<10:], long[:40<<10])
	copy(long[80<<10:], bodyDict1)
	f.Add(long, uint8(1))
	for column, dict := range [][]byte{bodyDict1, eventDict1} {
		// the dictionary's start just past the window's reach, and just within
		far := make([]byte, 1<<16)
		rand.Read(far)
		copy(far[lzWindow-len(dict)+20:], dict[:200])
		copy(far[lzWindow-len(dict)-300:], dict[:200])
		f.Add(far, uint8(column))
	}
	f.Add([]byte{}, uint8(0))
	f.Add(bytes.Repeat([]byte("a"), 1000), uint8(1))
	f.Add(append(slices.Clone(eventDict1[len(eventDict1)-20:]), eventDict1...), uint8(1))
	f.Fuzz(func(t *testing.T, p []byte, column uint8) {
		cd := codecs[SealedMessageBody]
		if column%2 == 1 {
			cd = codecs[SealedEventData]
		}
		var s lzState
		z := cd.lz.deflate(&s, p)
		got, err := io.ReadAll(flate.NewReaderDict(bytes.NewReader(z), cd.dict))
		if err != nil || !bytes.Equal(got, p) {
			t.Fatalf("inflated %d bytes (%v), want the %d deflated", len(got), err, len(p))
		}
	})
}
