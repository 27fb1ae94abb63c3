package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// purge calls s.Purge, fails the test on error, and checks what it says it
// changed.
func purge(t *testing.T, s hub.Store, p hub.Purge, want hub.PurgeResult) {
	t.Helper()
	got, err := s.Purge(ctx(t), p)
	if err != nil || got != want {
		t.Fatalf("Purge(%+v) = %+v, %v; want %+v, nil", p, got, err, want)
	}
}

// getEvent reads one event and fails the test on error.
func getEvent(t *testing.T, s hub.Store, id string) hub.Event {
	t.Helper()
	e, err := s.Event(ctx(t), id)
	if err != nil {
		t.Fatalf("Event(%s) = %v", id, err)
	}
	return e
}

// redacted returns e with its data in the redacted form.
func redacted(e hub.Event) hub.Event {
	e.Redact()
	return e
}

// linkEvent returns a session_link.requested event of message m.
func linkEvent(m hub.Message) hub.Event {
	data, _ := json.Marshal(hub.SessionLinkRequested{Channel: "email", Recipient: "jane@example.com",
		Text: "Continue at https://go.example.com/s/abc", Link: "https://go.example.com/s/abc", SessionRef: "sess-1"})
	return hub.Event{
		ID: hub.NewID("evt", m.ReceivedAt), Type: hub.EventSessionLinkRequested, CreatedAt: m.ReceivedAt,
		Source: m.SourceID, Provider: m.Provider, Data: data, MessageID: m.ID,
	}
}

// testPurgeBodies: purging drops the bodies of old messages and keeps
// everything else, including the preview of a message stored without one,
// rendered from its body before and kept after.
func testPurgeBodies(t *testing.T, s hub.Store) {
	var ms []hub.Message
	for i, when := range []time.Time{at(0), at(3600), at(7200)} {
		m := msg("s1", string(rune('a'+i)), when)
		ingest(t, s, m, []hub.Observation{observe(m, "r1", "", hub.StatusPending, false)}, otpEvent(m))
		ms = append(ms, m)
	}
	// As the ingest service stores them: no preview.
	bare := msg("s1", "bare", at(60))
	// Keys of verihook's own events: shown whatever the provider's package
	// registered (hub.RegisterPreviewKeys), which no store test does.
	bare.Body = []byte(`{"provider_ref":"ref-2","status":"user-2","data":{"docFirstName":"JOHN"}}`)
	bare.Preview = nil
	ingest(t, s, bare, nil)
	rendered := `{"provider_ref":"ref-2","status":"user-2","data":{"docFirstName":"[redacted]"}}`
	checkBare := func(when string) {
		t.Helper()
		got, err := s.Message(ctx(t), bare.ID)
		if err != nil || !sameJSON(got.Preview, []byte(rendered)) {
			t.Errorf("%s: Message(bare).Preview = %s, %v; want %s", when, got.Preview, err, rendered)
		}
		for _, m := range allMessages(t, s, hub.MessageFilter{}) {
			if m.ID == bare.ID && !sameJSON(m.Preview, []byte(rendered)) {
				t.Errorf("%s: Messages: bare preview = %s, want %s", when, m.Preview, rendered)
			}
		}
	}
	checkBare("before the purge")
	// The first message's two events (a verification.updated and an OTP)
	// go with its body.
	purge(t, s, hub.Purge{Before: at(120)}, hub.PurgeResult{Bodies: 2, Events: 2})
	checkBare("after the purge")
	if got, _ := s.Message(ctx(t), bare.ID); got.Body != nil {
		t.Errorf("bare message kept its body")
	}
	purge(t, s, hub.Purge{Before: at(5400)}, hub.PurgeResult{Bodies: 1, Events: 1})
	for i, m := range ms {
		got, err := s.Message(ctx(t), m.ID)
		if err != nil {
			t.Fatalf("Message(%s) after purge = %v", m.ID, err)
		}
		want := m
		if i < 2 {
			want.Body = nil
		}
		got.Events = nil
		if d := diff(got, want); d != "" {
			t.Errorf("message %d after purge differs: %s", i, d)
		}
		if i < 2 && got.Body != nil {
			t.Errorf("message %d kept its body", i)
		}
	}
	if got := allMessages(t, s, hub.MessageFilter{}); len(got) != 4 {
		t.Errorf("%d messages after purge, want 4", len(got))
	}
	v := only(t, s, hub.VerificationFilter{})
	if len(v.Timeline) != 3 || v.Timeline[0].MessageID != ms[0].ID {
		t.Errorf("timeline after purge: %d entries, want 3, the first from %s", len(v.Timeline), ms[0].ID)
	}
	if es := allEvents(t, s, hub.EventFilter{}); len(es) != 4 {
		t.Errorf("%d events after purge, want 4", len(es))
	}
	// Again: nothing left to purge.
	purge(t, s, hub.Purge{Before: at(5400)}, hub.PurgeResult{})
	purge(t, s, hub.Purge{Before: at(99999)}, hub.PurgeResult{Bodies: 1, Events: 1})
}

// testPurgeMessages: the bodies of the messages named are purged at once,
// whatever their age, as when the OTP a message asked for is dispatched;
// each keeps the preview rendered from its body, and the other messages,
// unknown ids and bodies already purged change nothing.
func testPurgeMessages(t *testing.T, s hub.Store) {
	var (
		ms  []hub.Message
		evs []hub.Event
	)
	for i, when := range []time.Time{at(0), at(3600), at(7200)} {
		m := msg("s1", string(rune('a'+i)), when)
		m.Preview = nil // as the ingest service stores it
		ev := otpEvent(m)
		ingest(t, s, m, nil, ev)
		ms, evs = append(ms, m), append(evs, ev)
	}
	// The keys shown are hub's to decide (and the provider's package's).
	rendered := string(hub.PreviewOf(ms[0].Provider, ms[0].Body))
	if strings.Contains(rendered, "JANE") || !strings.Contains(rendered, `"docFirstName":"[redacted]"`) {
		t.Fatalf("preview %s shows the body's personal data", rendered)
	}
	unknown := hub.NewID("msg", at(3600))
	purge(t, s, hub.Purge{Messages: []string{unknown}}, hub.PurgeResult{})
	purge(t, s, hub.Purge{Messages: []string{ms[1].ID, unknown}}, hub.PurgeResult{Bodies: 1})
	purge(t, s, hub.Purge{Messages: []string{ms[1].ID}}, hub.PurgeResult{})
	for i, m := range ms {
		got, err := s.Message(ctx(t), m.ID)
		if err != nil {
			t.Fatalf("Message(%s) after purge = %v", m.ID, err)
		}
		if i == 1 && got.Body != nil {
			t.Errorf("purged message kept its body: %s", got.Body)
		}
		if i != 1 && string(got.Body) != string(m.Body) {
			t.Errorf("message %d: body = %s, want %s", i, got.Body, m.Body)
		}
		if !sameJSON(got.Preview, []byte(rendered)) {
			t.Errorf("message %d: preview = %s, want %s", i, got.Preview, rendered)
		}
	}
	for _, ev := range evs {
		if got := getEvent(t, s, ev.ID); !sameJSON(got.Data, ev.Data) {
			t.Errorf("event %s after purging bodies: %s, want %s", ev.ID, got.Data, ev.Data)
		}
	}
}

// testPurgeEvents: event data is replaced by its redacted form, that of
// OTP and session-link events sooner (OTPBefore) or at once (Events); what
// is not personal data, the rest of the event and the events still within
// their retention stay as they were, in Event and in Events alike.
func testPurgeEvents(t *testing.T, s hub.Store) {
	old := msg("s1", "old", at(0))
	oldRes := ingest(t, s, old, []hub.Observation{observe(old, "r1", "", hub.StatusApproved, true)},
		otpEvent(old), linkEvent(old))
	if len(oldRes.Events) != 3 {
		t.Fatalf("Ingest(old) produced %d events, want 3", len(oldRes.Events))
	}
	updated, otp, link := oldRes.Events[0], oldRes.Events[1], oldRes.Events[2]
	young := msg("s1", "young", at(7200))
	youngOTP := ingest(t, s, young, nil, otpEvent(young)).Events[0]

	check := func(when string, want ...hub.Event) {
		t.Helper()
		listed := map[string]hub.Event{}
		for _, e := range allEvents(t, s, hub.EventFilter{}) {
			listed[e.ID] = e
		}
		for _, w := range want {
			for how, got := range map[string]hub.Event{"Event": getEvent(t, s, w.ID), "Events": listed[w.ID]} {
				if d := diff(got, w); d != "" || !sameJSON(got.Data, w.Data) {
					t.Errorf("%s: %s(%s %s) = %s; want %s (%s)", when, how, w.Type, w.ID, got.Data, w.Data, d)
				}
			}
		}
	}
	check("before any purge", updated, otp, link, youngOTP)

	// OTP codes and links sooner, and only those.
	purge(t, s, hub.Purge{OTPBefore: at(3600)}, hub.PurgeResult{Events: 2})
	check("after the OTP purge", updated, redacted(otp), redacted(link), youngOTP)
	var data hub.SessionLinkRequested
	if err := json.Unmarshal(getEvent(t, s, link.ID).Data, &data); err != nil {
		t.Fatal(err)
	}
	if want := (hub.SessionLinkRequested{Channel: "email", Recipient: hub.Redacted, Text: hub.Redacted,
		Link: hub.Redacted, SessionRef: "sess-1"}); data != want {
		t.Errorf("purged session link data = %+v, want %+v", data, want)
	}
	purge(t, s, hub.Purge{OTPBefore: at(3600)}, hub.PurgeResult{})

	// One event by id, whatever its age, as a dispatch does once it is sent.
	purge(t, s, hub.Purge{Events: []string{youngOTP.ID, otp.ID, "evt_01KAWY7XJ3AAAAAAAAAAAAAAAA"}}, hub.PurgeResult{Events: 1})
	check("after the purge by id", updated, redacted(otp), redacted(link), redacted(youngOTP))

	// Everything else by Before: a verification.updated holds no personal
	// data, so its redacted form is what it was.
	purge(t, s, hub.Purge{Before: at(3600)}, hub.PurgeResult{Bodies: 1, Events: 1})
	check("after the purge", updated, redacted(otp), redacted(link), redacted(youngOTP))
	if !sameJSON(redacted(updated).Data, updated.Data) {
		t.Errorf("a verification.updated lost data to redaction: %s, was %s", redacted(updated).Data, updated.Data)
	}
	purge(t, s, hub.Purge{Before: at(99999), OTPBefore: at(99999)}, hub.PurgeResult{Bodies: 1})
}

// testPurgeDeliveries: a delivery of an event whose data is purged sends
// the redacted form, on retry and on replay alike, and its attempts lose
// their response excerpts and errors while statuses, codes, latencies and
// times stay.
func testPurgeDeliveries(t *testing.T, s hub.Store) {
	ep := newEndpoint("ep", at(-10))
	createEndpoints(t, s, ep)
	old := msg("s1", "old", at(0))
	otp := ingest(t, s, old, nil, otpEvent(old)).Events[0]
	young := msg("s1", "young", at(7200))
	youngOTP := ingest(t, s, young, nil, otpEvent(young)).Events[0]

	cs := claim(t, s, at(1), 10, time.Minute)
	if len(cs) != 1 || !sameJSON(cs[0].Event.Data, otp.Data) {
		t.Fatalf("claims before the purge = %+v; want one, of the event as ingested", cs)
	}
	att := hub.Attempt{At: at(2), StatusCode: 500, LatencyMS: 42,
		Response: `{"error":"unknown recipient +37060000000"}`, Error: "HTTP 500"}
	if err := s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: cs[0].Delivery.ID, Lease: cs[0].Lease,
		Attempt: att, Status: hub.DeliveryPending, NextAttemptAt: at(100)}); err != nil {
		t.Fatal(err)
	}
	before := getDelivery(t, s, cs[0].Delivery.ID)

	purge(t, s, hub.Purge{Before: at(3600)}, hub.PurgeResult{Bodies: 1, Events: 1, Attempts: 1})
	got := getDelivery(t, s, cs[0].Delivery.ID)
	want := before
	want.AttemptLog = []hub.Attempt{before.AttemptLog[0]}
	want.AttemptLog[0].Response, want.AttemptLog[0].Error = "", ""
	if d := diff(got, want); d != "" {
		t.Errorf("delivery after the purge differs: %s", d)
	}

	// The retry sends the redacted form.
	cs = claim(t, s, at(100), 10, time.Minute)
	if len(cs) != 1 || !sameJSON(cs[0].Event.Data, redacted(otp).Data) {
		t.Fatalf("claims of the retry = %+v; want one, of the redacted event %s", cs, redacted(otp).Data)
	}
	record(t, s, cs[0], hub.DeliverySucceeded, at(101), time.Time{})
	// So does a replay; an event within its retention keeps its data.
	if n, err := s.Replay(ctx(t), hub.Replay{EndpointID: ep.ID, Now: at(7300)}); err != nil || n != 2 {
		t.Fatalf("Replay = %d, %v; want 2", n, err)
	}
	for _, c := range claim(t, s, at(7300), 10, time.Minute) {
		want := map[string]hub.Event{otp.ID: redacted(otp), youngOTP.ID: youngOTP}[c.Event.ID]
		if !sameJSON(c.Event.Data, want.Data) {
			t.Errorf("replayed %s = %s, want %s", c.Event.ID, c.Event.Data, want.Data)
		}
	}
}

// testPurgeRejections: rejections past retention lose their remote
// address and keep the rest, to be counted.
func testPurgeRejections(t *testing.T, s hub.Store) {
	var rej []hub.Message
	for _, when := range []time.Time{at(0), at(7200)} {
		r := hub.Message{ID: hub.NewID("msg", when), SourceID: "no-such-source", ReceivedAt: when,
			RemoteAddr: "198.51.100.1:4711", Status: hub.MessageRejected, HTTPStatus: 404, Reason: "unknown source",
			Origin: hub.OriginCallback}
		if err := s.RecordRejection(ctx(t), r); err != nil {
			t.Fatal(err)
		}
		rej = append(rej, r)
	}
	accepted := msg("s1", "k", at(0))
	ingest(t, s, accepted, nil)

	purge(t, s, hub.Purge{Before: at(3600)}, hub.PurgeResult{Bodies: 1, Rejections: 1})
	rej[0].RemoteAddr = ""
	accepted.Body = nil
	for _, want := range []hub.Message{rej[0], rej[1], accepted} {
		got, err := s.Message(ctx(t), want.ID)
		if err != nil {
			t.Fatal(err)
		}
		got.Events = nil
		if d := diff(got, want); d != "" {
			t.Errorf("message %s after the purge differs: %s", want.ID, d)
		}
	}
	purge(t, s, hub.Purge{Before: at(3600)}, hub.PurgeResult{})
}

// testPurgeInvalid: a time the store cannot keep is EINVALID and purges
// nothing.
func testPurgeInvalid(t *testing.T, s hub.Store) {
	m := msg("s1", "k", at(0))
	ingest(t, s, m, nil, otpEvent(m))
	for _, p := range []hub.Purge{
		{Before: time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Before: at(3600), OTPBefore: time.Date(-5000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{CountersBefore: time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		res, err := s.Purge(ctx(t), p)
		wantCode(t, "Purge(bad time)", err, hub.EINVALID)
		if res.Any() {
			t.Errorf("Purge(bad time) changed %+v", res)
		}
	}
	purge(t, s, hub.Purge{Before: at(3600)}, hub.PurgeResult{Bodies: 1, Events: 1})
}

// testPurgeCounters: the counters of the minutes that began before
// CountersBefore go, those of later minutes and every message stay, and
// a purge by Before alone keeps every counter.
func testPurgeCounters(t *testing.T, s hub.Store) {
	for _, sec := range []int{0, 3600, 7200} {
		ingestStatus(t, s, "s1", fmt.Sprint("ref-", sec), hub.StatusApproved, true, at(sec))
	}
	rej := hub.Message{ID: hub.NewID("msg", at(60)), SourceID: "s1", ReceivedAt: at(60), HTTPStatus: 401,
		Reason: "bad signature", Status: hub.MessageRejected}
	if err := s.RecordRejection(ctx(t), rej); err != nil {
		t.Fatal(err)
	}
	minutes := func() []time.Time {
		t.Helper()
		a, err := s.Activity(ctx(t), at(-600))
		if err != nil {
			t.Fatalf("Activity = %v", err)
		}
		var out []time.Time
		for _, c := range a.Counts {
			if m := c.Minute.UTC(); !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
		slices.SortFunc(out, time.Time.Compare)
		return out
	}
	m0 := t0.Truncate(time.Minute)
	all := []time.Time{m0, m0.Add(time.Minute), m0.Add(time.Hour), m0.Add(2 * time.Hour)}
	if got := minutes(); !slices.Equal(got, all) {
		t.Fatalf("counted minutes = %v, want %v", got, all)
	}

	purge(t, s, hub.Purge{Before: at(99999)}, hub.PurgeResult{Bodies: 3, Events: 3})
	if got := minutes(); !slices.Equal(got, all) {
		t.Errorf("after a purge by Before: counted minutes = %v, want %v", got, all)
	}

	// 13:00 exactly: the minute that begins then stays.
	res, err := s.Purge(ctx(t), hub.Purge{CountersBefore: m0.Add(time.Hour)})
	if err != nil || res.Counters < 2 || res != (hub.PurgeResult{Counters: res.Counters}) {
		t.Fatalf("Purge(counters before 13:00) = %+v, %v; want two rows or more (12:00 and 12:01), nothing else", res, err)
	}
	if got, want := minutes(), all[2:]; !slices.Equal(got, want) {
		t.Errorf("after the purge: counted minutes = %v, want %v", got, want)
	}
	if got := allMessages(t, s, hub.MessageFilter{}); len(got) != 4 {
		t.Errorf("after the purge: %d messages, want 4", len(got))
	}
	purge(t, s, hub.Purge{CountersBefore: m0.Add(time.Hour)}, hub.PurgeResult{})
}
