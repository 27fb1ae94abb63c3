// Command sealdict writes the preset dictionaries that hub compresses
// sealed values with, one per compressed column: `go run
// ./internal/provider/sealdict internal/hub/sealdict` writes body-1.bin
// (message bodies) and event-1.bin (event data).
//
// They are built from synthetic samples only: each provider's own Build
// output for every event it simulates, with invented references (and the
// invented people the builders default to), as Parse leaves it to be
// stored, and the verification.updated event data the first observation of
// each provider's callbacks makes. Nothing in them comes from a real
// webhook. Deflate finds a match more cheaply the nearer it is to the end
// of the dictionary, so the samples go from the rarest to the most
// frequent.
//
// A dictionary is frozen once data is sealed with it: this command says how
// version 1 was made, and running it again after the providers change gives
// other dictionaries, which would be a new format in hub, never new
// version 1 files.
package main

import (
	"bytes"
	"compress/flate"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/fractal"
	"github.com/verihook/verihook/internal/provider/idenfy"
	"github.com/verihook/verihook/internal/provider/identomat"
	"github.com/verihook/verihook/internal/provider/kycaid"
)

func main() {
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: sealdict DIR (internal/hub/sealdict)") }
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	body, event, err := build()
	if err == nil {
		err = os.WriteFile(filepath.Join(flag.Arg(0), "body-1.bin"), body, 0o644)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(flag.Arg(0), "event-1.bin"), event, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sealdict:", err)
		os.Exit(1)
	}
}

// maxDict caps a dictionary: version 1 was made when compress/flate's
// writer hashed it again at every seal (hub's lz hashes it once), and
// deflate's window is 32 KiB.
const maxDict = 8 << 10

func build() (body, event []byte, err error) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var bodies, events [][]byte
	for _, p := range []provider.Provider{identomat.New(), idenfy.New(), kycaid.New(), fractal.New()} {
		for i, event := range p.Events() {
			ref := fmt.Sprintf("0f6c2a9e-41b7-4d3a-9c58-%012d", 7310+i)
			f := provider.Fields{Ref: ref, ApplicantRef: fmt.Sprintf("customer-%d", 5021+i), EventID: "e-" + ref, Time: at}
			body, h, err := p.Build(event, f)
			if err != nil {
				return nil, nil, fmt.Errorf("build %s %s: %w", p.Name(), event, err)
			}
			parsed, err := p.Parse(h, body)
			if err != nil {
				return nil, nil, fmt.Errorf("parse %s %s: %w", p.Name(), event, err)
			}
			bodies = append(bodies, parsed.Body)
			if len(parsed.Observations) == 0 || len(events) > 0 && bytes.Contains(events[len(events)-1], []byte(`"provider":"`+p.Name()+`"`)) {
				continue // one event per provider: their events differ in values, not keys
			}
			o := parsed.Observations[0]
			o.Source, o.Provider, o.ReceivedAt, o.MessageID = p.Name()+"-main", p.Name(), at, "msg_0000000000000000000000000"
			v, _, _ := hub.Apply(hub.Verification{}, false, o)
			v.ID = "ver_0000000000000000000000000"
			events = append(events, hub.UpdatedEvent("evt_0000000000000000000000000", v, "", o).Data)
		}
	}
	// The bodies greedily: each put before the dictionary so far, so that
	// the first (the providers' main events) stay nearest its end, unless
	// the dictionary so far compresses it to a quarter already (another
	// status of the same event) or it would not fit.
	for _, s := range bodies {
		if len(body)+len(s) > maxDict || compressed(body, s)*4 < len(s) {
			continue
		}
		body = append(slices.Clone(s), body...)
	}
	// One event of each provider: every event has the same keys, and
	// each provider its own values of some.
	return body, bytes.Join(events, nil), nil
}

// compressed returns the size of s deflated with dict.
func compressed(dict, s []byte) int {
	var b bytes.Buffer
	w, _ := flate.NewWriterDict(&b, flate.DefaultCompression, dict)
	w.Write(s)
	w.Close()
	return b.Len()
}
