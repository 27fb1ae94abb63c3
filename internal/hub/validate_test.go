package hub_test

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// wantInvalid fails unless err is an EINVALID *hub.Error whose message
// contains want.
func wantInvalid(t *testing.T, what string, err error, want string) {
	t.Helper()
	if hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("%s = %v, want %s", what, err, hub.EINVALID)
		return
	}
	if !strings.Contains(hub.ErrorMessage(err), want) {
		t.Errorf("%s = %q, want a message with %q", what, hub.ErrorMessage(err), want)
	}
}

// keepTime is a StoreTime that keeps every time, in UTC.
func keepTime(t time.Time, field string) (time.Time, error) { return t.UTC(), nil }

// seenTimes is a StoreTime that records the fields it is asked about,
// truncates to the second, and refuses the field named refuse.
type seenTimes struct {
	fields []string
	refuse string
}

func (s *seenTimes) storeTime(t time.Time, field string) (time.Time, error) {
	s.fields = append(s.fields, field)
	if field == s.refuse {
		return time.Time{}, hub.Errorf(hub.EINVALID, "%s is out of range", field)
	}
	if t.IsZero() {
		return t, nil
	}
	return t.UTC().Truncate(time.Second), nil
}

func TestValidID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"a", "msg_01JD3", "idenfy-main", "v1.2_3-x", strings.Repeat("x", hub.MaxIDLen)} {
		if !hub.ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", hub.MaxIDLen+1), "a b", "a/b", "é", "a\x00", "a%2F", "a,b"} {
		if hub.ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
}

func TestStoreTimeWithin(t *testing.T) {
	t.Parallel()
	first := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	last := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	keep := hub.StoreTimeWithin(first, last, func(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) })
	in := time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.FixedZone("x", 3600))
	for _, tc := range []struct{ t, want time.Time }{
		{time.Time{}, time.Time{}},
		{first, first},
		{last, last},
		{in, in.UTC().Truncate(time.Millisecond)},
	} {
		if got, err := keep(tc.t, "at"); err != nil || got != tc.want {
			t.Errorf("storeTime(%v) = %v, %v; want %v", tc.t, got, err, tc.want)
		}
	}
	_, err := keep(first.Add(-time.Nanosecond), "received_at")
	wantInvalid(t, "storeTime(before first)", err, "received_at 1999-12-31T23:59:59Z is out of range")
	_, err = keep(last.Add(time.Nanosecond), "created_at")
	wantInvalid(t, "storeTime(after last)", err, "created_at 2100-01-01T00:00:00Z is out of range")
}

func TestPageCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		page       hub.Page
		wantLimit  int
		wantCursor string
	}{
		{hub.Page{}, hub.DefaultPageLimit, ""},
		{hub.Page{Limit: 1}, 1, ""},
		{hub.Page{Limit: hub.MaxPageLimit, Cursor: "msg_1"}, hub.MaxPageLimit, "msg_1"},
		{hub.Page{Cursor: "evt_9"}, hub.DefaultPageLimit, "evt_9"},
	} {
		limit, cursor, err := tc.page.Check()
		if err != nil || limit != tc.wantLimit || cursor != tc.wantCursor {
			t.Errorf("%+v.Check() = %d, %q, %v; want %d, %q", tc.page, limit, cursor, err, tc.wantLimit, tc.wantCursor)
		}
	}
	for _, tc := range []struct {
		page hub.Page
		want string
	}{
		{hub.Page{Limit: -1}, "limit must be between 1 and 500"},
		{hub.Page{Limit: hub.MaxPageLimit + 1}, "limit must be between 1 and 500"},
		{hub.Page{Cursor: "not a cursor"}, "invalid cursor"},
		{hub.Page{Limit: 10, Cursor: strings.Repeat("x", hub.MaxIDLen+1)}, "invalid cursor"},
	} {
		_, _, err := tc.page.Check()
		wantInvalid(t, "Check of "+tc.want, err, tc.want)
	}
}

func TestFilterValidate(t *testing.T) {
	t.Parallel()
	valid := []interface{ Validate() error }{
		hub.MessageFilter{}, hub.MessageFilter{Status: hub.MessageAccepted},
		hub.MessageFilter{Status: hub.MessageQuarantined}, hub.MessageFilter{Status: hub.MessageRejected},
		hub.VerificationFilter{}, hub.EventFilter{}, hub.DeliveryFilter{},
		// The page is Page.Check's business, not Validate's.
		hub.MessageFilter{Page: hub.Page{Limit: -1, Cursor: "bad cursor"}},
	}
	for _, st := range hub.Statuses {
		valid = append(valid, hub.VerificationFilter{Status: st})
	}
	for _, typ := range hub.EventTypes {
		valid = append(valid, hub.EventFilter{Type: typ})
	}
	for _, st := range []hub.DeliveryStatus{hub.DeliveryPending, hub.DeliverySucceeded, hub.DeliveryFailed} {
		valid = append(valid, hub.DeliveryFilter{Status: st})
	}
	for _, f := range valid {
		if err := f.Validate(); err != nil {
			t.Errorf("%+v.Validate() = %v", f, err)
		}
	}
	for _, tc := range []struct {
		f    interface{ Validate() error }
		want string
	}{
		{hub.MessageFilter{Status: "lost"}, `unknown message status "lost"`},
		{hub.VerificationFilter{Status: "lost"}, `unknown status "lost"`},
		{hub.VerificationFilter{Status: hub.Status(hub.MessageAccepted)}, `unknown status "accepted"`},
		{hub.EventFilter{Type: "verification.*"}, `unknown event type "verification.*"`},
		{hub.DeliveryFilter{Status: "lost"}, `unknown delivery status "lost"`},
	} {
		wantInvalid(t, "Validate", tc.f.Validate(), tc.want)
	}
}

func TestDeliveryStatusValid(t *testing.T) {
	t.Parallel()
	for _, st := range []hub.DeliveryStatus{hub.DeliveryPending, hub.DeliverySucceeded, hub.DeliveryFailed} {
		if !st.Valid() {
			t.Errorf("%q.Valid() = false", st)
		}
	}
	for _, st := range []hub.DeliveryStatus{"", "lost", "Pending"} {
		if st.Valid() {
			t.Errorf("%q.Valid() = true", st)
		}
	}
}

func TestSourcePrepare(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	src := hub.Source{ID: "idenfy-main", Provider: "idenfy"}
	if err := src.Prepare(now); err != nil || !src.CreatedAt.Equal(now) || !src.UpdatedAt.Equal(now) {
		t.Errorf("Prepare = %v, %+v; want both times now", err, src)
	}
	created := now.Add(-time.Hour)
	src = hub.Source{ID: "s", Provider: "kycaid", CreatedAt: created, UpdatedAt: created}
	if err := src.Prepare(now); err != nil || !src.CreatedAt.Equal(created) || !src.UpdatedAt.Equal(created) {
		t.Errorf("Prepare = %v, %+v; want the times kept", err, src)
	}
	bad := hub.Source{ID: "a b", Provider: "idenfy"}
	wantInvalid(t, "Prepare(bad id)", bad.Prepare(now), `invalid source id "a b"`)
	bad = hub.Source{ID: "s"}
	wantInvalid(t, "Prepare(no provider)", bad.Prepare(now), "source s has no provider")
	if !bad.CreatedAt.IsZero() {
		t.Error("a refused source got its defaults")
	}
}

func TestTokenPrepare(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := hub.Token{ID: "tok_1", Hash: "h", Role: hub.RoleViewer}
	if err := tok.Prepare(now); err != nil || !tok.CreatedAt.Equal(now) {
		t.Errorf("Prepare = %v, %+v", err, tok)
	}
	for _, tc := range []struct {
		tok  hub.Token
		want string
	}{
		{hub.Token{ID: "", Hash: "h", Role: hub.RoleAdmin}, `invalid token id ""`},
		{hub.Token{ID: "tok_1", Role: hub.RoleAdmin}, "token tok_1 has no hash"},
		{hub.Token{ID: "tok_1", Hash: "h", Role: "root"}, `unknown role "root"`},
	} {
		wantInvalid(t, "Prepare", tc.tok.Prepare(now), tc.want)
	}
}

func validEndpoint() hub.Endpoint {
	return hub.Endpoint{ID: "ep-1", URL: "https://example.com/hook", Secret: hub.NewEndpointSecret(), Enabled: true}
}

func TestEndpointValidate(t *testing.T) {
	t.Parallel()
	for name, change := range map[string]func(e *hub.Endpoint){
		"minimal":         func(e *hub.Endpoint) {},
		"http":            func(e *hub.Endpoint) { e.URL = "http://127.0.0.1:8080/x" },
		"previous secret": func(e *hub.Endpoint) { e.PreviousSecret = hub.NewEndpointSecret() },
		"filters": func(e *hub.Endpoint) {
			e.EventTypes = []string{"*", "verification.*", hub.EventOTPRequested}
			e.Sources = []string{"idenfy-main"}
		},
		"rate limit": func(e *hub.Endpoint) { e.RateLimit = 2.5 },
	} {
		e := validEndpoint()
		change(&e)
		if err := e.Validate(); err != nil {
			t.Errorf("%s: Validate() = %v", name, err)
		}
	}
	for _, tc := range []struct {
		name   string
		change func(e *hub.Endpoint)
		want   string
	}{
		{"id", func(e *hub.Endpoint) { e.ID = "a/b" }, `invalid endpoint id "a/b"`},
		{"relative url", func(e *hub.Endpoint) { e.URL = "/hook" }, "the url must be an absolute http or https URL"},
		{"ftp url", func(e *hub.Endpoint) { e.URL = "ftp://example.com/x" }, "the url must be an absolute http or https URL"},
		{"no host", func(e *hub.Endpoint) { e.URL = "https:///x" }, "the url must be an absolute http or https URL"},
		{"secret", func(e *hub.Endpoint) { e.Secret = "whsec_c2hvcnQ=" }, "the secret must be"},
		{"no secret", func(e *hub.Endpoint) { e.Secret = "" }, "the secret must be"},
		{"previous secret", func(e *hub.Endpoint) { e.PreviousSecret = "nope" }, "the previous secret must be"},
		{"negative rate", func(e *hub.Endpoint) { e.RateLimit = -1 }, "the rate limit must be 0 or more"},
		{"infinite rate", func(e *hub.Endpoint) { e.RateLimit = math.Inf(1) }, "the rate limit must be 0 or more"},
		{"NaN rate", func(e *hub.Endpoint) { e.RateLimit = math.NaN() }, "the rate limit must be 0 or more"},
		{"event type", func(e *hub.Endpoint) { e.EventTypes = []string{"nope.*"} }, `unknown event type filter "nope.*"`},
		{"source", func(e *hub.Endpoint) { e.Sources = []string{"ok", "not ok"} }, `invalid source id "not ok"`},
	} {
		e := validEndpoint()
		tc.change(&e)
		wantInvalid(t, tc.name, e.Validate(), tc.want)
		wantInvalid(t, tc.name+" (Prepare)", e.Prepare(keepTime), tc.want)
	}
}

func TestEndpointPrepare(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 678, time.FixedZone("x", 3600))
	e := validEndpoint()
	e.PreviousSecretExpiresAt, e.CreatedAt, e.UpdatedAt = at, at, at
	types := []string{hub.EventVerificationUpdated}
	e.EventTypes = types
	var st seenTimes
	if err := e.Prepare(st.storeTime); err != nil {
		t.Fatal(err)
	}
	want := at.UTC().Truncate(time.Second)
	if !slices.Equal(st.fields, []string{"previous_secret_expires_at", "failing_since", "created_at", "updated_at"}) {
		t.Errorf("storeTime saw %q", st.fields)
	}
	if e.PreviousSecretExpiresAt != want || e.CreatedAt != want || e.UpdatedAt != want || !e.FailingSince.IsZero() {
		t.Errorf("times = %v, %v, %v, %v; want each as storeTime returned it", e.PreviousSecretExpiresAt,
			e.FailingSince, e.CreatedAt, e.UpdatedAt)
	}
	if e.Sources == nil || len(e.Sources) != 0 {
		t.Errorf("Sources = %#v, want empty, not nil", e.Sources)
	}
	e.EventTypes[0] = "changed"
	if types[0] != hub.EventVerificationUpdated {
		t.Error("Prepare kept the caller's EventTypes slice")
	}

	e = validEndpoint()
	st = seenTimes{refuse: "created_at"}
	wantInvalid(t, "Prepare(refused time)", e.Prepare(st.storeTime), "created_at is out of range")
}

// newIngest returns a valid Ingest with one observation and one event that
// leave every defaultable field empty.
func newIngest() hub.Ingest {
	attempts := 2
	return hub.Ingest{
		Message: hub.Message{ID: "msg_1", SourceID: "idenfy-main", Provider: "idenfy",
			Preview: json.RawMessage(`{"a":1}`)},
		Observations: []hub.Observation{{
			VerificationKey: hub.VerificationKey{ProviderRef: "scan-1"},
			Status:          hub.StatusApproved, Reasons: []string{"R1"}, AttemptsLeft: &attempts,
			Outcome: hub.OutcomeSuperseded, Version: 7,
		}},
		Events: []hub.Event{{ID: "evt_1", Type: hub.EventOTPRequested, Data: json.RawMessage(`{"x":1}`)}},
	}
}

func TestIngestPrepareDefaults(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 678, time.UTC)
	in := newIngest()
	caller := in
	var st seenTimes
	if err := in.Prepare(now, st.storeTime); err != nil {
		t.Fatal(err)
	}
	m := in.Message
	want := now.Truncate(time.Second)
	if m.Status != hub.MessageAccepted || m.ReceivedAt != want {
		t.Errorf("message status %q, received %v; want accepted at %v", m.Status, m.ReceivedAt, want)
	}
	if !slices.Equal(st.fields, []string{"received_at", "observation received_at", "observation provider_time", "event created_at"}) {
		t.Errorf("storeTime saw %q", st.fields)
	}
	o := in.Observations[0]
	if o.Source != m.SourceID || o.Provider != m.Provider || o.MessageID != m.ID || o.ReceivedAt != want {
		t.Errorf("observation defaults: %+v", o)
	}
	if o.Outcome != "" || o.Version != 0 {
		t.Errorf("observation outcome %q, version %d; want them cleared", o.Outcome, o.Version)
	}
	e := in.Events[0]
	if e.Source != m.SourceID || e.Provider != m.Provider || e.MessageID != m.ID || e.CreatedAt != want {
		t.Errorf("event defaults: %+v", e)
	}

	// Nothing the caller holds is written or shared.
	o.Reasons[0], *o.AttemptsLeft, e.Data[1] = "X", 99, 'y'
	in.Observations[0].ProviderRef = "changed"
	co, ce := caller.Observations[0], caller.Events[0]
	if co.Source != "" || co.Outcome != hub.OutcomeSuperseded || co.ProviderRef != "scan-1" || co.Reasons[0] != "R1" ||
		*co.AttemptsLeft != 2 || ce.Source != "" || string(ce.Data) != `{"x":1}` {
		t.Errorf("Prepare changed or shares the caller's values: %+v, %+v", co, ce)
	}

	// Given values are kept; times go through storeTime.
	at := time.Date(2025, 6, 1, 0, 0, 0, 5, time.FixedZone("x", 7200))
	in = newIngest()
	in.Message.Status, in.Message.ReceivedAt = hub.MessageQuarantined, at
	in.Observations[0].ProviderTime = at
	in.Events[0].Provider = "other"
	if err := in.Prepare(now, st.storeTime); err != nil {
		t.Fatal(err)
	}
	if in.Message.Status != hub.MessageQuarantined || in.Message.ReceivedAt != at.UTC().Truncate(time.Second) ||
		in.Observations[0].ProviderTime != at.UTC().Truncate(time.Second) || in.Events[0].Provider != "other" {
		t.Errorf("Prepare lost given values: %+v", in)
	}

	// No observations or events: none afterwards.
	in = hub.Ingest{Message: hub.Message{ID: "msg_2", SourceID: "s"}}
	if err := in.Prepare(now, keepTime); err != nil || in.Observations != nil || in.Events != nil {
		t.Errorf("Prepare = %v, %+v", err, in)
	}
}

func TestIngestPrepareInvalid(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		change func(in *hub.Ingest)
		refuse string // a field storeTime refuses
		want   string
	}{
		{"message id", func(in *hub.Ingest) { in.Message.ID = "" }, "", `invalid message id ""`},
		{"source id", func(in *hub.Ingest) { in.Message.SourceID = "a b" }, "", `invalid source id "a b"`},
		{"rejected", func(in *hub.Ingest) { in.Message.Status = hub.MessageRejected }, "",
			`an ingested message must be accepted or quarantined, not "rejected"`},
		{"received_at", func(in *hub.Ingest) {}, "received_at", "received_at is out of range"},
		{"preview", func(in *hub.Ingest) { in.Message.Preview = json.RawMessage("{") }, "", "message preview is not JSON"},
		{"observation source", func(in *hub.Ingest) { in.Observations[0].Source = "other" }, "",
			`observation 0 is of source "other", not the message's`},
		{"observation message", func(in *hub.Ingest) { in.Observations[0].MessageID = "msg_2" }, "",
			`observation 0 names message "msg_2", not this one`},
		{"observation id", func(in *hub.Ingest) { in.Observations[0].ID = "a b" }, "", `observation 0: invalid id "a b"`},
		{"provider ref", func(in *hub.Ingest) { in.Observations[0].ProviderRef = "" }, "",
			"observation 0 has no provider reference"},
		{"observation status", func(in *hub.Ingest) { in.Observations[0].Status = "" }, "", `observation 0: unknown status ""`},
		{"kind", func(in *hub.Ingest) { in.Observations[0].Kind = "kyx" }, "", `observation 0: unknown kind "kyx"`},
		{"observation received_at", func(in *hub.Ingest) {}, "observation received_at", "observation received_at is out of range"},
		{"provider_time", func(in *hub.Ingest) {}, "observation provider_time", "observation provider_time is out of range"},
		{"event id", func(in *hub.Ingest) { in.Events[0].ID = "" }, "", `event 0: invalid id ""`},
		{"event type", func(in *hub.Ingest) { in.Events[0].Type = "nope" }, "", `event 0: unknown type "nope"`},
		{"event data", func(in *hub.Ingest) { in.Events[0].Data = nil }, "", "event 0: data is not JSON"},
		{"event message", func(in *hub.Ingest) { in.Events[0].MessageID = "msg_2" }, "",
			`event 0 names message "msg_2", not this one`},
		{"verification id", func(in *hub.Ingest) { in.Events[0].VerificationID = "a b" }, "",
			`event 0: invalid verification id "a b"`},
		{"event created_at", func(in *hub.Ingest) {}, "event created_at", "event created_at is out of range"},
		// The first fault found is the one reported, in the stores' order.
		{"first fault", func(in *hub.Ingest) {
			in.Observations = append(in.Observations, in.Observations[0])
			in.Observations[1].Status = "lost"
		}, "observation received_at", "observation received_at is out of range"},
	} {
		in := newIngest()
		tc.change(&in)
		st := seenTimes{refuse: tc.refuse}
		wantInvalid(t, tc.name, in.Prepare(now, st.storeTime), tc.want)
	}
}

func TestPrepareRejection(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var m hub.Message
	if err := m.PrepareRejection(now); err != nil || !strings.HasPrefix(m.ID, "msg_") || !hub.ValidID(m.ID) ||
		!m.ReceivedAt.Equal(now) {
		t.Errorf("PrepareRejection = %v, %+v", err, m)
	}
	at := now.Add(-time.Minute)
	m = hub.Message{ID: "msg_given", ReceivedAt: at}
	if err := m.PrepareRejection(now); err != nil || m.ID != "msg_given" || !m.ReceivedAt.Equal(at) {
		t.Errorf("PrepareRejection = %v, %+v", err, m)
	}
	m = hub.Message{ID: "a b"}
	wantInvalid(t, "PrepareRejection(bad id)", m.PrepareRejection(now), `record rejection: invalid message id "a b"`)
}

func TestCheckClaim(t *testing.T) {
	t.Parallel()
	if err := hub.CheckClaim(1, time.Nanosecond); err != nil {
		t.Errorf("CheckClaim(1, 1ns) = %v", err)
	}
	wantInvalid(t, "CheckClaim(0, 1m)", hub.CheckClaim(0, time.Minute), "claim deliveries: the limit must be 1 or more")
	wantInvalid(t, "CheckClaim(1, 0)", hub.CheckClaim(1, 0), "claim deliveries: the lease must be positive")
	wantInvalid(t, "CheckClaim(1, -1m)", hub.CheckClaim(1, -time.Minute), "claim deliveries: the lease must be positive")
}

func TestAttemptRecordPrepare(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := hub.AttemptRecord{DeliveryID: "dlv_1", Lease: "lease_1", Status: hub.DeliverySucceeded}
	if err := r.Prepare(now); err != nil || !r.Attempt.At.Equal(now) || !strings.HasPrefix(r.Attempt.ID, "att_") {
		t.Errorf("Prepare = %v, %+v", err, r.Attempt)
	}
	at := now.Add(-time.Second)
	r = hub.AttemptRecord{DeliveryID: "dlv_1", Status: hub.DeliveryPending, NextAttemptAt: now,
		Attempt: hub.Attempt{ID: "att_given", DeliveryID: "dlv_1", At: at}}
	if err := r.Prepare(now); err != nil || r.Attempt.ID != "att_given" || !r.Attempt.At.Equal(at) {
		t.Errorf("Prepare = %v, %+v", err, r.Attempt)
	}
	for _, tc := range []struct {
		r    hub.AttemptRecord
		want string
	}{
		{hub.AttemptRecord{DeliveryID: "dlv_1", Status: "lost"}, `record attempt: unknown delivery status "lost"`},
		{hub.AttemptRecord{DeliveryID: "dlv_1"}, `record attempt: unknown delivery status ""`},
		{hub.AttemptRecord{DeliveryID: "dlv_1", Status: hub.DeliveryPending},
			"record attempt: a pending delivery needs its next attempt time"},
		{hub.AttemptRecord{DeliveryID: "dlv_1", Status: hub.DeliveryFailed, Attempt: hub.Attempt{ID: "a b"}},
			`record attempt: invalid attempt id "a b"`},
		{hub.AttemptRecord{DeliveryID: "dlv_1", Status: hub.DeliveryFailed, Attempt: hub.Attempt{DeliveryID: "dlv_2"}},
			`record attempt: the attempt is of delivery "dlv_2", not "dlv_1"`},
	} {
		wantInvalid(t, tc.want, tc.r.Prepare(now), tc.want)
	}
}

func TestReplayPrepare(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := hub.Replay{EndpointID: "ep-1"}
	if err := r.Prepare(now); err != nil || !r.Now.Equal(now) {
		t.Errorf("Prepare = %v, %+v", err, r)
	}
	given := now.Add(time.Hour)
	r = hub.Replay{EndpointID: "ep-1", Status: hub.DeliveryFailed, Now: given}
	if err := r.Prepare(now); err != nil || !r.Now.Equal(given) {
		t.Errorf("Prepare = %v, %+v", err, r)
	}
	r = hub.Replay{EndpointID: "ep-1", Status: "lost"}
	wantInvalid(t, "Prepare(unknown status)", r.Prepare(now), `replay: unknown delivery status "lost"`)
}
