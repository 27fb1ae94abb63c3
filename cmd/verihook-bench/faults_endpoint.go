package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// flakyEndpoint is an endpoint the campaign runs on loopback: it answers at
// random 200, 500, 429 with Retry-After, nothing until the delivery times
// out, a connection reset or a slow 200, and records what it received.
type flakyEndpoint struct {
	id      string
	secret  string
	key     []byte
	ordered bool
	types   []string // event_types; empty: all
	sources []string // sources; empty: all
	failPct int      // the share of answers that are not a prompt 200
	timeout time.Duration
	srv     *http.Server
	url     string

	mu       sync.Mutex
	rnd      *mrand.Rand
	ok       map[string]int   // event id -> 2xx answers
	arrivals map[string][]int // verification id -> versions, in order of arrival (every attempt)
	answers  map[string]int   // answer kind -> count
	badSig   int
	misfit   []string // events it should not have received (type or source filter), or with a wrong webhook-id
}

func newFlakyEndpoint(id string, seed uint64, failPct int, timeout time.Duration) (*flakyEndpoint, error) {
	key := make([]byte, 24)
	rand.Read(key)
	e := &flakyEndpoint{
		id: id, secret: "whsec_" + base64.StdEncoding.EncodeToString(key), key: key, failPct: failPct, timeout: timeout,
		rnd: mrand.New(mrand.NewPCG(seed, 0xe4d)), ok: map[string]int{}, arrivals: map[string][]int{}, answers: map[string]int{},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.url = "http://" + ln.Addr().String() + "/hook"
	e.srv = &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go e.srv.Serve(ln)
	return e, nil
}

// yaml is the endpoint's entry in verihook's configuration.
func (e *flakyEndpoint) yaml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - id: %s\n    url: %s\n    secret: %q\n", e.id, e.url, e.secret)
	if len(e.types) > 0 {
		fmt.Fprintf(&b, "    event_types: [%s]\n", strings.Join(e.types, ", "))
	}
	if len(e.sources) > 0 {
		fmt.Fprintf(&b, "    sources: [%s]\n", strings.Join(e.sources, ", "))
	}
	if e.ordered {
		b.WriteString("    ordered: true\n")
	}
	return b.String()
}

// subscribed says whether the endpoint is to receive an event of this type
// from this source.
func (e *flakyEndpoint) subscribed(typ, source string) bool {
	if len(e.sources) > 0 && !slices.Contains(e.sources, source) {
		return false
	}
	if len(e.types) == 0 {
		return true
	}
	return slices.ContainsFunc(e.types, func(f string) bool {
		prefix, ok := strings.CutSuffix(f, ".*")
		return f == typ || (ok && strings.HasPrefix(typ, prefix+"."))
	})
}

// deliveredEvent is what the endpoint reads of a delivery.
type deliveredEvent struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Source string `json:"source"`
	Data   struct {
		Verification *struct {
			ID      string `json:"id"`
			Version int    `json:"version"`
		} `json:"verification"`
	} `json:"data"`
}

func (e *flakyEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var ev deliveredEvent
	json.Unmarshal(body, &ev)
	id := r.Header.Get("webhook-id")

	e.mu.Lock()
	if !verifySignature(e.key, r.Header, id, body) {
		e.badSig++
	}
	if id != ev.ID || !e.subscribed(ev.Type, ev.Source) {
		e.misfit = append(e.misfit, fmt.Sprintf("%s (%s from %s, webhook-id %q)", ev.ID, ev.Type, ev.Source, id))
	}
	if v := ev.Data.Verification; v != nil {
		e.arrivals[v.ID] = append(e.arrivals[v.ID], v.Version)
	}
	kind := "ok"
	if roll := e.rnd.IntN(100); roll < e.failPct {
		kind = []string{"500", "429", "timeout", "reset", "slow"}[roll%5]
	}
	e.answers[kind]++
	if kind == "ok" || kind == "slow" {
		// Counted once the answer is decided: the worker may still lose it.
		e.ok[ev.ID]++
	}
	e.mu.Unlock()

	switch kind {
	case "ok":
		w.WriteHeader(http.StatusOK)
	case "slow":
		time.Sleep(e.timeout / 3)
		w.WriteHeader(http.StatusOK)
	case "500":
		w.WriteHeader(http.StatusInternalServerError)
	case "429":
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case "timeout":
		select {
		case <-r.Context().Done():
		case <-time.After(e.timeout + 500*time.Millisecond):
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	case "reset":
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) // RST, not FIN
				}
				c.Close()
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway)
	}
}

func (e *flakyEndpoint) close() { e.srv.Close() }
