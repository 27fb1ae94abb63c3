package hub

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// JSON is one value of a JSON text read by ReadJSON. The text is scanned
// once, into a flat list of its values' positions, and nothing more is
// decoded until it is asked for: a provider reads the few fields it needs,
// and the dedup hash (CanonicalHashOf) writes the canonical form straight
// from the bytes. Decoding a body into a tree of maps, and walking the maps
// again for the hash, was most of a webhook's parsing.
//
// The zero JSON is an absent value: what Field returns for a member that is
// not there. A JSON is read-only and safe for concurrent use; it keeps the
// bytes it was read from, which must not change.
type JSON struct {
	doc *jsonDoc
	i   int32
}

// JSONKind is the kind of a JSON value.
type JSONKind uint8

// The kinds of JSON values; JSONAbsent is the zero JSON's.
const (
	JSONAbsent JSONKind = iota
	JSONNull
	JSONBool
	JSONNumber
	JSONString
	JSONArray
	JSONObject
)

// JSONNumbers says how a JSON text's numbers are decoded (Any) and written
// in its canonical form: the two ways encoding/json decodes them.
type JSONNumbers uint8

const (
	// NumbersAsWritten keeps numbers as their text (json.Number): no two
	// values hash alike by rounding.
	NumbersAsWritten JSONNumbers = iota
	// NumbersAsFloat64 reads numbers as float64, as json.Unmarshal into an
	// any does: a number out of float64's range is an error.
	NumbersAsFloat64
)

type jsonDoc struct {
	src     []byte
	toks    []jsonTok
	numbers JSONNumbers
}

// jsonTok is one value of a text: an object is followed by its members (a
// key, a string token, then its value), an array by its elements.
type jsonTok struct {
	start, end int32 // the value's bytes in src; a string's without its quotes
	next       int32 // the index of the token after the value and all it holds
	kind       JSONKind
	plain      bool // a string with no escape and valid UTF-8: its bytes are its value
	canonical  bool // a plain string that json.Marshal writes as it is (nothing to escape)
	ascii      bool // a plain string of ASCII bytes only
}

// maxJSONDepth is encoding/json's bound on nesting.
const maxJSONDepth = 10000

var errJSONSyntax = errors.New("invalid JSON")

// ReadJSON reads body, which must be one JSON value and nothing else but
// white space. It accepts exactly what encoding/json accepts (duplicate
// names, the last one counting; invalid UTF-8 in strings, read as U+FFFD)
// and, with NumbersAsFloat64, refuses what json.Unmarshal into an any
// refuses (a number out of range).
func ReadJSON(body []byte, numbers JSONNumbers) (JSON, error) {
	if len(body) > 1<<31-1 {
		return JSON{}, errors.New("JSON text too large")
	}
	r := jsonReader{src: body, numbers: numbers, toks: make([]jsonTok, 0, len(body)/12+4)}
	if err := r.value(0); err != nil {
		return JSON{}, err
	}
	r.space()
	if r.pos != len(body) {
		return JSON{}, errJSONSyntax
	}
	return JSON{doc: &jsonDoc{src: body, toks: r.toks, numbers: numbers}}, nil
}

type jsonReader struct {
	src     []byte
	pos     int
	toks    []jsonTok
	numbers JSONNumbers
}

func (r *jsonReader) space() {
	for r.pos < len(r.src) {
		switch c := r.src[r.pos]; {
		case c > ' ':
			return // one test for what follows most tokens: no space at all
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			r.pos++
		default:
			return
		}
	}
}

// value reads the value at r.pos, depth containers deep.
func (r *jsonReader) value(depth int) error {
	r.space()
	if r.pos >= len(r.src) {
		return errJSONSyntax
	}
	i := len(r.toks)
	r.toks = append(r.toks, jsonTok{start: int32(r.pos)})
	var err error
	switch c := r.src[r.pos]; {
	case c == '{':
		r.toks[i].kind = JSONObject
		err = r.container(depth, '}', func() error {
			r.space()
			if r.pos >= len(r.src) || r.src[r.pos] != '"' {
				return errJSONSyntax
			}
			r.toks = append(r.toks, jsonTok{})
			if err := r.str(len(r.toks) - 1); err != nil {
				return err
			}
			r.space()
			if r.pos >= len(r.src) || r.src[r.pos] != ':' {
				return errJSONSyntax
			}
			r.pos++
			return r.value(depth + 1)
		})
	case c == '[':
		r.toks[i].kind = JSONArray
		err = r.container(depth, ']', func() error { return r.value(depth + 1) })
	case c == '"':
		return r.str(i)
	case c == 't':
		err = r.literal(i, "true", JSONBool)
	case c == 'f':
		err = r.literal(i, "false", JSONBool)
	case c == 'n':
		err = r.literal(i, "null", JSONNull)
	case c == '-' || '0' <= c && c <= '9':
		err = r.number(i)
	default:
		return errJSONSyntax
	}
	r.toks[i].end, r.toks[i].next = int32(r.pos), int32(len(r.toks))
	return err
}

// container reads an object or array from its opening bracket to end,
// reading each member or element with item.
func (r *jsonReader) container(depth int, end byte, item func() error) error {
	if depth+1 > maxJSONDepth {
		return errors.New("JSON nested too deep")
	}
	r.pos++
	r.space()
	if r.pos < len(r.src) && r.src[r.pos] == end {
		r.pos++
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		r.space()
		if r.pos >= len(r.src) {
			return errJSONSyntax
		}
		switch r.src[r.pos] {
		case ',':
			r.pos++
		case end:
			r.pos++
			return nil
		default:
			return errJSONSyntax
		}
	}
}

func (r *jsonReader) literal(i int, lit string, kind JSONKind) error {
	if !bytes.HasPrefix(r.src[r.pos:], []byte(lit)) {
		return errJSONSyntax
	}
	r.pos += len(lit)
	r.toks[i].kind = kind
	return nil
}

// number reads a number as RFC 8259 section 6 writes it.
func (r *jsonReader) number(i int) error {
	s, start := r.src, r.pos
	p := start
	digits := func() int {
		n := p
		for p < len(s) && '0' <= s[p] && s[p] <= '9' {
			p++
		}
		return p - n
	}
	if s[p] == '-' {
		p++
	}
	switch {
	case p < len(s) && s[p] == '0':
		p++
	case digits() == 0:
		return errJSONSyntax
	}
	if p < len(s) && s[p] == '.' {
		if p++; digits() == 0 {
			return errJSONSyntax
		}
	}
	if p < len(s) && (s[p] == 'e' || s[p] == 'E') {
		p++
		if p < len(s) && (s[p] == '+' || s[p] == '-') {
			p++
		}
		if digits() == 0 {
			return errJSONSyntax
		}
	}
	r.pos = p
	r.toks[i].kind = JSONNumber
	if r.numbers == NumbersAsFloat64 {
		if _, err := strconv.ParseFloat(string(s[start:p]), 64); err != nil {
			return errors.New("JSON number out of range")
		}
	}
	return nil
}

// Byte classes in strings: what str must look at, and what json.Marshal
// escapes (HTML characters; U+2028 and U+2029 begin with 0xE2).
const (
	strEnd    = 1 << iota // " or \ or a control character
	strEscape             // < > & or 0xE2: written escaped, or may be
	strHigh               // not ASCII: UTF-8 to check
)

var strClass = func() (t [256]uint8) {
	for c := range 0x20 {
		t[c] = strEnd
	}
	t['"'], t['\\'] = strEnd, strEnd
	t['<'], t['>'], t['&'] = strEscape, strEscape, strEscape
	for c := 0x80; c < 0x100; c++ {
		t[c] = strHigh
	}
	t[0xE2] |= strEscape
	return t
}()

// str reads the string at r.pos into token i.
func (r *jsonReader) str(i int) error {
	s := r.src
	p := r.pos + 1
	start, escaped, seen := p, false, uint8(0)
	for {
		// Printable ASCII with nothing to escape: most of a text's bytes.
		// (An unsigned bound lets the compiler drop the index check.)
		for uint(p) < uint(len(s)) && strClass[s[p]] == 0 {
			p++
		}
		if p >= len(s) {
			return errJSONSyntax
		}
		c := s[p]
		if strClass[c]&strEnd == 0 {
			seen |= strClass[c]
			p++
			continue
		}
		switch {
		case c == '"':
			plain := !escaped && (seen&strHigh == 0 || utf8.Valid(s[start:p]))
			r.toks[i] = jsonTok{start: int32(start), end: int32(p), next: int32(i + 1), kind: JSONString,
				plain: plain, canonical: plain && seen&strEscape == 0, ascii: plain && seen&strHigh == 0}
			r.pos = p + 1
			return nil
		case c == '\\':
			escaped = true
			if p+1 >= len(s) {
				return errJSONSyntax
			}
			switch s[p+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p += 2
			case 'u':
				if getu4(s[p:]) < 0 {
					return errJSONSyntax
				}
				p += 6
			default:
				return errJSONSyntax
			}
		default: // a control character
			return errJSONSyntax
		}
	}
}

// getu4 decodes \uXXXX from the beginning of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// unquote appends a string token's value to b as encoding/json decodes it:
// escapes resolved, a lone surrogate and each byte of invalid UTF-8 read as
// U+FFFD.
func unquote(b, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch s[i+1] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[i:])
				i += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[i:])); dec != utf8.RuneError {
						i += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = utf8.RuneError
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // " \ /
				b = append(b, s[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			rr, size := utf8.DecodeRune(s[i:])
			b = utf8.AppendRune(b, rr)
			i += size
		}
	}
	return b
}

func (v JSON) tok() *jsonTok { return &v.doc.toks[v.i] }

func (v JSON) raw() []byte {
	t := v.tok()
	return v.doc.src[t.start:t.end]
}

// Kind returns v's kind.
func (v JSON) Kind() JSONKind {
	if v.doc == nil {
		return JSONAbsent
	}
	return v.tok().kind
}

// Str returns a string's value, and false for any other kind.
func (v JSON) Str() (string, bool) {
	if v.Kind() != JSONString {
		return "", false
	}
	if v.tok().plain {
		return string(v.raw()), true
	}
	return string(unquote(nil, v.raw())), true
}

// Number returns a number's text as written, and false for any other kind.
func (v JSON) Number() (json.Number, bool) {
	if v.Kind() != JSONNumber {
		return "", false
	}
	return json.Number(v.raw()), true
}

// Bool returns a boolean's value, and false for any other kind.
func (v JSON) Bool() (value, ok bool) {
	if v.Kind() != JSONBool {
		return false, false
	}
	return v.doc.src[v.tok().start] == 't', true
}

// Elems calls yield with each element of an array, in order, until it
// returns false; other kinds have none.
func (v JSON) Elems(yield func(JSON) bool) {
	if v.Kind() != JSONArray {
		return
	}
	for i := v.i + 1; i < v.tok().next; i = v.doc.toks[i].next {
		if !yield(JSON{v.doc, i}) {
			return
		}
	}
}

// members calls yield with the index of each member's key token, in order;
// its value is the token after it.
func (v JSON) members(yield func(key int32) bool) {
	if v.Kind() != JSONObject {
		return
	}
	for i := v.i + 1; i < v.tok().next; i = v.doc.toks[i+1].next {
		if !yield(i) {
			return
		}
	}
}

// Names returns an object's member names, sorted, each once.
func (v JSON) Names() []string {
	var names []string
	v.members(func(k int32) bool {
		s, _ := JSON{v.doc, k}.Str()
		names = append(names, s)
		return true
	})
	slices.Sort(names)
	return slices.Compact(names)
}

// key returns the name of the key token k, unquoted.
func (v JSON) key(k int32) []byte {
	t := v.doc.toks[k]
	if t.plain {
		return v.doc.src[t.start:t.end]
	}
	return unquote(nil, v.doc.src[t.start:t.end])
}

// Field returns the value of an object's member name, the last one of that
// name as json.Unmarshal into a map keeps it; absent when there is none or v
// is no object.
func (v JSON) Field(name string) JSON {
	var out JSON
	v.members(func(k int32) bool {
		if t := &v.doc.toks[k]; (!t.plain || int(t.end-t.start) == len(name)) && string(v.key(k)) == name {
			out = JSON{v.doc, k + 1}
		}
		return true
	})
	return out
}

// FieldFold is Field, but when no member is named exactly name it takes the
// last one whose name matches without regard to case, as json.Unmarshal
// into a struct matches a field's name.
func (v JSON) FieldFold(name string) JSON {
	ascii := true
	for i := range len(name) {
		ascii = ascii && name[i] < utf8.RuneSelf
	}
	var exact, folded JSON
	v.members(func(k int32) bool {
		// Names of ASCII bytes only match, in any case, names of their own
		// length: most members are told apart without reading their names.
		if t := &v.doc.toks[k]; t.ascii && ascii && int(t.end-t.start) != len(name) {
			return true
		}
		switch key := v.key(k); {
		case string(key) == name:
			exact = JSON{v.doc, k + 1}
		case exact.doc == nil && strings.EqualFold(string(key), name):
			folded = JSON{v.doc, k + 1}
		}
		return true
	})
	if exact.doc != nil {
		return exact
	}
	return folded
}

// Any decodes v as encoding/json decodes into an any: map[string]any,
// []any, string, bool, nil, and numbers as json.Number or float64 as v's
// text was read. An absent value is nil.
func (v JSON) Any() any {
	switch v.Kind() {
	case JSONBool:
		b, _ := v.Bool()
		return b
	case JSONNumber:
		if v.doc.numbers == NumbersAsFloat64 {
			f, _ := strconv.ParseFloat(string(v.raw()), 64)
			return f
		}
		n, _ := v.Number()
		return n
	case JSONString:
		s, _ := v.Str()
		return s
	case JSONArray:
		out := []any{}
		v.Elems(func(e JSON) bool {
			out = append(out, e.Any())
			return true
		})
		return out
	case JSONObject:
		out := map[string]any{}
		v.members(func(k int32) bool {
			name, _ := JSON{v.doc, k}.Str()
			out[name] = JSON{v.doc, k + 1}.Any()
			return true
		})
		return out
	}
	return nil
}

// appendCanonical appends v's canonical form, the bytes json.Marshal writes
// for Any(): keys sorted, the last of equal keys kept, strings escaped as
// json.Marshal escapes them.
func (v JSON) appendCanonical(b []byte) []byte {
	t := v.tok()
	members := canonicalMembers.Get().(*[]canonicalMember)
	w := canonicalWriter{doc: v.doc, b: slices.Grow(b, int(t.end-t.start)+64), members: (*members)[:0]}
	w.value(v.i)
	if cap(w.members) <= 2048 { // 48 KiB
		*members = w.members
	}
	canonicalMembers.Put(members)
	return w.b
}

// canonicalMembers keeps canonical writers' stacks of members between
// calls: one for each body was 2.3 KB of what a parse of iDenfy's largest
// webhook allocated (7 KB after canonicalBufs), and allocations cost a parse
// more CPU than they take instructions (clearing, the collector).
var canonicalMembers = sync.Pool{New: func() any { return new([]canonicalMember) }}

type canonicalWriter struct {
	doc *jsonDoc
	b   []byte
	// members is a stack: each object's members above its parent's. They
	// hold no pointers, so that sorting them costs no write barriers.
	members []canonicalMember
	keys    []byte // the unquoted names that differ from their bytes in src
}

// canonicalMember is an object's member: its name, unquoted, is
// keys[start:end] when unquoted is set, else src[start:end].
type canonicalMember struct {
	prefix          uint64 // the name's first 8 bytes, big-endian: most names differ there
	start, end, val int32
	unquoted        bool
	canonical       bool // the name's bytes are written as they are
}

func (w *canonicalWriter) key(m canonicalMember) []byte {
	if m.unquoted {
		return w.keys[m.start:m.end]
	}
	return w.doc.src[m.start:m.end]
}

func (w *canonicalWriter) value(i int32) {
	t := w.doc.toks[i]
	raw := w.doc.src[t.start:t.end]
	switch t.kind {
	case JSONString:
		if t.canonical {
			w.b = append(append(append(w.b, '"'), raw...), '"')
		} else {
			w.str(raw, t.plain)
		}
	case JSONNumber:
		if w.doc.numbers == NumbersAsFloat64 {
			f, _ := strconv.ParseFloat(string(raw), 64)
			w.b, _ = appendJSONFloat(w.b, f) // finite: ReadJSON refused the rest
		} else {
			w.b = append(w.b, raw...)
		}
	case JSONArray:
		w.b = append(w.b, '[')
		for e := i + 1; e < t.next; e = w.doc.toks[e].next {
			if e > i+1 {
				w.b = append(w.b, ',')
			}
			w.value(e)
		}
		w.b = append(w.b, ']')
	case JSONObject:
		base := len(w.members)
		for k := i + 1; k < t.next; k = w.doc.toks[k+1].next {
			kt := w.doc.toks[k]
			m := canonicalMember{start: kt.start, end: kt.end, val: k + 1, canonical: kt.canonical}
			if !kt.plain {
				m.start, m.unquoted = int32(len(w.keys)), true
				w.keys = unquote(w.keys, w.doc.src[kt.start:kt.end])
				m.end = int32(len(w.keys))
			}
			m.prefix = namePrefix(w.key(m))
			w.members = append(w.members, m)
		}
		w.sort(w.members[base:])
		w.b = append(w.b, '{')
		first, end := true, len(w.members)
		for j := base; j < end; j++ {
			m := w.members[j]
			if j+1 < end && w.members[j+1].prefix == m.prefix && bytes.Equal(w.key(w.members[j+1]), w.key(m)) {
				continue // a duplicate name (prefixes first: cheaper): the last one counts
			}
			if !first {
				w.b = append(w.b, ',')
			}
			first = false
			if m.canonical {
				w.b = append(append(append(w.b, '"'), w.key(m)...), '"', ':')
			} else {
				w.str(w.key(m), true)
				w.b = append(w.b, ':')
			}
			w.value(m.val) // pushes its members above j, and pops them
		}
		w.members = w.members[:base]
		w.b = append(w.b, '}')
	default: // null, true, false
		w.b = append(w.b, raw...)
	}
}

// namePrefix returns a name's first 8 bytes as a big-endian number, zeros
// after a shorter name's end: names compare as their prefixes do, unless
// these are equal.
func namePrefix(name []byte) uint64 {
	if len(name) >= 8 {
		return binary.BigEndian.Uint64(name)
	}
	var p uint64
	for i, c := range name {
		p |= uint64(c) << (56 - 8*i)
	}
	return p
}

// sort sorts an object's members by name, equal names in the order sent.
// Objects are small (a webhook's have up to 40 or so members): an insertion
// sort that compares prefixes inline takes about half the instructions of
// slices.SortFunc there, which calls the comparison for each pair; larger
// objects take slices.SortFunc's n log n.
func (w *canonicalWriter) sort(ms []canonicalMember) {
	if len(ms) > 64 {
		slices.SortFunc(ms, w.compare)
		return
	}
	for i := 1; i < len(ms); i++ {
		m, j := ms[i], i
		for ; j > 0 && (m.prefix < ms[j-1].prefix || m.prefix == ms[j-1].prefix && w.compare(m, ms[j-1]) < 0); j-- {
			ms[j] = ms[j-1]
		}
		ms[j] = m
	}
}

// compare orders members by name, then in the order sent.
func (w *canonicalWriter) compare(a, b canonicalMember) int {
	if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
		return c
	}
	if c := bytes.Compare(w.key(a), w.key(b)); c != 0 {
		return c
	}
	return cmp.Compare(a.val, b.val)
}

// str writes a string, given as unquoted valid UTF-8 when plain, else as a
// token's escaped bytes.
func (w *canonicalWriter) str(s []byte, plain bool) {
	if !plain {
		s = unquote(nil, s)
	}
	w.b = appendJSONString(w.b, s)
}
