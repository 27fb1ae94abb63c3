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
// seal in 0.39 of their size (0.37 with compress/flate's writer at level 2),
// against 0.55 without a dictionary. One dictionary per column, each of what
// its column holds: the event data's is 1.6 KB, the bodies' 6.9 KB.
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

// codec compresses with one dictionary: lz, which hashed it once, deflates
// (see lz for why not compress/flate's writer), and pooled flate readers
// (each has a 32 KiB window) inflate.
type codec struct {
	dict      []byte
	lz        *lz
	deflaters sync.Pool
	inflaters sync.Pool
}

func newCodec(dict []byte) *codec {
	c := &codec{dict: dict, lz: newLZ(dict)}
	c.deflaters.New = func() any { return &deflater{pool: &c.deflaters} }
	return c
}

// deflater is a pooled lz state, with the buffer it writes to.
type deflater struct {
	s    lzState
	pool *sync.Pool
}

// deflate returns p compressed and true, or false when that does not make
// it smaller. The bytes are valid until put back with release.
func (c *codec) deflate(p []byte) ([]byte, *deflater, bool) {
	if len(p) > maxInflated {
		return nil, nil, false
	}
	d := c.deflaters.Get().(*deflater)
	z := c.lz.deflate(&d.s, p)
	if len(z) >= len(p) {
		d.release()
		return nil, nil, false
	}
	return z, d, true
}

// release puts d back in its pool, without its buffers if they grew large:
// a rare large value should not stay in memory.
func (d *deflater) release() {
	if cap(d.s.buf) > 64<<10 || cap(d.s.out.out) > 64<<10 {
		d.s.buf, d.s.out.out = nil, nil
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
