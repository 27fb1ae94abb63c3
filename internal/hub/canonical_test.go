package hub

import (
	"bytes"
	"encoding/json"
	"testing"
)

// canonicalCases are JSON bodies whose decoded values appendCanonical must
// write byte for byte as json.Marshal does: the dedup keys already stored
// were hashed from json.Marshal's bytes.
var canonicalCases = []string{
	`null`, `true`, `false`, `0`, `-0`, `1`, `-1.5`, `123456789012345678901234567890`, `1e21`, `1e20`, `1E+2`,
	`0.000001`, `0.0000001`, `1.5e-9`, `-2.5e-300`, `1.7976931348623157e308`, `5e-324`, `0.1`, `100`, `1e0`,
	`""`, `"plain"`, `"<a href=\"x\">&amp;</a>"`, `"tab\there\nnew\rline\b\f\u0001\u001f\u007f"`,
	`"\u2028\u2029"`, `"é ü 日本 😀"`, `"\ud800"`, `"back\\slash \/ slash"`,
	`[]`, `{}`, `[1,"a",null,true,{"b":[]}]`,
	`{"z":1,"a":2,"m":{"y":[1,2,{"c":"<>","b":null}],"x":1.0}}`,
	`{"é":1,"e":2,"E":3,"":4,"a<b":5,"\u2028":6}`,
	`{"a":1,"a":2}`,
}

func TestAppendCanonicalMatchesMarshal(t *testing.T) {
	for _, c := range canonicalCases {
		checkCanonical(t, []byte(c))
	}
	// Invalid UTF-8 reaches strings only from Go, never from a decoder
	// (which replaces it); json.Marshal writes it as U+FFFD.
	for _, v := range []any{"a\xffb", map[string]any{"\xfe": "x"}, json.Number(""), json.Number("01"),
		json.Number("1e"), []any(nil), map[string]any(nil), map[string]any{"k": []any{json.Number("-1.5E+3")}}} {
		want, _ := json.Marshal(v)
		if got, ok := appendCanonical(nil, v); ok && !bytes.Equal(got, want) {
			t.Errorf("appendCanonical(%#v) = %s, json.Marshal %s", v, got, want)
		}
		if CanonicalHashOf(v) != RawHash(want) {
			t.Errorf("CanonicalHashOf(%#v) is not the hash of json.Marshal's bytes", v)
		}
	}
}

// FuzzAppendCanonical: for any JSON body, decoded as the providers decode
// (numbers as json.Number, or as float64), appendCanonical writes what
// json.Marshal writes.
func FuzzAppendCanonical(f *testing.F) {
	for _, c := range canonicalCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if json.Valid(body) {
			checkCanonical(t, body)
		}
	})
}

func checkCanonical(t *testing.T, body []byte) {
	t.Helper()
	for _, useNumber := range []bool{true, false} {
		dec := json.NewDecoder(bytes.NewReader(body))
		if useNumber {
			dec.UseNumber()
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			continue // a float64 out of range
		}
		want, err := json.Marshal(v)
		got, ok := appendCanonical(nil, v)
		if err != nil || !ok {
			t.Errorf("%s (UseNumber %v): json.Marshal error %v, appendCanonical ok %v", body, useNumber, err, ok)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s (UseNumber %v):\nappendCanonical %s\njson.Marshal    %s", body, useNumber, got, want)
		}
	}
}
