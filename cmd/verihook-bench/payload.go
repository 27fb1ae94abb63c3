package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime"
	"sync"

	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/fractal"
	"github.com/verihook/verihook/internal/provider/idenfy"
	"github.com/verihook/verihook/internal/provider/identomat"
	"github.com/verihook/verihook/internal/provider/kycaid"
)

// benchSource is one of the four sources the harness configures and signs
// for. The secrets are fixed so that a seeded data dir, a running target and
// the harness agree on them; they protect nothing.
type benchSource struct {
	ID       string
	Provider provider.Provider
	Secrets  map[string]string
}

var benchSources = []benchSource{
	{"identomat-bench", identomat.New(), map[string]string{"callback_api_key": "bench-identomat-callback-api-key"}},
	{"idenfy-bench", idenfy.New(), map[string]string{"signing_key": "bench-idenfy-signing-key"}},
	{"kycaid-bench", kycaid.New(), map[string]string{"api_token": "bench-kycaid-api-token"}},
	{"fractal-bench", fractal.New(), map[string]string{"webhook_secret": "bench-fractal-webhook-secret"}},
}

func registry() provider.Registry {
	ps := make([]provider.Provider, len(benchSources))
	for i, s := range benchSources {
		ps[i] = s.Provider
	}
	return provider.NewRegistry(ps...)
}

// mixEntry is one kind of webhook in the load mix and its share (out of 100).
type mixEntry struct {
	source int // index in benchSources
	event  string
	status string
	share  int
}

// mix is the load's blend of providers and events. iDenfy's results carry
// the whole document data (~2.7 KB); KYCAID's completed webhook the applicant
// (~1.4 KB); the others are small. Every entry is a verification status, so
// every accepted webhook produces exactly one verification.updated event,
// which the end-to-end receiver matches by provider reference.
var mix = []mixEntry{
	{1, idenfy.EventManualFinished, "APPROVED", 20},
	{1, idenfy.EventAutoFinished, "APPROVED", 10},
	{2, kycaid.EventVerificationCompleted, "true", 15},
	{2, kycaid.EventVerificationStatusChanged, "pending", 10},
	{0, identomat.EventSessionChange, "APPROVED", 25},
	{3, "verification_approved", "", 20},
}

// mixTable maps i%100 to a mix entry, interleaved (i*37%100) so that any
// stretch of requests holds every kind.
var mixTable = func() [100]int {
	var flat []int
	for j, m := range mix {
		for range m.share {
			flat = append(flat, j)
		}
	}
	if len(flat) != 100 {
		panic("mix shares must add up to 100")
	}
	var t [100]int
	for i := range t {
		t[i] = flat[i*37%100]
	}
	return t
}()

// payload is one signed webhook, ready to POST to /ingest/{source}.
type payload struct {
	source string
	ref    string // the provider reference: unique, echoed in the normalized event
	body   []byte
	header http.Header
}

// newRunID returns a random prefix that makes the references of one
// generation unique across runs against the same database.
func newRunID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// makePayload builds and signs webhook number i of the run, with the
// provider packages' own Build and Sign: byte for byte what the provider
// sends. Each gets a unique reference (and KYCAID a unique request_id), so
// that none is a duplicate.
func makePayload(runID string, i int) (payload, error) {
	m := mix[mixTable[i%100]]
	src := benchSources[m.source]
	ref := fmt.Sprintf("bench-%s-%09d", runID, i)
	f := provider.Fields{Ref: ref, ApplicantRef: "user-" + ref, Status: m.status, EventID: "req-" + ref}
	body, h, err := src.Provider.Build(m.event, f)
	if err != nil {
		return payload{}, fmt.Errorf("build %s %s: %w", src.Provider.Name(), m.event, err)
	}
	body, err = src.Provider.Sign(src.Secrets, h, body)
	if err != nil {
		return payload{}, fmt.Errorf("sign %s %s: %w", src.Provider.Name(), m.event, err)
	}
	return payload{source: src.ID, ref: ref, body: body, header: h}, nil
}

// makePayloads builds n payloads numbered from first, on every CPU.
func makePayloads(runID string, first, n int) ([]payload, error) {
	out := make([]payload, n)
	workers := runtime.GOMAXPROCS(0)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				p, err := makePayload(runID, first+i)
				if err != nil {
					mu.Lock()
					ferr = err
					mu.Unlock()
					return
				}
				out[i] = p
			}
		}()
	}
	wg.Wait()
	return out, ferr
}

// mixSummary describes the payloads: count and mean size per provider.
func mixSummary(ps []payload) string {
	type agg struct{ n, bytes int }
	by := map[string]*agg{}
	var order []string
	for _, p := range ps {
		a := by[p.source]
		if a == nil {
			a = &agg{}
			by[p.source] = a
			order = append(order, p.source)
		}
		a.n++
		a.bytes += len(p.body)
	}
	s := ""
	for _, k := range order {
		a := by[k]
		s += fmt.Sprintf(" %s %d%% (mean %d B)", k, a.n*100/len(ps), a.bytes/a.n)
	}
	return s
}
