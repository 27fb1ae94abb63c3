package hub

import (
	"encoding/binary"
	"math/bits"
)

// lz writes raw deflate (RFC 1951) for sealed format 4: one block of the fixed
// Huffman codes, the matches found greedily against a preset dictionary and
// the value itself. compress/flate primes a writer at every value (a Reset
// clears 640 KB of hash tables and hashes the dictionary again), which made a
// body's seal 27 µs and an event's 12 µs, the latter on SQLite's one writer;
// lz hashes its dictionary once, when it is made, and keeps per value only
// what the value's own bytes need: 3.8 and 1.5 µs (BenchmarkSeal), for values
// 5 % larger (bodies: 284.5 B against 270.2, mean) and 6 % smaller (events:
// 156.8 against 167.0: the fixed codes cost no table). Its output is plain
// deflate: compress/flate's reader, given the same dictionary, opens it (and
// what compress/flate wrote before it).
type lz struct {
	dict []byte
	// head holds, per hash of 4 bytes, the last position of the dictionary
	// with that hash, plus one (0: none); prev chains each position to the
	// previous one with its hash, the same way.
	head []int32
	prev []int32
}

const (
	lzHashBits   = 14
	lzMinMatch   = 4   // the hash's width; deflate allows 3
	lzMaxMatch   = 258 // deflate's longest match
	lzWindow     = 1 << 15
	lzDictChain  = 16 // dictionary positions tried per position of a value
	lzValueTable = 1 << 12
)

func lzHash(b []byte) uint32 {
	return binary.LittleEndian.Uint32(b) * 0x9E3779B1 >> (32 - lzHashBits)
}

func newLZ(dict []byte) *lz {
	if len(dict) > lzWindow {
		dict = dict[len(dict)-lzWindow:] // farther back than the window, nothing can refer to it
	}
	z := &lz{dict: dict, head: make([]int32, 1<<lzHashBits), prev: make([]int32, len(dict))}
	for i := 0; i+lzMinMatch <= len(dict); i++ {
		h := lzHash(dict[i:])
		z.prev[i] = z.head[h]
		z.head[h] = int32(i + 1)
	}
	return z
}

// lzState is what deflating one value needs beyond the dictionary: the
// dictionary and the value in one buffer (so that a match may run from one
// into the other, as the inflater's window does), and the last position of
// each hash in the value. Stale positions from an earlier value are harmless:
// every candidate's bytes are compared before it is used.
type lzState struct {
	buf   []byte
	table [lzValueTable]int32
	out   bitWriter
}

// deflate appends p deflated to s.out and returns it.
func (z *lz) deflate(s *lzState, p []byte) []byte {
	s.buf = append(append(s.buf[:0], z.dict...), p...)
	buf, base := s.buf, len(z.dict)
	w := &s.out
	w.reset()
	w.write(3, 3) // BFINAL 1, BTYPE 01: the fixed codes
	lit := base   // the first byte not yet written
	for i := base; i+lzMinMatch <= len(buf); {
		h := lzHash(buf[i:])
		best, bestPos := 0, 0
		vh := h & (lzValueTable - 1)
		if p := int(s.table[vh]) - 1; p >= base && p < i && i-p <= lzWindow {
			best, bestPos = matchLen(buf[p:], buf[i:]), p
		}
		s.table[vh] = int32(i + 1)
		for p, n := int(z.head[h])-1, 0; p >= 0 && n < lzDictChain && i-p <= lzWindow; p, n = int(z.prev[p])-1, n+1 {
			if l := matchLen(buf[p:], buf[i:]); l > best {
				best, bestPos = l, p
			}
		}
		if best < lzMinMatch {
			i++
			continue
		}
		for _, c := range buf[lit:i] {
			w.literal(c)
		}
		w.match(best, i-bestPos)
		for j := i + 1; j < i+min(best, 16) && j+lzMinMatch <= len(buf); j++ {
			s.table[lzHash(buf[j:])&(lzValueTable-1)] = int32(j + 1)
		}
		i += best
		lit = i
	}
	for _, c := range buf[lit:] {
		w.literal(c)
	}
	w.write(uint64(fixedLit[256].code), uint(fixedLit[256].len)) // end of block
	return w.flush()
}

// matchLen is the length of the common prefix of a and b, at most
// lzMaxMatch (a is never shorter than b: it starts earlier in one buffer).
func matchLen(a, b []byte) int {
	n := min(len(b), lzMaxMatch)
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for ; i < n && a[i] == b[i]; i++ {
	}
	return i
}

// bitWriter packs deflate's bits, least significant first.
type bitWriter struct {
	out  []byte
	bits uint64
	n    uint
}

func (w *bitWriter) reset() { w.out, w.bits, w.n = w.out[:0], 0, 0 }

// write appends the n low bits of v (n ≤ 32).
func (w *bitWriter) write(v uint64, n uint) {
	w.bits |= v << w.n
	w.n += n
	if w.n >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.bits))
		w.bits >>= 32
		w.n -= 32
	}
}

func (w *bitWriter) flush() []byte {
	for ; w.n > 0; w.n -= min(w.n, 8) {
		w.out = append(w.out, byte(w.bits))
		w.bits >>= 8
	}
	return w.out
}

func (w *bitWriter) literal(c byte) { w.write(uint64(fixedLit[c].code), uint(fixedLit[c].len)) }

// match writes a match of length l at distance d back.
func (w *bitWriter) match(l, d int) {
	lc := lengthCode[l]
	sym := fixedLit[257+int(lc)]
	w.write(uint64(sym.code), uint(sym.len))
	w.write(uint64(l-3-int(lengthBase[lc])), uint(lengthExtra[lc]))
	dc := distCode(d - 1)
	w.write(uint64(fixedDist[dc]), 5)
	w.write(uint64(d-1-int(distBase[dc])), uint(distExtra[dc]))
}

// hcode is a Huffman code, its bits reversed as the bit writer sends them.
type hcode struct {
	code uint16
	len  uint8
}

// The tables of RFC 1951, section 3.2.5 (lengths and distances, with base
// values less 3 and less 1) and 3.2.6 (the fixed codes).
var (
	lengthBase  = [29]uint16{0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 255}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	lengthCode    [lzMaxMatch + 1]uint8 // by match length: the index into lengthBase
	distCodeSmall [256]uint8            // by distance less 1, under 256
	fixedLit      [288]hcode
	fixedDist     [30]uint16
)

func init() {
	for c := len(lengthBase) - 1; c >= 0; c-- {
		for l := int(lengthBase[c]) + 3; l <= lzMaxMatch && lengthCode[l] == 0; l++ {
			lengthCode[l] = uint8(c)
		}
	}
	for c := range 16 {
		for d := int(distBase[c]); d < 256 && (c == 15 || d < int(distBase[c+1])); d++ {
			distCodeSmall[d] = uint8(c)
		}
	}
	reversed := func(code, n int) hcode { return hcode{bits.Reverse16(uint16(code)) >> (16 - n), uint8(n)} }
	for c := range fixedLit {
		switch {
		case c < 144:
			fixedLit[c] = reversed(0x30+c, 8)
		case c < 256:
			fixedLit[c] = reversed(0x190+c-144, 9)
		case c < 280:
			fixedLit[c] = reversed(c-256, 7)
		default:
			fixedLit[c] = reversed(0xC0+c-280, 8)
		}
	}
	for c := range fixedDist {
		fixedDist[c] = reversed(c, 5).code
	}
}

// distCode returns the distance code of a distance less 1 (under 32 KiB).
func distCode(d int) uint8 {
	if d < 256 {
		return distCodeSmall[d]
	}
	return distCodeSmall[d>>7] + 14
}
