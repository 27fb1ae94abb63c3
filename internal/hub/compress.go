package hub

import (
	"bytes"
	"compress/flate"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The preset dictionaries of sealed format 4, one per compressed column:
// deflate starts each value as if its column's dictionary came just before
// it, so that the JSON keys and shapes every provider's payloads and every
// verification.updated event repeat cost a back-reference instead of their
// bytes: the providers' golden bodies (testdata, not in the dictionaries)
// seal in 0.37 of their size, against 0.55 without a dictionary. One
// dictionary per column, because priming a writer hashes its whole
// dictionary at every seal: the event data's, sealed by SQLite's one writer
// inside its transaction, is 1.6 KB, not the bodies' 6.9 KB (an event seals
// in 12 µs instead of 18, 4 B larger).
//
// They are data, built from synthetic samples only: `go run
// ./internal/provider/sealdict internal/hub/sealdict` (see that command)
// joins the providers' own simulated callbacks (Build, with invented
// references and the invented people their builders default to) and the
// event data they make; nothing in them comes from a real webhook. They are
// frozen: every value sealed with them needs these exact bytes to open,
// years later (TestSealDictFrozen pins their SHA-256). A better dictionary
// would be a new format, with its own version byte, beside this one.
var (
	//go:embed sealdict/body-1.bin
	bodyDict1 []byte
	//go:embed sealdict/event-1.bin
	eventDict1 []byte
)

// deflateLevel is the flate level of format 4: the fastest that uses the
// dictionary (BestSpeed ignores it: compress/flate fills no window below
// level 2; the harness's bodies come out 5 times larger). Most of a seal's
// cost is the same at every level: a Reset clears the writer's 640 KB of
// hash tables and hashes the dictionary again. The default level (6) seals
// bodies 2.7 % and event data 3.7 % smaller (262.9 against 270.2 B, 160.8
// against 167.0, mean) for 10 % and 6.5 % more instructions per seal
// (BenchmarkSeal under callgrind: 437,000 against 398,000; 257,000 against
// 242,000). What is frozen is the format, raw deflate with the column's
// dictionary, not the encoder: a faster one (whose priming does not clear
// 640 KB per value) could replace compress/flate's without a new version,
// since any inflater opens what it writes.
const deflateLevel = 2

// maxInflated bounds what a format 4 value opens to, and so what Seal
// compresses: a larger plaintext is sealed as it is (format 3). A value
// that passed GCM was sealed by a key holder, so this guards against a
// bug or a hostile key holder, not against tampering (which GCM catches).
const maxInflated = 16 << 20

// codecs compress the values of the columns Seal compresses: JSON
// payloads, large and alike. Secrets and keys are random and short;
// dispatch content is small and rare, and the one place where text a
// provider chose (the message) sits beside a secret (the code), which is
// where compression's length leak could matter.
var codecs = map[string]*codec{SealedMessageBody: newCodec(bodyDict1), SealedEventData: newCodec(eventDict1)}

// codec compresses with one dictionary: it pools flate writers primed with
// it (one is hundreds of KB, never to be allocated per value) and readers
// (each has a 32 KiB window).
type codec struct {
	dict      []byte
	deflaters sync.Pool
	inflaters sync.Pool
}

func newCodec(dict []byte) *codec {
	c := &codec{dict: dict}
	c.deflaters.New = func() any {
		w, err := flate.NewWriterDict(nil, deflateLevel, dict)
		if err != nil {
			panic(err) // deflateLevel is a valid level
		}
		return &deflater{w: w, pool: &c.deflaters}
	}
	return c
}

// deflater is a pooled flate writer and the buffer it writes to.
type deflater struct {
	w    *flate.Writer
	buf  bytes.Buffer
	pool *sync.Pool
}

// deflate returns p compressed and true, or false when that does not make
// it smaller. The bytes are valid until put back with release.
func (c *codec) deflate(p []byte) (*deflater, bool) {
	if len(p) > maxInflated {
		return nil, false
	}
	d := c.deflaters.Get().(*deflater)
	d.buf.Reset()
	d.w.Reset(&d.buf)
	// Writes to a bytes.Buffer do not fail.
	d.w.Write(p)
	d.w.Close()
	if d.buf.Len() >= len(p) {
		d.release()
		return nil, false
	}
	return d, true
}

// release puts d back in its pool, without its buffer if that grew large:
// a rare large value should not stay in memory, nor cost the next value a
// new writer.
func (d *deflater) release() {
	if d.buf.Cap() > 64<<10 {
		d.buf = bytes.Buffer{}
	}
	d.pool.Put(d)
}

// errInflate is wrapped by ErrDecrypt for a format 4 value that opened but
// does not decompress within maxInflated.
var errInflate = errors.New("compressed value does not inflate")

// inflate returns z decompressed, at most maxInflated bytes.
func (c *codec) inflate(z []byte) ([]byte, error) {
	src := bytes.NewReader(z)
	r, _ := c.inflaters.Get().(io.ReadCloser)
	if r == nil {
		r = flate.NewReaderDict(src, c.dict)
	} else if err := r.(flate.Resetter).Reset(src, c.dict); err != nil {
		return nil, err
	}
	defer c.inflaters.Put(r)
	out := bytes.NewBuffer(make([]byte, 0, 8*len(z)))
	n, err := out.ReadFrom(io.LimitReader(r, maxInflated+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w: %w", ErrDecrypt, errInflate, err)
	case n > maxInflated:
		return nil, fmt.Errorf("%w: %w: more than %d bytes", ErrDecrypt, errInflate, maxInflated)
	}
	return out.Bytes(), nil
}
