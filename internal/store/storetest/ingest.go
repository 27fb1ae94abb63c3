package storetest

import (
	"slices"
	"testing"

	"github.com/verihook/verihook/internal/hub"
)

func testPing(t *testing.T, s hub.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping = %v", err)
	}
}

// testIngestAndReadBack stores a message with an observation and an event,
// then reads everything back through every read method.
func testIngestAndReadBack(t *testing.T, s hub.Store) {
	m := msg("idenfy-main", "scan-1:AUTO_FINISHED", at(0))
	o := observe(m, "scan-1", "", hub.StatusSuspected, true)
	o.ApplicantRef = "user-1"
	o.Reasons = []string{"FACE_MISMATCH", "DOC_EXPIRED"}
	o.AttemptsLeft = ptr(2)
	o.ProviderTime = at(-5)
	otp := otpEvent(m)

	res := ingest(t, s, m, []hub.Observation{o}, otp)
	if res.MessageID != m.ID || res.Duplicate {
		t.Fatalf("Ingest = {MessageID: %s, Duplicate: %v}, want {%s, false}", res.MessageID, res.Duplicate, m.ID)
	}
	if len(res.Events) != 2 {
		t.Fatalf("Ingest returned %d events, want 2 (verification.updated, then otp.requested)", len(res.Events))
	}
	upd, gotOTP := res.Events[0], res.Events[1]
	if d := diff(gotOTP, otp); d != "" {
		t.Errorf("Ingest's otp event differs: %s", d)
	}
	u := updated(t, upd)
	wantV := hub.Verification{
		ID: u.Verification.ID, Source: m.SourceID, Provider: m.Provider, ProviderRef: "scan-1",
		ApplicantRef: "user-1", Kind: hub.KindKYC, Level: "", Status: hub.StatusSuspected, Final: true,
		Version: 1, Reasons: []string{"FACE_MISMATCH", "DOC_EXPIRED"}, AttemptsLeft: ptr(2),
		ProviderTime: at(-5), CreatedAt: m.ReceivedAt, UpdatedAt: m.ReceivedAt,
	}
	if u.Verification.ID == "" {
		t.Fatal("verification.updated data has no verification id")
	}
	if d := diff(u, hub.VerificationUpdated{Verification: wantV, PreviousStatus: "", ProviderEvent: m.EventName}); d != "" {
		t.Errorf("verification.updated data differs: %s", d)
	}
	if upd.ID == "" || upd.VerificationID != wantV.ID || upd.MessageID != m.ID || upd.Source != m.SourceID ||
		upd.Provider != m.Provider || !sameTime(upd.CreatedAt, m.ReceivedAt) {
		t.Errorf("verification.updated event = %+v, want ids, source, provider and created_at of the message and verification", upd)
	}

	// The message, with its body and its events.
	got, err := s.Message(ctx(t), m.ID)
	if err != nil {
		t.Fatalf("Message = %v", err)
	}
	want := m
	want.Events = []string{upd.ID, otp.ID}
	if d := diff(got, want); d != "" {
		t.Errorf("Message differs: %s", d)
	}

	// The list, without bodies.
	list, next, err := s.Messages(ctx(t), hub.MessageFilter{})
	if err != nil || next != "" || len(list) != 1 {
		t.Fatalf("Messages = %d messages, next %q, %v; want 1, \"\", nil", len(list), next, err)
	}
	if list[0].Body != nil {
		t.Errorf("Messages returned a body: %q", list[0].Body)
	}
	want.Body, want.Events, list[0].Events = nil, nil, nil
	if d := diff(list[0], want); d != "" {
		t.Errorf("Messages[0] differs: %s", d)
	}

	// The verification, with its timeline, and in the list without.
	v := verification(t, s, wantV.ID)
	wantO := o
	wantO.Outcome, wantO.Version = hub.OutcomeApplied, 1
	if len(v.Timeline) == 1 {
		if v.Timeline[0].ID == "" {
			t.Error("timeline entry has no id")
		}
		wantO.ID = v.Timeline[0].ID
	}
	wantV.Timeline = []hub.Observation{wantO}
	if d := diff(v, wantV); d != "" {
		t.Errorf("Verification differs: %s", d)
	}
	vs, next, err := s.Verifications(ctx(t), hub.VerificationFilter{})
	if err != nil || next != "" || len(vs) != 1 {
		t.Fatalf("Verifications = %d, next %q, %v; want 1, \"\", nil", len(vs), next, err)
	}
	if len(vs[0].Timeline) != 0 {
		t.Errorf("Verifications returned a timeline of %d entries", len(vs[0].Timeline))
	}
	wantV.Timeline = nil
	if d := diff(vs[0], wantV); d != "" {
		t.Errorf("Verifications[0] differs: %s", d)
	}

	// The events, one by one and listed newest first.
	for _, e := range res.Events {
		got, err := s.Event(ctx(t), e.ID)
		if err != nil {
			t.Fatalf("Event(%s) = %v", e.ID, err)
		}
		if d := diff(got, e); d != "" {
			t.Errorf("Event(%s) differs: %s", e.ID, d)
		}
	}
	es, next, err := s.Events(ctx(t), hub.EventFilter{})
	if err != nil || next != "" {
		t.Fatalf("Events = next %q, %v", next, err)
	}
	if got, want := eventIDs(es), sorted(eventIDs(res.Events)); !slices.Equal(got, want) {
		t.Fatalf("Events = %v, want %v", got, want)
	}
	for _, e := range es {
		i := slices.IndexFunc(res.Events, func(x hub.Event) bool { return x.ID == e.ID })
		if d := diff(e, res.Events[i]); d != "" {
			t.Errorf("Events: %s differs: %s", e.ID, d)
		}
	}
}

// testIngestSeveralObservations: one message may report several
// verifications, and several statuses of one verification, applied in order.
func testIngestSeveralObservations(t *testing.T, s hub.Store) {
	m := msg("kycaid-main", "req-1", at(0))
	m.Provider = "kycaid"
	a1 := observe(m, "ver-a", "", hub.StatusPending, false)
	a2 := observe(m, "ver-a", "", hub.StatusApproved, true)
	b := observe(m, "ver-b", "", hub.StatusRejected, true)
	b.Reasons = []string{"DOCUMENT_EXPIRED"}
	res := ingest(t, s, m, []hub.Observation{a1, b, a2})
	if len(res.Events) != 3 {
		t.Fatalf("Ingest returned %d events, want 3", len(res.Events))
	}
	var got []string
	for _, e := range res.Events {
		u := updated(t, e)
		got = append(got, u.Verification.ProviderRef+":"+string(u.PreviousStatus)+">"+string(u.Verification.Status))
	}
	if want := []string{"ver-a:>pending", "ver-b:>rejected", "ver-a:pending>approved"}; !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	va := only(t, s, hub.VerificationFilter{ProviderRef: "ver-a"})
	if va.Status != hub.StatusApproved || !va.Final || va.Version != 2 || len(va.Timeline) != 2 {
		t.Errorf("ver-a = status %s final %v version %d, %d timeline entries; want approved true 2, 2",
			va.Status, va.Final, va.Version, len(va.Timeline))
	}
	for i, o := range va.Timeline {
		if o.MessageID != m.ID || o.Outcome != hub.OutcomeApplied || o.Version != i+1 {
			t.Errorf("ver-a timeline[%d] = message %s %s v%d, want %s applied v%d", i, o.MessageID, o.Outcome, o.Version, m.ID, i+1)
		}
	}
	vb := only(t, s, hub.VerificationFilter{ProviderRef: "ver-b"})
	if vb.Status != hub.StatusRejected || vb.Version != 1 || !slices.Equal(vb.Reasons, []string{"DOCUMENT_EXPIRED"}) {
		t.Errorf("ver-b = %+v", vb)
	}
	got2, err := s.Message(ctx(t), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got2.Events, eventIDs(res.Events)) {
		t.Errorf("Message.Events = %v, want %v (in the order recorded)", got2.Events, eventIDs(res.Events))
	}
}

// testDuplicate: the same source and dedup key changes nothing and reports
// the original message.
func testDuplicate(t *testing.T, s hub.Store) {
	first := msg("idenfy-main", "scan-1:final", at(0))
	res1 := ingest(t, s, first, []hub.Observation{observe(first, "scan-1", "", hub.StatusApproved, true)}, otpEvent(first))

	again := msg("idenfy-main", "scan-1:final", at(30)) // the provider's retry: a new request, a new message id
	again.Body = []byte(`{"retry":true}`)
	res2 := ingest(t, s, again, []hub.Observation{observe(again, "scan-1", "", hub.StatusRejected, true)}, otpEvent(again))
	if res2.MessageID != first.ID || !res2.Duplicate || len(res2.Events) != 0 {
		t.Fatalf("duplicate Ingest = {%s, %v, %d events}, want {%s, true, 0 events}", res2.MessageID, res2.Duplicate, len(res2.Events), first.ID)
	}
	_, err := s.Message(ctx(t), again.ID)
	wantCode(t, "Message(duplicate's id)", err, hub.ENOTFOUND)
	got, err := s.Message(ctx(t), first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != string(first.Body) {
		t.Errorf("original body = %s, want %s", got.Body, first.Body)
	}
	if ms := allMessages(t, s, hub.MessageFilter{}); len(ms) != 1 {
		t.Errorf("%d messages stored, want 1", len(ms))
	}
	if es := allEvents(t, s, hub.EventFilter{}); len(es) != len(res1.Events) {
		t.Errorf("%d events stored, want %d", len(es), len(res1.Events))
	}
	v := only(t, s, hub.VerificationFilter{})
	if v.Status != hub.StatusApproved || v.Version != 1 || len(v.Timeline) != 1 {
		t.Errorf("verification = %s v%d with %d timeline entries, want approved v1 with 1", v.Status, v.Version, len(v.Timeline))
	}
}

func testDuplicateKeyAtAnotherSource(t *testing.T, s hub.Store) {
	a := ingestOne(t, s, "idenfy-a", "same-key", at(0), func(m hub.Message) hub.Observation {
		return observe(m, "scan-1", "", hub.StatusApproved, true)
	})
	b := ingestOne(t, s, "idenfy-b", "same-key", at(1), func(m hub.Message) hub.Observation {
		return observe(m, "scan-1", "", hub.StatusApproved, true)
	})
	if b.Duplicate || b.MessageID == a.MessageID {
		t.Fatalf("same dedup key at another source: Ingest = {%s, duplicate %v}, want a new message", b.MessageID, b.Duplicate)
	}
	if ms := allMessages(t, s, hub.MessageFilter{}); len(ms) != 2 {
		t.Errorf("%d messages, want 2", len(ms))
	}
	if vs := allVerifications(t, s, hub.VerificationFilter{}); len(vs) != 2 {
		t.Errorf("%d verifications, want 2 (one per source)", len(vs))
	}
}

// testNoDedupKey: a message without a dedup key is never a duplicate.
func testNoDedupKey(t *testing.T, s hub.Store) {
	for i := range 2 {
		m := msg("identomat-main", "", at(i))
		m.Status, m.Reason = hub.MessageQuarantined, "no event id"
		if res := ingest(t, s, m, nil); res.Duplicate || res.MessageID != m.ID {
			t.Errorf("Ingest #%d without dedup key = {%s, %v}, want {%s, false}", i, res.MessageID, res.Duplicate, m.ID)
		}
	}
}

func testQuarantined(t *testing.T, s hub.Store) {
	m := msg("fractal-main", "sha256:abc", at(0))
	m.Provider, m.Status, m.Reason, m.EventName = "fractal", hub.MessageQuarantined, "unknown event type \"mystery\"", "mystery"
	res := ingest(t, s, m, nil)
	if res.Duplicate || res.MessageID != m.ID || len(res.Events) != 0 {
		t.Fatalf("Ingest(quarantined) = %+v", res)
	}
	got, err := s.Message(ctx(t), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(got, m); d != "" {
		t.Errorf("quarantined message differs: %s", d)
	}
	q, _, err := s.Messages(ctx(t), hub.MessageFilter{Status: hub.MessageQuarantined})
	if err != nil || len(q) != 1 || q[0].ID != m.ID {
		t.Errorf("Messages(quarantined) = %v, %v; want [%s]", messageIDs(q), err, m.ID)
	}
	// Quarantined messages deduplicate like any other.
	again := msg("fractal-main", "sha256:abc", at(1))
	again.Status = hub.MessageQuarantined
	if res := ingest(t, s, again, nil); !res.Duplicate || res.MessageID != m.ID {
		t.Errorf("Ingest(quarantined again) = {%s, %v}, want {%s, true}", res.MessageID, res.Duplicate, m.ID)
	}
}

// testRejection: audit rows have status rejected, never a body, and are not
// subject to deduplication.
func testRejection(t *testing.T, s hub.Store) {
	var ids []string
	for i := range 2 {
		r := msg("idenfy-main", "same-key", at(i))
		r.Status, r.HTTPStatus, r.Reason = hub.MessageRejected, 401, "bad signature"
		if err := s.RecordRejection(ctx(t), r); err != nil {
			t.Fatalf("RecordRejection #%d = %v", i, err)
		}
		ids = append(ids, r.ID)
		got, err := s.Message(ctx(t), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Body != nil {
			t.Errorf("rejection stored a body: %q", got.Body)
		}
		if got.Status != hub.MessageRejected || got.HTTPStatus != 401 || got.Reason != "bad signature" ||
			got.SourceID != "idenfy-main" || got.RemoteAddr != r.RemoteAddr || !sameTime(got.ReceivedAt, r.ReceivedAt) {
			t.Errorf("rejection = %+v", got)
		}
		if got.DedupKey != "" {
			t.Errorf("rejection kept dedup key %q", got.DedupKey)
		}
	}
	unknown := hub.Message{ID: hub.NewID("msg", at(2)), SourceID: "no-such-source", ReceivedAt: at(2),
		RemoteAddr: "198.51.100.1:1", Status: hub.MessageRejected, HTTPStatus: 404, Reason: "unknown source"}
	if err := s.RecordRejection(ctx(t), unknown); err != nil {
		t.Fatalf("RecordRejection(unknown source) = %v", err)
	}
	ids = append(ids, unknown.ID)

	rej, _, err := s.Messages(ctx(t), hub.MessageFilter{Status: hub.MessageRejected})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := messageIDs(rej), sorted(ids); !slices.Equal(got, want) {
		t.Errorf("Messages(rejected) = %v, want %v", got, want)
	}
	// An authenticated message with the key a rejection carried is new.
	m := msg("idenfy-main", "same-key", at(3))
	if res := ingest(t, s, m, nil); res.Duplicate {
		t.Errorf("Ingest after rejections with the same key = duplicate of %s", res.MessageID)
	}
	acc, _, err := s.Messages(ctx(t), hub.MessageFilter{Status: hub.MessageAccepted})
	if err != nil || len(acc) != 1 || acc[0].ID != m.ID {
		t.Errorf("Messages(accepted) = %v, %v; want [%s]", messageIDs(acc), err, m.ID)
	}
}

// testRejectionCount: a rejection row with a Count is one row however often
// it is recorded, its counts added up, and is listed with the rejections; an
// id stored already without a Count is ECONFLICT and changes nothing.
func testRejectionCount(t *testing.T, s hub.Store) {
	bucket := hub.Message{ID: hub.NewID("msg", at(1)), ReceivedAt: at(1), Status: hub.MessageRejected,
		HTTPStatus: 404, Reason: "unknown source", Count: 3}
	for _, n := range []int64{3, 1, 996} {
		bucket.Count = n
		if err := s.RecordRejection(ctx(t), bucket); err != nil {
			t.Fatalf("RecordRejection(count %d) = %v", n, err)
		}
	}
	full := msg("idenfy-main", "", at(2))
	full.Status, full.HTTPStatus, full.Reason = hub.MessageRejected, 401, "signature mismatch"
	if err := s.RecordRejection(ctx(t), full); err != nil {
		t.Fatal(err)
	}
	again := full
	again.Count = 5
	wantCode(t, "RecordRejection(count onto a row in full)", s.RecordRejection(ctx(t), again), hub.ECONFLICT)
	bucket.Count = 0
	wantCode(t, "RecordRejection(no count onto a counting row)", s.RecordRejection(ctx(t), bucket), hub.ECONFLICT)
	bucket.Count = -1
	wantCode(t, "RecordRejection(negative count)", s.RecordRejection(ctx(t), bucket), hub.EINVALID)

	rej, _, err := s.Messages(ctx(t), hub.MessageFilter{Status: hub.MessageRejected})
	if err != nil {
		t.Fatal(err)
	}
	if len(rej) != 2 || rej[0].ID != full.ID || rej[1].ID != bucket.ID {
		t.Fatalf("Messages(rejected) = %v, want [%s %s]", messageIDs(rej), full.ID, bucket.ID)
	}
	if rej[0].Count != 0 || rej[1].Count != 1000 || rej[1].SourceID != "" || rej[1].HTTPStatus != 404 {
		t.Errorf("counts = %d and %d (bucket %+v), want 0 and 1000", rej[0].Count, rej[1].Count, rej[1])
	}
	if got, err := s.Message(ctx(t), bucket.ID); err != nil || got.Count != 1000 {
		t.Errorf("Message(bucket) = count %d, %v; want 1000", got.Count, err)
	}

	// The dashboard's counts are of rejections, not of rows.
	a, err := s.Activity(ctx(t), at(-60))
	if err != nil {
		t.Fatal(err)
	}
	var counted int64
	for _, c := range a.Counts {
		if c.Name == hub.CountRejected {
			counted += c.N
		}
	}
	bySource := map[string]int{}
	for _, r := range a.Rejections {
		bySource[r.Source] += r.N
	}
	if counted != 1001 || bySource[""] != 1000 || bySource["idenfy-main"] != 1 {
		t.Errorf("Activity: %d rejections counted, by source %v; want 1001, 1000 of no source and 1 of idenfy-main", counted, bySource)
	}
}

// testFailedIngest: an Ingest that fails part way stores nothing, and does not
// leave its dedup key behind.
func testFailedIngest(t *testing.T, s hub.Store) {
	first := msg("idenfy-main", "k1", at(0))
	otp := otpEvent(first)
	ingest(t, s, first, []hub.Observation{observe(first, "scan-1", "", hub.StatusReview, false)}, otp)

	bad := msg("idenfy-main", "k2", at(1))
	clash := otpEvent(bad)
	clash.ID = otp.ID // an event id stored already: fails after the message and observation were written
	_, err := s.Ingest(ctx(t), hub.Ingest{Message: bad,
		Observations: []hub.Observation{observe(bad, "scan-1", "", hub.StatusApproved, true)}, Events: []hub.Event{clash}})
	wantCode(t, "Ingest(event id stored already)", err, hub.ECONFLICT)

	_, err = s.Message(ctx(t), bad.ID)
	wantCode(t, "Message(failed ingest)", err, hub.ENOTFOUND)
	v := only(t, s, hub.VerificationFilter{})
	if v.Status != hub.StatusReview || v.Version != 1 || len(v.Timeline) != 1 {
		t.Errorf("after a failed ingest: verification %s v%d, %d timeline entries; want review v1, 1", v.Status, v.Version, len(v.Timeline))
	}
	if es := allEvents(t, s, hub.EventFilter{}); len(es) != 2 {
		t.Errorf("after a failed ingest: %d events, want 2", len(es))
	}

	// The provider retries; this time it goes through.
	retry := msg("idenfy-main", "k2", at(2))
	res := ingest(t, s, retry, []hub.Observation{observe(retry, "scan-1", "", hub.StatusApproved, true)})
	if res.Duplicate {
		t.Fatalf("retry of a failed ingest reported as a duplicate of %s", res.MessageID)
	}
	if v := only(t, s, hub.VerificationFilter{}); v.Status != hub.StatusApproved || v.Version != 2 {
		t.Errorf("after the retry: %s v%d, want approved v2", v.Status, v.Version)
	}

	// A message id stored already is a conflict too.
	dup := msg("idenfy-main", "k3", at(3))
	dup.ID = first.ID
	_, err = s.Ingest(ctx(t), hub.Ingest{Message: dup})
	wantCode(t, "Ingest(message id stored already)", err, hub.ECONFLICT)
}

func testIngestInvalid(t *testing.T, s hub.Store) {
	good := msg("idenfy-main", "k", at(0))
	for _, tc := range []struct {
		name string
		in   func() hub.Ingest
	}{
		{"no message id", func() hub.Ingest { m := good; m.ID = ""; return hub.Ingest{Message: m} }},
		{"rejected status", func() hub.Ingest { m := good; m.Status = hub.MessageRejected; return hub.Ingest{Message: m} }},
		{"event without id", func() hub.Ingest {
			e := otpEvent(good)
			e.ID = ""
			return hub.Ingest{Message: good, Events: []hub.Event{e}}
		}},
		{"observation with unknown status", func() hub.Ingest {
			o := observe(good, "scan-1", "", "maybe", true)
			return hub.Ingest{Message: good, Observations: []hub.Observation{o}}
		}},
	} {
		_, err := s.Ingest(ctx(t), tc.in())
		wantCode(t, tc.name, err, hub.EINVALID)
	}
	if ms := allMessages(t, s, hub.MessageFilter{}); len(ms) != 0 {
		t.Errorf("invalid ingests stored %d messages", len(ms))
	}
	// The good message still goes in: nothing of the invalid ones remains.
	if res := ingest(t, s, good, nil); res.Duplicate {
		t.Error("good message reported as a duplicate")
	}
}

func testPerLevel(t *testing.T, s hub.Store) {
	m := msg("fractal-main", "e1", at(0))
	m.Provider = "fractal"
	basic := observe(m, "user-1", "basic+liveness", hub.StatusApproved, true)
	plus := observe(m, "user-1", "plus+liveness", hub.StatusActionRequired, false)
	ingest(t, s, m, []hub.Observation{basic, plus})
	vs := allVerifications(t, s, hub.VerificationFilter{ProviderRef: "user-1"})
	if len(vs) != 2 {
		t.Fatalf("%d verifications for one user at two levels, want 2", len(vs))
	}
	for _, tc := range []struct {
		level  string
		status hub.Status
	}{{"basic+liveness", hub.StatusApproved}, {"plus+liveness", hub.StatusActionRequired}} {
		v := only(t, s, hub.VerificationFilter{ProviderRef: "user-1", Level: tc.level})
		if v.Level != tc.level || v.Status != tc.status || v.Version != 1 || len(v.Timeline) != 1 {
			t.Errorf("level %s: %+v", tc.level, v)
		}
	}
	// A later message about one level leaves the other alone.
	m2 := msg("fractal-main", "e2", at(1))
	ingest(t, s, m2, []hub.Observation{observe(m2, "user-1", "plus+liveness", hub.StatusApproved, true)})
	if v := only(t, s, hub.VerificationFilter{Level: "basic+liveness"}); v.Version != 1 {
		t.Errorf("basic level changed to v%d by a plus-level message", v.Version)
	}
	if v := only(t, s, hub.VerificationFilter{Level: "plus+liveness"}); v.Version != 2 || v.Status != hub.StatusApproved {
		t.Errorf("plus level = %s v%d, want approved v2", v.Status, v.Version)
	}
}
