package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// receiver is the endpoint verihook delivers to: it matches each event to
// the webhook it came from by the provider reference in the event data and
// measures end-to-end latency, from the start of the provider's POST to the
// event's arrival here.
type receiver struct {
	secret string // whsec_…
	key    []byte
	verify bool

	base   time.Time      // starts are offsets from base (monotonic)
	starts []atomic.Int64 // per payload: start offset + 1; 0 while unsent
	index  map[string]int // provider reference -> payload index

	srv *http.Server
	url string

	mu      sync.Mutex
	seen    map[string]bool // webhook-id: deliveries are at-least-once
	lat     []time.Duration
	dups    int
	unknown int
	badSig  int
	got     atomic.Int64
}

func newReceiver(verify bool) *receiver {
	key := make([]byte, 32)
	rand.Read(key)
	return &receiver{
		secret: "whsec_" + base64.StdEncoding.EncodeToString(key), key: key, verify: verify,
		base: time.Now(),
	}
}

// reset prepares for a run of payloads.
func (r *receiver) reset(payloads []payload) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = make([]atomic.Int64, len(payloads))
	r.index = make(map[string]int, len(payloads))
	for i, p := range payloads {
		r.index[p.ref] = i
	}
	r.seen = map[string]bool{}
	r.lat, r.dups, r.unknown, r.badSig = nil, 0, 0, 0
	r.got.Store(0)
}

// started records when payload i's POST started.
func (r *receiver) started(i int, t time.Time) {
	r.starts[i].Store(int64(t.Sub(r.base)) + 1)
}

func (r *receiver) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.url = "http://" + ln.Addr().String() + "/hook"
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go r.srv.Serve(ln)
	return nil
}

func (r *receiver) close() { r.srv.Close() }

// event is the part of a verification.updated event the receiver reads.
type event struct {
	Data struct {
		Verification struct {
			ProviderRef string `json:"provider_ref"`
		} `json:"verification"`
	} `json:"data"`
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Since(r.base)
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id := req.Header.Get("webhook-id")
	if r.verify && !r.checkSignature(req.Header, id, body) {
		r.mu.Lock()
		r.badSig++
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev event
	json.Unmarshal(body, &ev)
	w.WriteHeader(http.StatusNoContent)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[id] {
		r.dups++
		return
	}
	r.seen[id] = true
	i, ok := r.index[ev.Data.Verification.ProviderRef]
	if !ok {
		r.unknown++
		return
	}
	st := r.starts[i].Load()
	if st == 0 {
		r.unknown++
		return
	}
	r.lat = append(r.lat, now-time.Duration(st-1))
	r.got.Add(1)
}

// checkSignature verifies a Standard Webhooks signature under the
// receiver's secret.
func (r *receiver) checkSignature(h http.Header, id string, body []byte) bool {
	return verifySignature(r.key, h, id, body)
}

// verifySignature verifies a Standard Webhooks signature (v1, HMAC-SHA256
// of "id.timestamp.body") under key.
func verifySignature(key []byte, h http.Header, id string, body []byte) bool {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if v, b64, ok := strings.Cut(sig, ","); ok && v == "v1" {
			if got, err := base64.StdEncoding.DecodeString(b64); err == nil && hmac.Equal(got, want) {
				return true
			}
		}
	}
	return false
}

// wait waits until want events arrived or timeout passed.
func (r *receiver) wait(want int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for r.got.Load() < int64(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// e2eResult is what the receiver saw of one run.
type e2eResult struct {
	Received, Expected int
	Duplicates         int
	Unknown, BadSig    int
	Latency            latency
}

func (r *receiver) result(expected int) e2eResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return e2eResult{
		Received: len(r.lat), Expected: expected, Duplicates: r.dups, Unknown: r.unknown, BadSig: r.badSig,
		Latency: summarize(r.lat),
	}
}
