// Package providertest is the conformance harness every provider package
// runs: a build/sign/verify/parse round trip for each event, tamper and
// wrong-key checks, golden files under testdata/, and a fuzz target.
package providertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

var update = flag.Bool("update", false, "rewrite testdata/*/want.json with the current output")

// RoundTrip checks, for every event p.Events lists, that a built and signed
// callback verifies and parses into at least one observation or event with
// the event's name and a dedup key, that the stored body holds no secret,
// that the same build dedups alike and another reference does not, and that a
// tampered body, a wrong secret and a missing signature are all refused.
// secrets must satisfy p.CheckSecrets; wrong must be valid secrets of
// another account (other values), which Verify must refuse.
func RoundTrip(t *testing.T, p provider.Provider, secrets, wrong map[string]string, opts ...Option) {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := p.CheckSecrets(secrets); err != nil {
		t.Fatalf("CheckSecrets(good secrets) = %v", err)
	}
	if err := p.CheckSecrets(map[string]string{}); hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("CheckSecrets(no secrets) = %v, want an invalid error", err)
	}
	if len(p.Events()) == 0 {
		t.Fatal("Events() is empty")
	}
	for _, event := range p.Events() {
		t.Run(event, func(t *testing.T) {
			body, h := Signed(t, p, secrets, event, provider.Fields{Ref: "ref-1"})
			if err := p.Verify(secrets, h, body); err != nil {
				t.Fatalf("Verify(signed) = %v", err)
			}
			parsed, err := p.Parse(h, body)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			if !strings.EqualFold(parsed.EventName, event) {
				t.Errorf("EventName = %q, want %q", parsed.EventName, event)
			}
			if parsed.DedupKey == "" {
				t.Error("DedupKey is empty")
			}
			if len(parsed.Observations)+len(parsed.Events) == 0 {
				t.Error("parsed to no observation and no event")
			}
			for _, o := range parsed.Observations {
				if o.ProviderRef != "ref-1" || o.Status == "" || o.ProviderEvent == "" {
					t.Errorf("observation %+v: want provider_ref ref-1, a status and a provider event", o)
				}
			}
			for name, s := range secrets {
				if bytes.Contains(parsed.Body, []byte(s)) {
					t.Errorf("stored body holds secret %q", name)
				}
			}

			again, h2 := Signed(t, p, secrets, event, provider.Fields{Ref: "ref-1"})
			if p2, err := p.Parse(h2, again); err != nil || p2.DedupKey != parsed.DedupKey {
				t.Errorf("same build: dedup key %q (err %v), want %q", p2.DedupKey, err, parsed.DedupKey)
			}
			other, h3 := Signed(t, p, secrets, event, provider.Fields{Ref: "ref-2"})
			if p3, err := p.Parse(h3, other); err != nil || p3.DedupKey == parsed.DedupKey {
				t.Errorf("other ref: dedup key %q (err %v), want one other than %q", p3.DedupKey, err, parsed.DedupKey)
			}

			if err := p.Verify(wrong, h, body); hub.ErrorCode(err) != hub.EUNAUTHORIZED {
				t.Errorf("Verify(wrong secret) = %v, want unauthorized", err)
			}
			tampered := bytes.Replace(body, []byte("ref-1"), []byte("ref-X"), 1)
			if err := p.Verify(secrets, h, tampered); !o.keyInBody && hub.ErrorCode(err) != hub.EUNAUTHORIZED {
				t.Errorf("Verify(tampered body) = %v, want unauthorized", err)
			}
			unsigned, uh := Built(t, p, event, provider.Fields{Ref: "ref-1"})
			if err := p.Verify(secrets, uh, unsigned); hub.ErrorCode(err) != hub.EUNAUTHORIZED {
				t.Errorf("Verify(unsigned) = %v, want unauthorized", err)
			}
		})
	}
	if _, _, err := p.Build("no-such-event", provider.Fields{}); hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("Build(unknown event) = %v, want invalid", err)
	}
}

// Option adjusts RoundTrip to a provider's scheme.
type Option func(*options)

type options struct{ keyInBody bool }

// KeyInBody is for providers whose shared key travels in the body, with no
// MAC (Identomat): a body changed elsewhere still verifies, so RoundTrip does
// not expect a tampered body to be refused.
func KeyInBody() Option { return func(o *options) { o.keyInBody = true } }

// Built returns the unsigned body and headers of event.
func Built(t testing.TB, p provider.Provider, event string, f provider.Fields) ([]byte, http.Header) {
	t.Helper()
	body, h, err := p.Build(event, f)
	if err != nil {
		t.Fatalf("Build(%s) = %v", event, err)
	}
	if h == nil {
		h = http.Header{}
	}
	return body, h
}

// Signed returns the body and headers of event as the provider sends them.
func Signed(t testing.TB, p provider.Provider, secrets map[string]string, event string, f provider.Fields) ([]byte, http.Header) {
	t.Helper()
	body, h := Built(t, p, event, f)
	body, err := p.Sign(secrets, h, body)
	if err != nil {
		t.Fatalf("Sign(%s) = %v", event, err)
	}
	return body, h
}

// Golden runs every case under dir (normally "testdata"). A case is a folder
// named by its outcome (ok-…, bad-signature-…, quarantined-…) holding:
//
//   - body: the raw request body, byte for byte;
//   - headers.json (optional): {"Header-Name": "value"}. Without it the
//     harness signs body with p.Sign and secrets; with it the headers are sent
//     as they are (for official vectors and bad signatures);
//   - want.json: the outcome, rewritten by go test -update;
//   - preview.json, for a request Verify accepts: the preview of the body
//     stored, with the keys p shows (PreviewKeys), rewritten by -update.
func Golden(t *testing.T, p provider.Provider, secrets map[string]string, dir string) {
	t.Helper()
	provider.NewRegistry(p) // registers p's preview keys
	cases, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cases {
		if !c.IsDir() || c.Name() == "fuzz" { // testdata/fuzz: go test -fuzz's corpus
			continue
		}
		n++
		t.Run(c.Name(), func(t *testing.T) {
			caseDir := filepath.Join(dir, c.Name())
			body, err := os.ReadFile(filepath.Join(caseDir, "body"))
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			if raw, err := os.ReadFile(filepath.Join(caseDir, "headers.json")); err == nil {
				var m map[string]string
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatalf("headers.json: %v", err)
				}
				for k, v := range m {
					h.Set(k, v)
				}
			} else if body, err = p.Sign(secrets, h, body); err != nil {
				t.Fatalf("Sign = %v", err)
			}
			golden(t, filepath.Join(caseDir, "want.json"), Outcome(p, secrets, h, body))
			if stored, ok := Stored(p, secrets, h, body); ok {
				golden(t, filepath.Join(caseDir, "preview.json"), append(hub.PreviewOf(p.Name(), stored), '\n'))
			}
		})
	}
	if n == 0 {
		t.Fatalf("no cases under %s", dir)
	}
}

// golden compares got with the file at path, or writes it there with
// -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it)\n got: %s\nwant: %s", path, got, want)
	}
}

// Stored returns the body the ingest service stores of an authenticated
// request (the one Parse returns, or else the request's), and false for a
// request that Verify refuses.
func Stored(p provider.Provider, secrets map[string]string, h http.Header, body []byte) ([]byte, bool) {
	if p.Verify(secrets, h, body) != nil {
		return nil, false
	}
	if parsed, _ := p.Parse(h, body); parsed.Body != nil {
		return parsed.Body, true
	}
	return body, true
}

// outcome is the golden rendering of what verify and parse made of a request.
type outcome struct {
	Error        string            `json:"error,omitempty"`
	ErrorMessage string            `json:"error_message,omitempty"`
	EventName    string            `json:"event_name,omitempty"`
	DedupKey     string            `json:"dedup_key,omitempty"`
	Dedup        string            `json:"dedup,omitempty"` // how long the key dedups; empty: for ever
	StoredBody   json.RawMessage   `json:"stored_body,omitempty"`
	Observations []hub.Observation `json:"observations,omitempty"`
	Events       []draft           `json:"events,omitempty"`
}

type draft struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// Outcome verifies and parses one request and renders the result as
// indented JSON: the golden form.
func Outcome(p provider.Provider, secrets map[string]string, h http.Header, body []byte) []byte {
	var o outcome
	if err := p.Verify(secrets, h, body); err != nil {
		o.Error, o.ErrorMessage = hub.ErrorCode(err), hub.ErrorMessage(err)
	} else {
		parsed, err := p.Parse(h, body)
		if err != nil {
			o.Error, o.ErrorMessage = hub.ErrorCode(err), hub.ErrorMessage(err)
		}
		o.EventName, o.DedupKey, o.Observations = parsed.EventName, parsed.DedupKey, parsed.Observations
		switch d := parsed.Dedup; {
		case d.WhileCurrent:
			o.Dedup = "while current"
		case d.Window > 0:
			o.Dedup = "within " + d.Window.String()
		}
		if !bytes.Equal(parsed.Body, body) && json.Valid(parsed.Body) {
			o.StoredBody = parsed.Body
		}
		for _, e := range parsed.Events {
			o.Events = append(o.Events, draft{e.Type, e.Data})
		}
	}
	out, _ := json.MarshalIndent(o, "", "  ")
	return append(out, '\n')
}

// Fuzz runs verify and parse over arbitrary bodies, seeded with every event
// p builds: each input is tried unsigned, signed, and with a signature of
// other bytes. It fails on a panic or on an error that is not a *hub.Error
// of the expected codes.
func Fuzz(f *testing.F, p provider.Provider, secrets map[string]string) {
	for _, e := range p.Events() {
		body, _, err := p.Build(e, provider.Fields{Ref: "seed"})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		h := http.Header{}
		if err := p.Verify(secrets, h, body); err == nil {
			t.Fatal("an unsigned body verified")
		} else if hub.ErrorCode(err) != hub.EUNAUTHORIZED {
			t.Fatalf("Verify(unsigned) = %v, want unauthorized", err)
		}
		signed, err := p.Sign(secrets, h, body)
		if err != nil {
			return // Identomat cannot sign a body that is not a JSON object
		}
		if err := p.Verify(secrets, h, signed); err != nil {
			return // a body the provider cannot authenticate (Fractal: type with no secret)
		}
		parsed, err := p.Parse(h, signed)
		var herr *hub.Error
		if err != nil && (!errors.As(err, &herr) || herr.Code != hub.EUNRECOGNIZED) {
			t.Fatalf("Parse = %v, want nil or an unrecognized *hub.Error", err)
		}
		if parsed.DedupKey == "" && err == nil {
			t.Fatal("parsed without a dedup key")
		}
	})
}
