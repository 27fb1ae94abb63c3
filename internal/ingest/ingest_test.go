package ingest

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/store/sqlite/sqlitetest"
)

// fake is a provider whose Verify accepts the secret "ok" in the Key header
// and whose Parse does what parse says.
type fake struct {
	provider.Provider // nil: only the methods below are called
	name              string
	parse             func(h http.Header, body []byte) (hub.Parsed, error)
}

func (f fake) Name() string { return f.name }

func (f fake) Verify(secrets map[string]string, h http.Header, _ []byte) error {
	if h.Get("Key") != secrets["key"] {
		return provider.Unauthorized("bad key")
	}
	if et := h.Get(provider.HeaderEventType); et == "no_secret" {
		return &provider.MissingSecretError{EventType: et, Documented: true, Secret: "keys." + et}
	} else if et != "" && et != "fine" {
		return &provider.MissingSecretError{EventType: et, Secret: "keys." + et}
	}
	return nil
}

func (f fake) Parse(h http.Header, body []byte) (hub.Parsed, error) { return f.parse(h, body) }

// newService returns a Service on a fresh SQLite store holding one source,
// "src", of the provider "fake".
func newService(t *testing.T, p fake) (*Service, hub.Store) {
	t.Helper()
	ctx := context.Background()
	st := sqlitetest.Open(t)
	if err := st.UpsertSource(ctx, hub.Source{ID: "src", Provider: "fake", Secrets: map[string]string{"key": "ok"}}); err != nil {
		t.Fatal(err)
	}
	reg := provider.Registry{}
	if p.name != "" {
		reg[p.name] = p
	}
	return &Service{Store: st, Providers: reg}, st
}

// messages returns the source's stored messages of one status.
func messages(t *testing.T, st hub.Store, status hub.MessageStatus) []hub.Message {
	t.Helper()
	ms, _, err := st.Messages(context.Background(), hub.MessageFilter{Source: "src", Status: status})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func request(eventType string) hub.Callback {
	return hub.Callback{SourceID: "src", EventType: eventType, RemoteAddr: "192.0.2.1",
		Header: http.Header{"Key": {"ok"}}, Body: []byte(`{"type":"x"}`)}
}

// TestParseFailureIsQuarantined: an authenticated message whose adapter
// fails with anything but EUNRECOGNIZED is kept, quarantined with a reason,
// and answered 200: a retry would fail the same way.
func TestParseFailureIsQuarantined(t *testing.T) {
	t.Parallel()
	svc, st := newService(t, fake{name: "fake", parse: func(_ http.Header, body []byte) (hub.Parsed, error) {
		return hub.Parsed{Body: body, EventName: "x"}, hub.Errorf(hub.EINVALID, "level is out of range")
	}})
	res, err := svc.Receive(context.Background(), request(""))
	if err != nil || res.Status != hub.MessageQuarantined || res.Duplicate {
		t.Fatalf("Receive = %+v, %v; want quarantined", res, err)
	}
	q := messages(t, st, hub.MessageQuarantined)
	if len(q) != 1 || q[0].Reason != "the adapter failed on this message (level is out of range); see the log" {
		t.Errorf("quarantined messages %+v", q)
	}
}

// TestParsePanicAsksForRetry: a panicking adapter stores nothing (an in-body
// secret may still be in the body) and answers 503, with an audit row.
func TestParsePanicAsksForRetry(t *testing.T) {
	t.Parallel()
	svc, st := newService(t, fake{name: "fake", parse: func(http.Header, []byte) (hub.Parsed, error) {
		var m map[string]int
		m["boom"]++
		return hub.Parsed{}, nil
	}})
	_, err := svc.Receive(context.Background(), request(""))
	if hub.ErrorCode(err) != hub.EUNAVAILABLE {
		t.Fatalf("Receive = %v, want unavailable", err)
	}
	if q := messages(t, st, hub.MessageQuarantined); len(q) != 0 {
		t.Errorf("stored %+v", q)
	}
	if r := messages(t, st, hub.MessageRejected); len(r) != 1 || r[0].HTTPStatus != http.StatusServiceUnavailable {
		t.Errorf("audit rows %+v, want one 503", r)
	}
}

// TestUnregisteredProviderAsksForRetry: a stored source whose provider this
// build lacks answers 503 (not 400: the provider would stop retrying), with
// an audit row naming the provider.
func TestUnregisteredProviderAsksForRetry(t *testing.T) {
	t.Parallel()
	svc, st := newService(t, fake{})
	_, err := svc.Receive(context.Background(), request(""))
	if hub.ErrorCode(err) != hub.EUNAVAILABLE {
		t.Fatalf("Receive = %v, want unavailable", err)
	}
	r := messages(t, st, hub.MessageRejected)
	if len(r) != 1 || r[0].HTTPStatus != http.StatusServiceUnavailable || r[0].Reason != `provider "fake" is not in this build` {
		t.Errorf("audit rows %+v", r)
	}
}

// TestEventTypeInURL: the URL's event type reaches the provider as
// provider.HeaderEventType, over any copy the request carried; one that is
// no name is refused before anything else.
func TestEventTypeInURL(t *testing.T) {
	t.Parallel()
	var seen []string
	svc, st := newService(t, fake{name: "fake", parse: func(h http.Header, body []byte) (hub.Parsed, error) {
		seen = append(seen, h.Get(provider.HeaderEventType))
		return hub.Parsed{Body: body, EventName: h.Get(provider.HeaderEventType)}, nil
	}})
	ctx := context.Background()
	var missing []string
	svc.MissingSecret = func(source, eventType string) { missing = append(missing, source+"/"+eventType) }

	// Verify refuses the fake's event types with a MissingSecretError; the
	// metric hook sees documented types by name and the rest as "other".
	for _, et := range []string{"no_secret", "attacker-chosen"} {
		if _, err := svc.Receive(ctx, request(et)); hub.ErrorCode(err) != hub.EUNAUTHORIZED {
			t.Errorf("Receive(%s) = %v, want unauthorized", et, err)
		}
	}
	if want := []string{"src/no_secret", "src/other"}; len(missing) != 2 || missing[0] != want[0] || missing[1] != want[1] {
		t.Errorf("MissingSecret saw %q, want %q", missing, want)
	}
	rej := messages(t, st, hub.MessageRejected)
	if len(rej) != 2 || !slices.ContainsFunc(rej, func(m hub.Message) bool {
		return m.Reason == `no secret for event type "attacker-chosen": set keys.attacker-chosen`
	}) {
		t.Errorf("audit rows %+v, want one naming the attacker's type", rej)
	}

	req := request("fine")
	req.Header.Set(provider.HeaderEventType, "forged")
	if _, err := svc.Receive(ctx, req); err != nil || len(seen) != 1 || seen[0] != "fine" {
		t.Fatalf("Receive = %v, provider saw %q; want the URL's event type", err, seen)
	}
	if req.Header.Get(provider.HeaderEventType) != "forged" {
		t.Errorf("Receive changed the caller's header")
	}
	for _, bad := range []string{"a\nb", string(make([]byte, maxEventTypeLen+1)), "\xff"} {
		if _, err := svc.Receive(ctx, request(bad)); hub.ErrorCode(err) != hub.EINVALID {
			t.Errorf("Receive(event type %q) = %v, want invalid", bad, err)
		}
	}
	if len(seen) != 1 {
		t.Errorf("provider saw %q after refused event types", seen)
	}
}
