package hub

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
)

// jsonCases add to canonicalCases what a reader must get right besides
// the canonical form: what encoding/json refuses, escaped and repeated
// names, invalid UTF-8.
var jsonCases = []string{
	``, ` `, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{} {}`, `{}x`, `1 `, ` 1`, `01`, `-`,
	`1.`, `.5`, `1e`, `1e+`, `+1`, `tru`, `nul`, `"a`, "\"\x01\"", `"\x"`, `"\u12"`, `"\u12G4"`, `1e400`,
	`-1e400`, `1e-400`, `{"a":1,"A":2,"a":3}`, `{"a\u0062":1,"ab":2}`, `{"\ud83d\ude00":"\ud83d"}`,
	"{\"\xff\":\"\xfe\xfd\"}", `{"k":"a\/b"}`, `[[[[[]]]]]`, `{"x":{"y":{"z":[{"a":null}]}}}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000), strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
}

func TestReadJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, c := range append(jsonCases, canonicalCases...) {
		checkReadJSON(t, []byte(c))
	}
}

// FuzzReadJSON: ReadJSON accepts what encoding/json accepts, decodes to the
// same value, and writes the canonical form json.Marshal writes of it.
func FuzzReadJSON(f *testing.F) {
	for _, c := range append(jsonCases, canonicalCases...) {
		f.Add([]byte(c))
	}
	f.Fuzz(checkReadJSON)
}

func checkReadJSON(t *testing.T, body []byte) {
	t.Helper()
	for _, numbers := range []JSONNumbers{NumbersAsWritten, NumbersAsFloat64} {
		want, wantErr := decodeStd(body, numbers)
		v, err := ReadJSON(body, numbers)
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%.80q (numbers %d): ReadJSON error %v, encoding/json %v", body, numbers, err, wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got := v.Any(); !reflect.DeepEqual(got, want) {
			t.Errorf("%.80q (numbers %d): Any() = %#v, encoding/json %#v", body, numbers, got, want)
		}
		wantCanon, ok := appendCanonical(nil, want)
		if gotCanon, _ := appendCanonical(nil, v); !ok || !bytes.Equal(gotCanon, wantCanon) {
			t.Errorf("%.80q (numbers %d): canonical %s, from the decoded value %s", body, numbers, gotCanon, wantCanon)
		}
		if m, ok := want.(map[string]any); ok {
			for name, val := range m {
				if got := v.Field(name).Any(); !reflect.DeepEqual(got, val) {
					t.Errorf("%.80q: Field(%q) = %#v, want %#v", body, name, got, val)
				}
				if got := v.FieldFold(strings.ToUpper(name)).Kind(); got == JSONAbsent {
					t.Errorf("%.80q: FieldFold(%q) is absent", body, strings.ToUpper(name))
				}
			}
			if got := v.Field("\x00not there"); got.Kind() != JSONAbsent || got.Any() != nil {
				t.Errorf("%.80q: a missing field is %v", body, got.Kind())
			}
		}
	}
}

// decodeStd decodes body as the providers did with encoding/json.
func decodeStd(body []byte, numbers JSONNumbers) (any, error) {
	var v any
	if numbers == NumbersAsFloat64 {
		err := json.Unmarshal(body, &v)
		return v, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, io.ErrUnexpectedEOF
	}
	return v, nil
}

func TestJSONFields(t *testing.T) {
	t.Parallel()
	v, err := ReadJSON([]byte(`{"scanRef":"a","SCANREF":"b","clientId":"c","CLIENTID":"d","clientid":"e",`+
		`"n":1.50,"t":true,"s":"x\u00e9\"y","l":[1,"two",null]}`), NumbersAsWritten)
	if err != nil {
		t.Fatal(err)
	}
	str := func(v JSON) string { s, _ := v.Str(); return s }
	for _, c := range []struct{ got, want string }{
		{str(v.Field("scanRef")), "a"}, {str(v.FieldFold("scanref")), "b"}, {str(v.FieldFold("scanRef")), "a"},
		{str(v.FieldFold("CLIENTid")), "e"}, {str(v.Field("s")), "xé\"y"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if n, ok := v.Field("n").Number(); !ok || n != "1.50" {
		t.Errorf("Number() = %q, %v", n, ok)
	}
	if b, ok := v.Field("t").Bool(); !ok || !b {
		t.Errorf("Bool() = %v, %v", b, ok)
	}
	if _, ok := v.Field("n").Str(); ok {
		t.Error("a number read as a string")
	}
	var kinds []JSONKind
	v.Field("l").Elems(func(e JSON) bool { kinds = append(kinds, e.Kind()); return true })
	if !reflect.DeepEqual(kinds, []JSONKind{JSONNumber, JSONString, JSONNull}) {
		t.Errorf("Elems kinds %v", kinds)
	}
	if got := v.Names(); !reflect.DeepEqual(got, []string{"CLIENTID", "SCANREF", "clientId", "clientid", "l", "n", "s", "scanRef", "t"}) {
		t.Errorf("Names() = %q", got)
	}
}

func BenchmarkCanonicalHash(b *testing.B) {
	body := []byte(`{"clientId":"client-9","scanRef":"scan-77","final":true,"platform":"PC","startTime":1585834535,` +
		`"finishTime":1585834600,"status":{"overall":"SUSPECTED","fraudTags":["DOC_FACE_FRAUD"],"mismatchTags":[],` +
		`"autoDocument":"DOC_VALIDATED","autoFace":"FACE_MATCH","manualDocument":"DOC_VALIDATED","manualFace":"FACE_MATCH"},` +
		`"data":{"docFirstName":"Jonas","docLastName":"Petraitis","docNumber":"X1234567","address":"Gedimino pr. 1 <b>"}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := CanonicalHash(body); err != nil {
			b.Fatal(err)
		}
	}
}
