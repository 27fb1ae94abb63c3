package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// The outbox part of the suite. Besides hub.Store's contract it holds both
// stores to these choices:
//
//   - an endpoint's EventTypes and Sources read back as empty slices, never
//     nil; its secrets must be "whsec_" secrets (hub.ValidEndpointSecret);
//   - a delivery that Ingest creates is due at the message's ReceivedAt;
//   - a lease ends at exactly now+lease: a claim at that instant may take
//     the delivery again;
//   - RecordAttempt and Release with a token that is not the delivery's
//     lease are ECONFLICT, for an unknown delivery ENOTFOUND;
//   - the ordered rule follows the order in which deliveries were created.

// newEndpoint returns an enabled endpoint without filters, created at when,
// at version 1 as CreateEndpoint stores it.
func newEndpoint(id string, when time.Time) hub.Endpoint {
	return hub.Endpoint{
		ID: id, URL: "https://hooks.example.com/verihook/" + id, Secret: hub.NewEndpointSecret(),
		EventTypes: []string{}, Sources: []string{}, Enabled: true, CreatedAt: when, UpdatedAt: when, Version: 1,
	}
}

// createEndpoints stores endpoints and fails the test on error.
func createEndpoints(t *testing.T, s hub.Store, eps ...hub.Endpoint) {
	t.Helper()
	for _, e := range eps {
		if err := s.CreateEndpoint(ctx(t), e); err != nil {
			t.Fatalf("CreateEndpoint(%s) = %v", e.ID, err)
		}
	}
}

// getEndpoint reads one endpoint and fails the test on error.
func getEndpoint(t *testing.T, s hub.Store, id string) hub.Endpoint {
	t.Helper()
	e, err := s.Endpoint(ctx(t), id)
	if err != nil {
		t.Fatalf("Endpoint(%s) = %v", id, err)
	}
	return e
}

// ingestStatus ingests a message of source received at when with one
// observation of ref, and returns the verification.updated event it must
// produce.
func ingestStatus(t *testing.T, s hub.Store, source, ref string, status hub.Status, final bool, when time.Time) hub.Event {
	t.Helper()
	m := msg(source, fmt.Sprintf("%s:%s:%d", ref, status, when.UnixNano()), when)
	res := ingest(t, s, m, []hub.Observation{observe(m, ref, "", status, final)})
	if len(res.Events) != 1 {
		t.Fatalf("Ingest(%s %s) produced %d events, want 1", ref, status, len(res.Events))
	}
	return res.Events[0]
}

// claim calls ClaimDeliveries and fails the test on error.
func claim(t *testing.T, s hub.Store, now time.Time, limit int, lease time.Duration) []hub.Claim {
	t.Helper()
	cs, err := s.ClaimDeliveries(ctx(t), now, limit, lease)
	if err != nil {
		t.Fatalf("ClaimDeliveries(%s) = %v", now.Format(time.RFC3339), err)
	}
	return cs
}

// claimed returns the delivery ids of claims, in order.
func claimed(cs []hub.Claim) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.Delivery.ID
	}
	return ids
}

// record records an attempt of c at when with verdict status (and next for
// pending) and fails the test on error.
func record(t *testing.T, s hub.Store, c hub.Claim, status hub.DeliveryStatus, when, next time.Time) {
	t.Helper()
	code := 200
	if status != hub.DeliverySucceeded {
		code = 500
	}
	err := s.RecordAttempt(ctx(t), hub.AttemptRecord{
		DeliveryID: c.Delivery.ID, Lease: c.Lease, Status: status, NextAttemptAt: next,
		Attempt: hub.Attempt{At: when, StatusCode: code, LatencyMS: 20},
	})
	if err != nil {
		t.Fatalf("RecordAttempt(%s, %s) = %v", c.Delivery.ID, status, err)
	}
}

// getDelivery reads one delivery and fails the test on error.
func getDelivery(t *testing.T, s hub.Store, id string) hub.Delivery {
	t.Helper()
	d, err := s.Delivery(ctx(t), id)
	if err != nil {
		t.Fatalf("Delivery(%s) = %v", id, err)
	}
	return d
}

// allDeliveries lists every delivery matching f, page by page.
func allDeliveries(t *testing.T, s hub.Store, f hub.DeliveryFilter) []hub.Delivery {
	t.Helper()
	return all(t, func(cursor string) ([]hub.Delivery, string, error) {
		f.Cursor = cursor
		return s.Deliveries(ctx(t), f)
	})
}

func deliveryIDs(ds []hub.Delivery) []string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	return ids
}

// deliveryOf returns the delivery of event to endpoint, failing the test if
// there is none.
func deliveryOf(t *testing.T, s hub.Store, endpoint, event string) hub.Delivery {
	t.Helper()
	ds := allDeliveries(t, s, hub.DeliveryFilter{EndpointID: endpoint, EventID: event})
	if len(ds) != 1 {
		t.Fatalf("%d deliveries of %s to %s, want 1", len(ds), event, endpoint)
	}
	return ds[0]
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// testEndpoints: endpoints round-trip with their secrets, and the CRUD
// methods report conflicts, unknown ids and invalid input.
func testEndpoints(t *testing.T, s hub.Store) {
	if eps, err := s.Endpoints(ctx(t)); err != nil || len(eps) != 0 {
		t.Fatalf("Endpoints(empty store) = %v, %v; want none", eps, err)
	}
	full := hub.Endpoint{
		ID: "ep-full", URL: "https://crm.example.com/kyc?tenant=7", Secret: hub.NewEndpointSecret(),
		PreviousSecret: hub.NewEndpointSecret(), PreviousSecretExpiresAt: at(86400),
		EventTypes: []string{"verification.*", hub.EventOTPRequested}, Sources: []string{"idenfy-main", "kycaid-main"},
		Enabled: false, DisabledReason: "410 Gone", Ordered: true, RateLimit: 2.5, FailingSince: at(-3600),
		CreatedAt: at(0), UpdatedAt: at(5), Version: 1,
	}
	bare := hub.Endpoint{ID: "ep-bare", URL: "http://10.0.0.8:8080/hook", Secret: hub.NewEndpointSecret(),
		Enabled: true, CreatedAt: at(1), UpdatedAt: at(1), Version: 1} // nil filters
	createEndpoints(t, s, full, bare)

	if d := diff(getEndpoint(t, s, full.ID), full); d != "" {
		t.Errorf("Endpoint(%s) differs: %s", full.ID, d)
	}
	got := getEndpoint(t, s, bare.ID)
	if got.EventTypes == nil || got.Sources == nil {
		t.Errorf("Endpoint(%s) has nil filters (event types %v, sources %v), want empty slices", bare.ID, got.EventTypes, got.Sources)
	}
	if d := diff(got, bare); d != "" {
		t.Errorf("Endpoint(%s) differs: %s", bare.ID, d)
	}
	list, err := s.Endpoints(ctx(t))
	if err != nil {
		t.Fatalf("Endpoints = %v", err)
	}
	if d := diff(list, []hub.Endpoint{bare, full}); d != "" { // ordered by id
		t.Errorf("Endpoints differs: %s", d)
	}

	again := bare
	again.URL = "https://elsewhere.example.com/"
	wantCode(t, "CreateEndpoint(id stored already)", s.CreateEndpoint(ctx(t), again), hub.ECONFLICT)
	if got := getEndpoint(t, s, bare.ID); got.URL != bare.URL {
		t.Errorf("a conflicting create changed the URL to %s", got.URL)
	}

	// Update replaces everything but CreatedAt: here a secret rotation.
	rotated := full
	rotated.URL = "https://crm.example.com/kyc/v2"
	rotated.PreviousSecret, rotated.Secret = full.Secret, hub.NewEndpointSecret()
	rotated.PreviousSecretExpiresAt = at(90000)
	rotated.EventTypes, rotated.Sources = []string{hub.EventVerificationUpdated}, nil
	rotated.Enabled, rotated.DisabledReason, rotated.Ordered, rotated.RateLimit = true, "", false, 0
	rotated.FailingSince, rotated.CreatedAt, rotated.UpdatedAt = time.Time{}, at(999), at(100)
	if err := s.UpdateEndpoint(ctx(t), rotated); err != nil {
		t.Fatalf("UpdateEndpoint = %v", err)
	}
	want := rotated
	want.CreatedAt, want.Version = full.CreatedAt, 2
	if d := diff(getEndpoint(t, s, full.ID), want); d != "" {
		t.Errorf("Endpoint after update differs: %s", d)
	}

	wantCode(t, "UpdateEndpoint(unknown)", s.UpdateEndpoint(ctx(t), newEndpoint("ep-nope", at(0))), hub.ENOTFOUND)
	wantCode(t, "DeleteEndpoint(unknown)", s.DeleteEndpoint(ctx(t), "ep-nope"), hub.ENOTFOUND)
	_, err = s.Endpoint(ctx(t), "ep-nope")
	wantCode(t, "Endpoint(unknown)", err, hub.ENOTFOUND)

	if err := s.DeleteEndpoint(ctx(t), bare.ID); err != nil {
		t.Fatalf("DeleteEndpoint = %v", err)
	}
	_, err = s.Endpoint(ctx(t), bare.ID)
	wantCode(t, "Endpoint(deleted)", err, hub.ENOTFOUND)
	wantCode(t, "DeleteEndpoint(again)", s.DeleteEndpoint(ctx(t), bare.ID), hub.ENOTFOUND)
	if list, err := s.Endpoints(ctx(t)); err != nil || len(list) != 1 || list[0].ID != full.ID {
		t.Errorf("Endpoints after delete = %v, %v; want only %s", list, err, full.ID)
	}

	invalid := []struct {
		name   string
		change func(e *hub.Endpoint)
	}{
		{"bad id", func(e *hub.Endpoint) { e.ID = "not an id" }},
		{"no url", func(e *hub.Endpoint) { e.URL = "" }},
		{"relative url", func(e *hub.Endpoint) { e.URL = "/hooks" }},
		{"ftp url", func(e *hub.Endpoint) { e.URL = "ftp://example.com/x" }},
		{"no secret", func(e *hub.Endpoint) { e.Secret = "" }},
		{"secret without prefix", func(e *hub.Endpoint) { e.Secret = strings.TrimPrefix(e.Secret, hub.SecretPrefix) }},
		{"bad previous secret", func(e *hub.Endpoint) { e.PreviousSecret = "whsec_short" }},
		{"unknown event type", func(e *hub.Endpoint) { e.EventTypes = []string{"verification.exploded"} }},
		{"bad source", func(e *hub.Endpoint) { e.Sources = []string{"no such thing!"} }},
		{"negative rate limit", func(e *hub.Endpoint) { e.RateLimit = -1 }},
	}
	for _, tc := range invalid {
		e := newEndpoint("ep-invalid", at(0))
		tc.change(&e)
		wantCode(t, "CreateEndpoint("+tc.name+")", s.CreateEndpoint(ctx(t), e), hub.EINVALID)
		u := getEndpoint(t, s, full.ID)
		tc.change(&u)
		wantCode(t, "UpdateEndpoint("+tc.name+")", s.UpdateEndpoint(ctx(t), u), hub.EINVALID)
	}
	if list, _ := s.Endpoints(ctx(t)); len(list) != 1 {
		t.Errorf("%d endpoints after invalid creates, want 1", len(list))
	}
	if d := diff(getEndpoint(t, s, full.ID), want); d != "" {
		t.Errorf("Endpoint after invalid updates differs: %s", d)
	}
}

// testIngestCreatesDeliveries: Ingest creates one pending delivery per event
// per enabled endpoint that wants it, and nothing for a duplicate.
func testIngestCreatesDeliveries(t *testing.T, s hub.Store) {
	all := newEndpoint("ep-all", at(-10))
	verif := newEndpoint("ep-verif", at(-10))
	verif.EventTypes = []string{"verification.*"}
	otp := newEndpoint("ep-otp", at(-10))
	otp.EventTypes = []string{hub.EventOTPRequested, hub.EventCredentialShared}
	s2 := newEndpoint("ep-s2", at(-10))
	s2.Sources = []string{"s2"}
	off := newEndpoint("ep-off", at(-10))
	off.Enabled = false
	createEndpoints(t, s, all, verif, otp, s2, off)

	m1 := msg("s1", "m1", at(0))
	o1 := otpEvent(m1)
	res1 := ingest(t, s, m1, []hub.Observation{observe(m1, "r1", "", hub.StatusApproved, true)}, o1)
	if len(res1.Events) != 2 {
		t.Fatalf("Ingest produced %d events, want 2", len(res1.Events))
	}
	u1 := res1.Events[0]
	m2 := msg("s2", "m2", at(1))
	res2 := ingest(t, s, m2, []hub.Observation{observe(m2, "r2", "", hub.StatusReview, false)})
	u2 := res2.Events[0]

	want := map[string][]string{ // endpoint -> events
		all.ID:   {u1.ID, o1.ID, u2.ID},
		verif.ID: {u1.ID, u2.ID},
		otp.ID:   {o1.ID},
		s2.ID:    {u2.ID},
		off.ID:   nil,
	}
	if res1.Deliveries != 4 || res2.Deliveries != 3 {
		t.Errorf("Ingest reported %d and %d deliveries, want 4 and 3", res1.Deliveries, res2.Deliveries)
	}
	check := func(when string) {
		t.Helper()
		total := 0
		for ep, events := range want {
			ds := allDeliveries(t, s, hub.DeliveryFilter{EndpointID: ep})
			var got []string
			for _, d := range ds {
				got = append(got, d.EventID)
			}
			if !sameSet(got, events) {
				t.Errorf("%s: deliveries to %s are of events %v, want %v", when, ep, got, events)
			}
			total += len(ds)
		}
		if ds := allDeliveries(t, s, hub.DeliveryFilter{}); len(ds) != total {
			t.Errorf("%s: %d deliveries in all, want %d", when, len(ds), total)
		}
	}
	check("after ingest")

	d := deliveryOf(t, s, all.ID, u1.ID)
	wantD := hub.Delivery{ID: d.ID, EndpointID: all.ID, EventID: u1.ID, EventType: hub.EventVerificationUpdated,
		Source: "s1", VerificationID: u1.VerificationID, Status: hub.DeliveryPending, NextAttemptAt: m1.ReceivedAt,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if d.ID == "" || d.CreatedAt.IsZero() || d.UpdatedAt.IsZero() || u1.VerificationID == "" {
		t.Errorf("delivery = %+v, want an id and times", d)
	}
	if diffs := diff(d, wantD); diffs != "" {
		t.Errorf("delivery of %s to %s differs: %s", u1.ID, all.ID, diffs)
	}
	if d := deliveryOf(t, s, all.ID, o1.ID); d.VerificationID != "" || d.EventType != hub.EventOTPRequested ||
		d.Status != hub.DeliveryPending || !sameTime(d.NextAttemptAt, m1.ReceivedAt) {
		t.Errorf("delivery of the otp event = %+v, want pending, due at %s, without a verification", d, m1.ReceivedAt)
	}

	// A duplicate creates nothing.
	dup := msg("s1", "m1", at(2))
	res := ingest(t, s, dup, []hub.Observation{observe(dup, "r1", "", hub.StatusRejected, true)}, otpEvent(dup))
	if !res.Duplicate || res.Deliveries != 0 {
		t.Errorf("duplicate Ingest = duplicate %v, %d deliveries; want true, 0", res.Duplicate, res.Deliveries)
	}
	// So does a message without events.
	q := msg("s1", "m3", at(3))
	q.Status, q.Reason = hub.MessageQuarantined, "unknown event"
	if res := ingest(t, s, q, nil); res.Deliveries != 0 {
		t.Errorf("Ingest(quarantined) = %d deliveries, want 0", res.Deliveries)
	}
	check("after a duplicate")

	// Each endpoint change takes effect on the next Ingest.
	off.Enabled = true
	if err := s.UpdateEndpoint(ctx(t), off); err != nil {
		t.Fatal(err)
	}
	u4 := ingestStatus(t, s, "s2", "r4", hub.StatusApproved, true, at(4))
	want[all.ID] = append(want[all.ID], u4.ID)
	want[verif.ID] = append(want[verif.ID], u4.ID)
	want[s2.ID] = append(want[s2.ID], u4.ID)
	want[off.ID] = []string{u4.ID}
	check("after enabling an endpoint")

	verif.Enabled = false
	if err := s.UpdateEndpoint(ctx(t), verif); err != nil {
		t.Fatal(err)
	}
	u5 := ingestStatus(t, s, "s2", "r5", hub.StatusApproved, true, at(5))
	want[all.ID] = append(want[all.ID], u5.ID)
	want[s2.ID] = append(want[s2.ID], u5.ID)
	want[off.ID] = append(want[off.ID], u5.ID)
	check("after disabling an endpoint")

	if err := s.DeleteEndpoint(ctx(t), s2.ID); err != nil {
		t.Fatal(err)
	}
	delete(want, s2.ID)
	u6 := ingestStatus(t, s, "s2", "r6", hub.StatusApproved, true, at(6))
	want[all.ID] = append(want[all.ID], u6.ID)
	want[off.ID] = append(want[off.ID], u6.ID)
	check("after deleting an endpoint")

	late := newEndpoint("ep-late", at(7))
	late.EventTypes = []string{"*"}
	createEndpoints(t, s, late)
	u7 := ingestStatus(t, s, "s2", "r7", hub.StatusApproved, true, at(8))
	want[all.ID] = append(want[all.ID], u7.ID)
	want[off.ID] = append(want[off.ID], u7.ID)
	want[late.ID] = []string{u7.ID}
	check("after creating an endpoint")
}

// testClaimLease: a claim leases deliveries until its lease ends; then they
// can be claimed again under a new token, and the old token is refused.
func testClaimLease(t *testing.T, s hub.Store) {
	ep := newEndpoint("ep", at(-10))
	ep.PreviousSecret, ep.PreviousSecretExpiresAt = hub.NewEndpointSecret(), at(3600)
	createEndpoints(t, s, ep)
	var events []hub.Event
	for i := range 3 {
		events = append(events, ingestStatus(t, s, "s1", fmt.Sprint("r", i), hub.StatusApproved, true, at(i)))
	}
	d := make([]hub.Delivery, 3)
	for i, e := range events {
		d[i] = deliveryOf(t, s, ep.ID, e.ID)
	}
	const lease = 30 * time.Second

	_, err := s.ClaimDeliveries(ctx(t), at(1), 0, lease)
	wantCode(t, "ClaimDeliveries(limit 0)", err, hub.EINVALID)
	_, err = s.ClaimDeliveries(ctx(t), at(1), 1, 0)
	wantCode(t, "ClaimDeliveries(lease 0)", err, hub.EINVALID)

	// Due by at(1): d0 and d1, oldest due first; d2 is not due yet.
	first := claim(t, s, at(1), 10, lease)
	if got := claimed(first); !slices.Equal(got, []string{d[0].ID, d[1].ID}) {
		t.Fatalf("claim at 1s = %v, want %v", got, []string{d[0].ID, d[1].ID})
	}
	for i, c := range first {
		if c.Lease == "" {
			t.Errorf("claim %d has no lease token", i)
		}
		if diffs := diff(c.Delivery, d[i]); diffs != "" {
			t.Errorf("claim %d: delivery differs: %s", i, diffs)
		}
		if diffs := diff(c.Event, events[i]); diffs != "" {
			t.Errorf("claim %d: event differs: %s", i, diffs)
		}
		if diffs := diff(c.Endpoint, ep); diffs != "" {
			t.Errorf("claim %d: endpoint differs: %s", i, diffs)
		}
	}
	if first[0].Lease == first[1].Lease {
		t.Errorf("two claims share the lease token %q", first[0].Lease)
	}

	// Leased deliveries are not claimed again while their lease holds.
	if got := claimed(claim(t, s, at(2), 10, lease)); !slices.Equal(got, []string{d[2].ID}) {
		t.Fatalf("claim at 2s = %v, want only %s", got, d[2].ID)
	}
	if got := claim(t, s, at(30), 10, lease); len(got) != 0 {
		t.Fatalf("claim at 30s = %v, want nothing: every lease holds", claimed(got))
	}

	// At 31s the leases taken at 1s have ended (the one taken at 2s has not).
	second := claim(t, s, at(1).Add(lease), 1, lease)
	if got := claimed(second); !slices.Equal(got, []string{d[0].ID}) {
		t.Fatalf("claim of 1 when the first leases end = %v, want %s", got, d[0].ID)
	}
	third := claim(t, s, at(1).Add(lease), 10, lease)
	if got := claimed(third); !slices.Equal(got, []string{d[1].ID}) {
		t.Fatalf("claim when the first leases end = %v, want %s", got, d[1].ID)
	}
	if second[0].Lease == first[0].Lease || third[0].Lease == first[1].Lease {
		t.Errorf("a delivery claimed again kept its lease token")
	}

	// The first worker's token is stale: its verdict is refused and changes
	// nothing.
	stale := hub.AttemptRecord{DeliveryID: d[0].ID, Lease: first[0].Lease, Status: hub.DeliverySucceeded,
		Attempt: hub.Attempt{At: at(32), StatusCode: 200}}
	wantCode(t, "RecordAttempt(stale lease)", s.RecordAttempt(ctx(t), stale), hub.ECONFLICT)
	wantCode(t, "Release(stale lease)", s.Release(ctx(t), d[0].ID, first[0].Lease, at(40)), hub.ECONFLICT)
	got := getDelivery(t, s, d[0].ID)
	if got.Status != hub.DeliveryPending || got.Attempts != 0 || len(got.AttemptLog) != 0 {
		t.Errorf("after a stale RecordAttempt: %s, %d attempts, %d logged; want pending, 0, 0", got.Status, got.Attempts, len(got.AttemptLog))
	}
	// The current holder records.
	fresh := stale
	fresh.Lease = second[0].Lease
	if err := s.RecordAttempt(ctx(t), fresh); err != nil {
		t.Fatalf("RecordAttempt(current lease) = %v", err)
	}
	// Its token is spent.
	wantCode(t, "RecordAttempt(spent lease)", s.RecordAttempt(ctx(t), fresh), hub.ECONFLICT)
	if got := getDelivery(t, s, d[0].ID); got.Status != hub.DeliverySucceeded || got.Attempts != 1 || len(got.AttemptLog) != 1 {
		t.Errorf("after RecordAttempt: %s, %d attempts, %d logged; want succeeded, 1, 1", got.Status, got.Attempts, len(got.AttemptLog))
	}
	unknown := fresh
	unknown.DeliveryID = hub.NewID("dlv", at(0))
	wantCode(t, "RecordAttempt(unknown delivery)", s.RecordAttempt(ctx(t), unknown), hub.ENOTFOUND)
	// A succeeded delivery is never claimed again.
	if got := claim(t, s, at(10000), 10, lease); !sameSet(claimed(got), []string{d[1].ID, d[2].ID}) {
		t.Errorf("claim much later = %v, want %v", claimed(got), []string{d[1].ID, d[2].ID})
	}
}

// testRecordAttempt: the verdict of an attempt updates the delivery, its
// log and the endpoint's failure state.
func testRecordAttempt(t *testing.T, s hub.Store) {
	ep := newEndpoint("ep", at(-10))
	createEndpoints(t, s, ep)
	var d []hub.Delivery
	for i := range 3 {
		e := ingestStatus(t, s, "s1", fmt.Sprint("r", i), hub.StatusApproved, true, at(i))
		d = append(d, deliveryOf(t, s, ep.ID, e.ID))
	}
	cs := claim(t, s, at(10), 10, time.Hour)
	if len(cs) != 3 {
		t.Fatalf("claimed %d deliveries, want 3", len(cs))
	}
	c0, c1, c2 := cs[0], cs[1], cs[2]

	bad := []hub.AttemptRecord{
		{DeliveryID: c0.Delivery.ID, Lease: c0.Lease, Status: "lost", Attempt: hub.Attempt{At: at(11)}},
		{DeliveryID: c0.Delivery.ID, Lease: c0.Lease, Status: hub.DeliveryPending, Attempt: hub.Attempt{At: at(11)}},
		{DeliveryID: c0.Delivery.ID, Lease: c0.Lease, Status: hub.DeliveryFailed, Attempt: hub.Attempt{At: at(11), ID: "not an id"}},
		{DeliveryID: c0.Delivery.ID, Lease: c0.Lease, Status: hub.DeliveryFailed, Attempt: hub.Attempt{At: at(11), DeliveryID: c1.Delivery.ID}},
	}
	for i, r := range bad {
		wantCode(t, fmt.Sprintf("RecordAttempt(bad %d)", i), s.RecordAttempt(ctx(t), r), hub.EINVALID)
	}

	// A failure to retry later.
	a1 := hub.Attempt{ID: hub.NewID("att", at(11)), At: at(11), StatusCode: 503, LatencyMS: 1200,
		Response: `{"error":"maintenance"}`, Error: "HTTP 503"}
	if err := s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: c0.Delivery.ID, Lease: c0.Lease, Attempt: a1,
		Status: hub.DeliveryPending, NextAttemptAt: at(100)}); err != nil {
		t.Fatalf("RecordAttempt(pending) = %v", err)
	}
	got := getDelivery(t, s, c0.Delivery.ID)
	if got.Status != hub.DeliveryPending || got.Attempts != 1 || !sameTime(got.NextAttemptAt, at(100)) ||
		got.LastStatusCode != 503 || got.LastError != "HTTP 503" {
		t.Errorf("after a failed attempt: %+v; want pending, 1 attempt, next at 100s, 503, HTTP 503", got)
	}
	if fs := getEndpoint(t, s, ep.ID).FailingSince; !sameTime(fs, at(11)) {
		t.Errorf("FailingSince after a failure = %v, want %v", fs, at(11))
	}
	// A failure for good: FailingSince keeps the start of the run.
	a2 := hub.Attempt{At: at(12), Error: "dial tcp: connection refused", LatencyMS: 3}
	if err := s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: c1.Delivery.ID, Lease: c1.Lease, Attempt: a2,
		Status: hub.DeliveryFailed}); err != nil {
		t.Fatalf("RecordAttempt(failed) = %v", err)
	}
	got = getDelivery(t, s, c1.Delivery.ID)
	if got.Status != hub.DeliveryFailed || got.Attempts != 1 || !got.NextAttemptAt.IsZero() || got.LastStatusCode != 0 ||
		got.LastError != a2.Error {
		t.Errorf("after a final failure: %+v; want failed, 1 attempt, no next time, no status code, %q", got, a2.Error)
	}
	if len(got.AttemptLog) != 1 || got.AttemptLog[0].ID == "" {
		t.Fatalf("attempt log = %+v, want 1 attempt with an id given by the store", got.AttemptLog)
	}
	wantA2 := a2
	wantA2.ID, wantA2.DeliveryID = got.AttemptLog[0].ID, c1.Delivery.ID
	if diffs := diff(got.AttemptLog[0], wantA2); diffs != "" {
		t.Errorf("attempt differs: %s", diffs)
	}
	if fs := getEndpoint(t, s, ep.ID).FailingSince; !sameTime(fs, at(11)) {
		t.Errorf("FailingSince after a second failure = %v, want still %v", fs, at(11))
	}

	// The retry: not before its time.
	if got := claim(t, s, at(99), 10, time.Hour); len(got) != 0 {
		t.Errorf("claim before the retry time = %v, want nothing", claimed(got))
	}
	again := claim(t, s, at(100), 10, time.Hour)
	if len(again) != 1 || again[0].Delivery.ID != c0.Delivery.ID || again[0].Delivery.Attempts != 1 {
		t.Fatalf("claim at the retry time = %v, want %s with 1 attempt", claimed(again), c0.Delivery.ID)
	}
	a3 := hub.Attempt{ID: hub.NewID("att", at(101)), At: at(101), StatusCode: 204, LatencyMS: 40}
	if err := s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: c0.Delivery.ID, Lease: again[0].Lease, Attempt: a3,
		Status: hub.DeliverySucceeded}); err != nil {
		t.Fatalf("RecordAttempt(succeeded) = %v", err)
	}
	got = getDelivery(t, s, c0.Delivery.ID)
	if got.Status != hub.DeliverySucceeded || got.Attempts != 2 || !got.NextAttemptAt.IsZero() || got.LastStatusCode != 204 ||
		got.LastError != "" {
		t.Errorf("after success: %+v; want succeeded, 2 attempts, no next time, 204, no error", got)
	}
	// The log, newest first.
	wantLog := []hub.Attempt{a3, a1}
	for i := range wantLog {
		wantLog[i].DeliveryID = c0.Delivery.ID
	}
	if diffs := diff(got.AttemptLog, wantLog); diffs != "" {
		t.Errorf("attempt log differs: %s", diffs)
	}
	if fs := getEndpoint(t, s, ep.ID).FailingSince; !fs.IsZero() {
		t.Errorf("FailingSince after a success = %v, want zero", fs)
	}
	// Lists do not carry attempts.
	for _, d := range allDeliveries(t, s, hub.DeliveryFilter{}) {
		if len(d.AttemptLog) != 0 {
			t.Errorf("Deliveries returned %d attempts of %s", len(d.AttemptLog), d.ID)
		}
	}

	// 410 Gone: the delivery fails and the endpoint is disabled.
	if err := s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: c2.Delivery.ID, Lease: c2.Lease,
		Attempt: hub.Attempt{At: at(102), StatusCode: 410}, Status: hub.DeliveryFailed,
		DisableEndpoint: "the endpoint answered 410 Gone"}); err != nil {
		t.Fatalf("RecordAttempt(disable) = %v", err)
	}
	e := getEndpoint(t, s, ep.ID)
	if e.Enabled || e.DisabledReason != "the endpoint answered 410 Gone" || !sameTime(e.FailingSince, at(102)) {
		t.Errorf("endpoint after 410 = enabled %v, reason %q, failing since %v; want disabled with the reason, failing since %v",
			e.Enabled, e.DisabledReason, e.FailingSince, at(102))
	}
	if e.Secret != ep.Secret || e.URL != ep.URL {
		t.Errorf("disabling changed the endpoint's secret or URL")
	}
	// A disabled endpoint gets no new deliveries and none of its pending
	// ones is claimed.
	later := msg("s1", "later", at(200))
	if res := ingest(t, s, later, []hub.Observation{observe(later, "r9", "", hub.StatusApproved, true)}); res.Deliveries != 0 {
		t.Errorf("Ingest for a disabled endpoint created %d deliveries", res.Deliveries)
	}
	if _, err := s.RetryDelivery(ctx(t), c1.Delivery.ID, at(200)); err != nil {
		t.Fatal(err)
	}
	if got := claim(t, s, at(300), 10, time.Hour); len(got) != 0 {
		t.Errorf("claimed %v of a disabled endpoint", claimed(got))
	}
	// Enabled again, it is served again.
	e.Enabled, e.DisabledReason = true, ""
	if err := s.UpdateEndpoint(ctx(t), e); err != nil {
		t.Fatal(err)
	}
	if got := claimed(claim(t, s, at(300), 10, time.Hour)); !slices.Equal(got, []string{c1.Delivery.ID}) {
		t.Errorf("claim once enabled again = %v, want %s", got, c1.Delivery.ID)
	}
}

// testOrderedDelivery: an ordered endpoint gets the events of one
// verification one at a time, in order; other verifications, events without
// a verification, and unordered endpoints are not held up.
func testOrderedDelivery(t *testing.T, s hub.Store) {
	ord := newEndpoint("ep-ordered", at(-10))
	ord.Ordered = true
	free := newEndpoint("ep-free", at(-10))
	createEndpoints(t, s, ord, free)

	a1 := ingestStatus(t, s, "s1", "ref-a", hub.StatusPending, false, at(0))
	a2 := ingestStatus(t, s, "s1", "ref-a", hub.StatusReview, false, at(1))
	a3 := ingestStatus(t, s, "s1", "ref-a", hub.StatusApproved, true, at(2))
	b1 := ingestStatus(t, s, "s1", "ref-b", hub.StatusApproved, true, at(3))
	m := msg("s1", "otp", at(4))
	o1 := otpEvent(m)
	ingest(t, s, m, nil, o1)
	if a1.VerificationID == "" || a1.VerificationID != a3.VerificationID || b1.VerificationID == a1.VerificationID {
		t.Fatalf("verification ids: a %s %s, b %s", a1.VerificationID, a3.VerificationID, b1.VerificationID)
	}
	dl := func(ep string, e hub.Event) string { return deliveryOf(t, s, ep, e.ID).ID }

	want := []string{dl(ord.ID, a1), dl(ord.ID, b1), dl(ord.ID, o1),
		dl(free.ID, a1), dl(free.ID, a2), dl(free.ID, a3), dl(free.ID, b1), dl(free.ID, o1)}
	cs := claim(t, s, at(10), 100, time.Hour)
	if got := claimed(cs); !sameSet(got, want) {
		t.Fatalf("first claim = %v, want %v (the head of each verification to the ordered endpoint, everything to the other)", got, want)
	}
	byID := map[string]hub.Claim{}
	for _, c := range cs {
		byID[c.Delivery.ID] = c
	}
	if got := claim(t, s, at(10), 100, time.Hour); len(got) != 0 {
		t.Fatalf("second claim = %v, want nothing", claimed(got))
	}

	// a1 fails and will be retried at 20s: a2 waits for it.
	record(t, s, byID[dl(ord.ID, a1)], hub.DeliveryPending, at(11), at(20))
	if got := claim(t, s, at(15), 100, time.Hour); len(got) != 0 {
		t.Fatalf("claim while a1 waits for its retry = %v, want nothing", claimed(got))
	}
	retry := claim(t, s, at(20), 100, time.Hour)
	if got := claimed(retry); !slices.Equal(got, []string{dl(ord.ID, a1)}) {
		t.Fatalf("claim at a1's retry time = %v, want only a1 (%s)", got, dl(ord.ID, a1))
	}
	// a1 succeeds: a2 is next, and only a2.
	record(t, s, retry[0], hub.DeliverySucceeded, at(21), time.Time{})
	next := claim(t, s, at(22), 100, time.Hour)
	if got := claimed(next); !slices.Equal(got, []string{dl(ord.ID, a2)}) {
		t.Fatalf("claim after a1 succeeded = %v, want only a2 (%s)", got, dl(ord.ID, a2))
	}
	// a2 fails for good: a3 is next.
	record(t, s, next[0], hub.DeliveryFailed, at(23), time.Time{})
	last := claim(t, s, at(24), 100, time.Hour)
	if got := claimed(last); !slices.Equal(got, []string{dl(ord.ID, a3)}) {
		t.Fatalf("claim after a2 failed = %v, want only a3 (%s)", got, dl(ord.ID, a3))
	}
	if last[0].Event.ID != a3.ID || last[0].Event.VerificationID != a1.VerificationID {
		t.Errorf("claimed event = %s (verification %s), want %s", last[0].Event.ID, last[0].Event.VerificationID, a3.ID)
	}
}

// testOrderedBacklog: an ordered endpoint that was down holds a backlog in
// which each verification's first delivery waits for its retry and every
// later one is due. Claims then return nothing until the retries are due,
// and the backlog drains one delivery per verification at a time, in
// creation order, however small the claims.
func testOrderedBacklog(t *testing.T, s hub.Store) {
	ord := newEndpoint("ep-ordered", at(-10))
	ord.Ordered = true
	createEndpoints(t, s, ord)
	const refs, perRef = 8, 6
	order := map[string][]string{} // verification -> its deliveries, in creation order
	for i := range refs * perRef {
		status := hub.StatusPending
		if (i/refs)%2 == 1 {
			status = hub.StatusReview
		}
		e := ingestStatus(t, s, "s1", fmt.Sprint("r", i%refs), status, false, at(i))
		order[e.VerificationID] = append(order[e.VerificationID], deliveryOf(t, s, ord.ID, e.ID).ID)
	}
	nth := func(n int) []string {
		var ids []string
		for _, ds := range order {
			ids = append(ids, ds[n])
		}
		return ids
	}

	heads := claim(t, s, at(100), 100, time.Hour)
	if got := claimed(heads); !sameSet(got, nth(0)) {
		t.Fatalf("first claim = %v, want the first delivery of each verification %v", got, nth(0))
	}
	for _, c := range heads {
		record(t, s, c, hub.DeliveryPending, at(101), at(1000))
	}
	if got := claim(t, s, at(999), 100, time.Hour); len(got) != 0 {
		t.Fatalf("claim while the first deliveries wait for their retry = %v, want nothing", claimed(got))
	}

	now := 1000
	for n := range perRef {
		var round []hub.Claim
		for {
			cs := claim(t, s, at(now), 3, time.Hour)
			if len(cs) == 0 {
				break
			}
			round = append(round, cs...)
		}
		if got := claimed(round); !sameSet(got, nth(n)) {
			t.Fatalf("round %d: claimed %v, want delivery %d of each verification %v", n, got, n, nth(n))
		}
		for _, c := range round {
			record(t, s, c, hub.DeliverySucceeded, at(now+1), time.Time{})
		}
		now += 2
	}
}

// testRelease: a released delivery is due again at the given time, without
// an attempt.
func testRelease(t *testing.T, s hub.Store) {
	ep := newEndpoint("ep", at(-10))
	createEndpoints(t, s, ep)
	e0 := ingestStatus(t, s, "s1", "r0", hub.StatusApproved, true, at(0))
	ingestStatus(t, s, "s1", "r1", hub.StatusApproved, true, at(1))
	cs := claim(t, s, at(10), 10, time.Hour)
	if len(cs) != 2 {
		t.Fatalf("claimed %d, want 2", len(cs))
	}
	d0 := deliveryOf(t, s, ep.ID, e0.ID)
	wantCode(t, "Release(wrong lease)", s.Release(ctx(t), d0.ID, cs[1].Lease, at(50)), hub.ECONFLICT)
	wantCode(t, "Release(unknown)", s.Release(ctx(t), hub.NewID("dlv", at(0)), cs[0].Lease, at(50)), hub.ENOTFOUND)
	if err := s.Release(ctx(t), d0.ID, cs[0].Lease, at(50)); err != nil {
		t.Fatalf("Release = %v", err)
	}
	wantCode(t, "Release(again)", s.Release(ctx(t), d0.ID, cs[0].Lease, at(50)), hub.ECONFLICT)
	got := getDelivery(t, s, d0.ID)
	if got.Status != hub.DeliveryPending || got.Attempts != 0 || len(got.AttemptLog) != 0 || !sameTime(got.NextAttemptAt, at(50)) {
		t.Errorf("released delivery = %+v; want pending, no attempt, due at 50s", got)
	}
	if got := claim(t, s, at(49), 10, time.Hour); len(got) != 0 {
		t.Errorf("claim before the release time = %v, want nothing", claimed(got))
	}
	again := claim(t, s, at(50), 10, time.Hour)
	if got := claimed(again); !slices.Equal(got, []string{d0.ID}) {
		t.Fatalf("claim at the release time = %v, want %s", got, d0.ID)
	}
	wantCode(t, "RecordAttempt(released lease)", s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: d0.ID,
		Lease: cs[0].Lease, Status: hub.DeliverySucceeded, Attempt: hub.Attempt{At: at(51)}}), hub.ECONFLICT)
	record(t, s, again[0], hub.DeliverySucceeded, at(51), time.Time{})
}

// testDeliveryFilters: Deliveries filters by endpoint, event and status,
// newest first, page by page.
func testDeliveryFilters(t *testing.T, s hub.Store) {
	e1, e2 := newEndpoint("ep-1", at(-10)), newEndpoint("ep-2", at(-10))
	createEndpoints(t, s, e1, e2)
	var events []hub.Event
	for i := range 5 {
		events = append(events, ingestStatus(t, s, "s1", fmt.Sprint("r", i), hub.StatusApproved, true, at(i)))
	}
	cs := claim(t, s, at(10), 100, time.Hour)
	if len(cs) != 10 {
		t.Fatalf("claimed %d, want 10", len(cs))
	}
	// e1's first two succeed, e2's first fails.
	status := map[string]hub.DeliveryStatus{}
	for _, c := range cs {
		status[c.Delivery.ID] = hub.DeliveryPending
		switch {
		case c.Delivery.EndpointID == e1.ID && (c.Event.ID == events[0].ID || c.Event.ID == events[1].ID):
			record(t, s, c, hub.DeliverySucceeded, at(11), time.Time{})
			status[c.Delivery.ID] = hub.DeliverySucceeded
		case c.Delivery.EndpointID == e2.ID && c.Event.ID == events[0].ID:
			record(t, s, c, hub.DeliveryFailed, at(11), time.Time{})
			status[c.Delivery.ID] = hub.DeliveryFailed
		}
	}
	everything := allDeliveries(t, s, hub.DeliveryFilter{})
	descending(t, "Deliveries", deliveryIDs(everything))
	if len(everything) != 10 {
		t.Fatalf("%d deliveries, want 10", len(everything))
	}
	for _, d := range everything {
		if d.Status != status[d.ID] {
			t.Errorf("delivery %s is %s, want %s", d.ID, d.Status, status[d.ID])
		}
	}
	count := func(keep func(d hub.Delivery) bool) int {
		n := 0
		for _, d := range everything {
			if keep(d) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name   string
		filter hub.DeliveryFilter
		want   int
	}{
		{"endpoint", hub.DeliveryFilter{EndpointID: e1.ID}, 5},
		{"event", hub.DeliveryFilter{EventID: events[0].ID}, 2},
		{"succeeded", hub.DeliveryFilter{Status: hub.DeliverySucceeded}, 2},
		{"failed", hub.DeliveryFilter{Status: hub.DeliveryFailed}, 1},
		{"pending", hub.DeliveryFilter{Status: hub.DeliveryPending}, 7},
		{"endpoint and status", hub.DeliveryFilter{EndpointID: e1.ID, Status: hub.DeliveryPending}, 3},
		{"endpoint and event", hub.DeliveryFilter{EndpointID: e2.ID, EventID: events[0].ID}, 1},
		{"unknown endpoint", hub.DeliveryFilter{EndpointID: "ep-nope"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := allDeliveries(t, s, tc.filter)
			descending(t, "Deliveries", deliveryIDs(got))
			want := count(func(d hub.Delivery) bool {
				return (tc.filter.EndpointID == "" || d.EndpointID == tc.filter.EndpointID) &&
					(tc.filter.EventID == "" || d.EventID == tc.filter.EventID) &&
					(tc.filter.Status == "" || d.Status == tc.filter.Status)
			})
			if len(got) != tc.want || want != tc.want {
				t.Errorf("Deliveries(%+v) = %d, want %d", tc.filter, len(got), tc.want)
			}
			for _, d := range got {
				if (tc.filter.EndpointID != "" && d.EndpointID != tc.filter.EndpointID) ||
					(tc.filter.EventID != "" && d.EventID != tc.filter.EventID) ||
					(tc.filter.Status != "" && d.Status != tc.filter.Status) {
					t.Errorf("Deliveries(%+v) returned %+v", tc.filter, d)
				}
			}
		})
	}

	// Pages of 3: 3, 3, 3, 1, the same deliveries in the same order.
	var paged []string
	cursor := ""
	for page := 0; ; page++ {
		ds, next, err := s.Deliveries(ctx(t), hub.DeliveryFilter{Page: hub.Page{Limit: 3, Cursor: cursor}})
		if err != nil {
			t.Fatalf("Deliveries(page %d) = %v", page, err)
		}
		if (next == "") != (page == 3) || (page < 3 && len(ds) != 3) || (page == 3 && len(ds) != 1) {
			t.Fatalf("page %d: %d deliveries, next %q; want pages of 3, 3, 3, 1", page, len(ds), next)
		}
		paged = append(paged, deliveryIDs(ds)...)
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(paged, deliveryIDs(everything)) {
		t.Errorf("paged = %v, want %v", paged, deliveryIDs(everything))
	}

	for _, p := range []hub.Page{{Limit: -1}, {Limit: hub.MaxPageLimit + 1}, {Cursor: "not a cursor"}, {Cursor: "' OR '1'='1"}} {
		_, _, err := s.Deliveries(ctx(t), hub.DeliveryFilter{Page: p})
		wantCode(t, fmt.Sprintf("Deliveries(%+v)", p), err, hub.EINVALID)
	}
	_, _, err := s.Deliveries(ctx(t), hub.DeliveryFilter{Status: "lost"})
	wantCode(t, "Deliveries(unknown status)", err, hub.EINVALID)
	_, err = s.Delivery(ctx(t), hub.NewID("dlv", at(0)))
	wantCode(t, "Delivery(unknown)", err, hub.ENOTFOUND)
}

// testRetryDelivery: a delivery retried by hand is pending with a fresh
// schedule, and a worker still holding it loses its lease.
func testRetryDelivery(t *testing.T, s hub.Store) {
	ep := newEndpoint("ep", at(-10))
	createEndpoints(t, s, ep)
	e := ingestStatus(t, s, "s1", "r0", hub.StatusApproved, true, at(0))
	cs := claim(t, s, at(1), 10, time.Hour)
	if len(cs) != 1 {
		t.Fatalf("claimed %d, want 1", len(cs))
	}
	record(t, s, cs[0], hub.DeliveryFailed, at(2), time.Time{})
	if got := claim(t, s, at(3), 10, time.Hour); len(got) != 0 {
		t.Fatalf("claimed a failed delivery: %v", claimed(got))
	}

	d, err := s.RetryDelivery(ctx(t), cs[0].Delivery.ID, at(100))
	if err != nil {
		t.Fatalf("RetryDelivery = %v", err)
	}
	if d.ID != cs[0].Delivery.ID || d.EventID != e.ID || d.Status != hub.DeliveryPending || d.Attempts != 0 ||
		!sameTime(d.NextAttemptAt, at(100)) {
		t.Errorf("RetryDelivery = %+v; want pending, 0 attempts, due at 100s", d)
	}
	got := getDelivery(t, s, d.ID)
	if len(got.AttemptLog) != 1 {
		t.Errorf("the retry dropped the attempt log: %d attempts", len(got.AttemptLog))
	}
	got.AttemptLog = nil
	if diffs := diff(got, d); diffs != "" {
		t.Errorf("Delivery after RetryDelivery differs from what it returned: %s", diffs)
	}
	if got := claim(t, s, at(99), 10, time.Hour); len(got) != 0 {
		t.Errorf("claimed before the retry time: %v", claimed(got))
	}
	held := claim(t, s, at(100), 10, time.Hour)
	if len(held) != 1 || held[0].Delivery.Attempts != 0 {
		t.Fatalf("claim at the retry time = %v, want the delivery with 0 attempts", claimed(held))
	}

	// Retried while a worker holds it: the worker's lease is gone.
	if _, err := s.RetryDelivery(ctx(t), d.ID, at(200)); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "RecordAttempt(after a retry)", s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: d.ID,
		Lease: held[0].Lease, Status: hub.DeliverySucceeded, Attempt: hub.Attempt{At: at(201), StatusCode: 200}}), hub.ECONFLICT)
	wantCode(t, "Release(after a retry)", s.Release(ctx(t), d.ID, held[0].Lease, at(201)), hub.ECONFLICT)
	again := claim(t, s, at(200), 10, time.Hour)
	if got := claimed(again); !slices.Equal(got, []string{d.ID}) || again[0].Lease == held[0].Lease {
		t.Errorf("claim after a retry of a held delivery = %v, want %s under a new lease", got, d.ID)
	}

	_, err = s.RetryDelivery(ctx(t), hub.NewID("dlv", at(0)), at(0))
	wantCode(t, "RetryDelivery(unknown)", err, hub.ENOTFOUND)
}

// testReplay: Replay resets an endpoint's deliveries of a time range, by
// status, and creates those the endpoint never had.
func testReplay(t *testing.T, s hub.Store) {
	ep := newEndpoint("ep", at(-10))
	createEndpoints(t, s, ep)
	events := []hub.Event{
		ingestStatus(t, s, "s1", "r0", hub.StatusApproved, true, at(0)),
		ingestStatus(t, s, "s1", "r1", hub.StatusApproved, true, at(10)),
		ingestStatus(t, s, "s1", "r2", hub.StatusApproved, true, at(20)),
		ingestStatus(t, s, "s2", "r3", hub.StatusApproved, true, at(30)),
	}
	var d []string
	for _, e := range events {
		d = append(d, deliveryOf(t, s, ep.ID, e.ID).ID)
	}
	cs := claim(t, s, at(40), 10, time.Hour)
	if len(cs) != 4 {
		t.Fatalf("claimed %d, want 4", len(cs))
	}
	verdicts := []hub.DeliveryStatus{hub.DeliverySucceeded, hub.DeliveryFailed, hub.DeliverySucceeded, hub.DeliveryFailed}
	for i, c := range cs {
		record(t, s, c, verdicts[slices.Index(d, c.Delivery.ID)], at(41+i), time.Time{})
	}
	// states returns the status of each of d and checks that those of
	// replayed (indexes into d) have a fresh schedule due at now.
	states := func(now time.Time, replayed ...int) []hub.DeliveryStatus {
		t.Helper()
		var out []hub.DeliveryStatus
		for i, id := range d {
			got := getDelivery(t, s, id)
			out = append(out, got.Status)
			if slices.Contains(replayed, i) && (got.Status != hub.DeliveryPending || got.Attempts != 0 || !got.NextAttemptAt.Equal(now)) {
				t.Errorf("replayed delivery %s: %s, %d attempts, due %v; want pending, 0, %v", id, got.Status, got.Attempts, got.NextAttemptAt, now)
			}
		}
		return out
	}
	succeeded, failed, pending := hub.DeliverySucceeded, hub.DeliveryFailed, hub.DeliveryPending

	n, err := s.Replay(ctx(t), hub.Replay{EndpointID: ep.ID, Since: at(10), Status: failed, Now: at(50)})
	if err != nil || n != 2 {
		t.Fatalf("Replay(failed since 10s) = %d, %v; want 2", n, err)
	}
	if got := states(at(50), 1, 3); !slices.Equal(got, []hub.DeliveryStatus{succeeded, pending, succeeded, pending}) {
		t.Errorf("after replaying failed since 10s: %v", got)
	}
	// Until is exclusive.
	n, err = s.Replay(ctx(t), hub.Replay{EndpointID: ep.ID, Since: at(0), Until: at(20), Status: succeeded, Now: at(60)})
	if err != nil || n != 1 {
		t.Fatalf("Replay(succeeded in [0s, 20s)) = %d, %v; want 1", n, err)
	}
	if got := states(at(60), 0); !slices.Equal(got, []hub.DeliveryStatus{pending, pending, succeeded, pending}) {
		t.Errorf("after replaying succeeded in [0s, 20s): %v", got)
	}
	// No status: everything of the range, whatever its status, and nothing
	// created where every event has its delivery.
	n, err = s.Replay(ctx(t), hub.Replay{EndpointID: ep.ID, Since: at(20), Now: at(70)})
	if err != nil || n != 2 {
		t.Fatalf("Replay(since 20s) = %d, %v; want 2", n, err)
	}
	if got := states(at(70), 2, 3); !slices.Equal(got, []hub.DeliveryStatus{pending, pending, pending, pending}) {
		t.Errorf("after replaying since 20s: %v", got)
	}
	if ds := allDeliveries(t, s, hub.DeliveryFilter{}); len(ds) != 4 {
		t.Errorf("%d deliveries after replays, want still 4", len(ds))
	}

	// An endpoint created after the events gets the ones its filters admit.
	late := newEndpoint("ep-late", at(35))
	late.EventTypes, late.Sources = []string{"verification.*"}, []string{"s1"}
	off := newEndpoint("ep-off", at(35))
	off.Enabled = false
	picky := newEndpoint("ep-picky", at(35))
	createEndpoints(t, s, late, off, picky)
	n, err = s.Replay(ctx(t), hub.Replay{EndpointID: late.ID, Since: at(10), Now: at(80)})
	if err != nil || n != 2 {
		t.Fatalf("Replay(a new endpoint, since 10s) = %d, %v; want 2", n, err)
	}
	created := allDeliveries(t, s, hub.DeliveryFilter{EndpointID: late.ID})
	var got []string
	for _, c := range created {
		got = append(got, c.EventID)
		if c.Status != pending || c.Attempts != 0 || !sameTime(c.NextAttemptAt, at(80)) || c.EventType != hub.EventVerificationUpdated ||
			c.Source != "s1" || c.VerificationID == "" {
			t.Errorf("created delivery = %+v; want pending, due at 80s, with the event's type, source and verification", c)
		}
	}
	if !sameSet(got, []string{events[1].ID, events[2].ID}) {
		t.Errorf("replay created deliveries of %v, want %v", got, []string{events[1].ID, events[2].ID})
	}
	// Again: reset, not duplicated.
	if n, err := s.Replay(ctx(t), hub.Replay{EndpointID: late.ID, Since: at(10), Now: at(90)}); err != nil || n != 2 {
		t.Errorf("Replay(again) = %d, %v; want 2", n, err)
	}
	if ds := allDeliveries(t, s, hub.DeliveryFilter{EndpointID: late.ID}); len(ds) != 2 {
		t.Errorf("%d deliveries after a second replay, want 2", len(ds))
	}
	// Replay ignores Enabled when it creates, but claims still honour it.
	if n, err := s.Replay(ctx(t), hub.Replay{EndpointID: off.ID, Now: at(100)}); err != nil || n != 4 {
		t.Errorf("Replay(disabled endpoint, from the start) = %d, %v; want 4", n, err)
	}
	for _, c := range claim(t, s, at(1000), 100, time.Hour) {
		if c.Delivery.EndpointID == off.ID {
			t.Errorf("claimed %s of a disabled endpoint", c.Delivery.ID)
		}
	}
	// A status filter never creates.
	if n, err := s.Replay(ctx(t), hub.Replay{EndpointID: picky.ID, Status: failed, Now: at(100)}); err != nil || n != 0 {
		t.Errorf("Replay(failed, new endpoint) = %d, %v; want 0", n, err)
	}
	if ds := allDeliveries(t, s, hub.DeliveryFilter{EndpointID: picky.ID}); len(ds) != 0 {
		t.Errorf("a replay with a status filter created %d deliveries", len(ds))
	}

	_, err = s.Replay(ctx(t), hub.Replay{EndpointID: "ep-nope", Now: at(100)})
	wantCode(t, "Replay(unknown endpoint)", err, hub.ENOTFOUND)
	_, err = s.Replay(ctx(t), hub.Replay{EndpointID: ep.ID, Status: "lost", Now: at(100)})
	wantCode(t, "Replay(unknown status)", err, hub.EINVALID)
}

// testDeliveryLatency: lists and reads of deliveries carry the latency of
// each one's last attempt, 0 before the first.
func testDeliveryLatency(t *testing.T, s hub.Store) {
	createEndpoints(t, s, newEndpoint("ep", at(-10)))
	ingestStatus(t, s, "s1", "r0", hub.StatusApproved, true, at(0))
	cs := claim(t, s, at(5), 1, time.Minute)
	record(t, s, cs[0], hub.DeliveryPending, at(6), at(7)) // 20 ms
	cs = claim(t, s, at(8), 1, time.Minute)
	if len(cs) != 1 {
		t.Fatalf("claimed %d, want the delivery due again", len(cs))
	}
	err := s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: cs[0].Delivery.ID, Lease: cs[0].Lease,
		Status: hub.DeliverySucceeded, Attempt: hub.Attempt{At: at(9), StatusCode: 200, LatencyMS: 35}})
	if err != nil {
		t.Fatal(err)
	}
	ingestStatus(t, s, "s1", "r1", hub.StatusApproved, true, at(10))
	got := map[string]int64{}
	for _, d := range allDeliveries(t, s, hub.DeliveryFilter{}) {
		got[d.ID] = d.LastLatencyMS
	}
	if len(got) != 2 || got[cs[0].Delivery.ID] != 35 {
		t.Errorf("Deliveries: latencies %v, want 35 ms for %s (its last attempt's) and 0 for the other", got, cs[0].Delivery.ID)
	}
	for id, ms := range got {
		if id != cs[0].Delivery.ID && ms != 0 {
			t.Errorf("Deliveries: %s, never attempted, has latency %d ms", id, ms)
		}
		if d := getDelivery(t, s, id); d.LastLatencyMS != ms {
			t.Errorf("Delivery(%s).LastLatencyMS = %d, the list's %d", id, d.LastLatencyMS, ms)
		}
	}
}

// testQueueStats: QueueStats counts pending deliveries, due or not, and
// dates the oldest due one.
func testQueueStats(t *testing.T, s hub.Store) {
	stats := func(now time.Time) hub.QueueStats {
		t.Helper()
		st, err := s.QueueStats(ctx(t), now)
		if err != nil {
			t.Fatalf("QueueStats = %v", err)
		}
		return st
	}
	if st := stats(at(0)); st != (hub.QueueStats{}) {
		t.Errorf("QueueStats(empty) = %+v, want zero", st)
	}
	ep := newEndpoint("ep", at(-10))
	createEndpoints(t, s, ep)
	for i := range 3 {
		ingestStatus(t, s, "s1", fmt.Sprint("r", i), hub.StatusApproved, true, at(10*i))
	}
	same := func(got, want hub.QueueStats) bool {
		return got.Pending == want.Pending && got.Due == want.Due && got.OldestDue.Equal(want.OldestDue)
	}
	if st := stats(at(15)); !same(st, hub.QueueStats{Pending: 3, Due: 2, OldestDue: at(0)}) {
		t.Errorf("QueueStats(15s) = %+v, want 3 pending, 2 due, the oldest at 0s", st)
	}
	if st := stats(at(-1)); !same(st, hub.QueueStats{Pending: 3}) {
		t.Errorf("QueueStats(before all) = %+v, want 3 pending, none due", st)
	}
	// Claimed deliveries are still pending.
	cs := claim(t, s, at(15), 10, time.Hour)
	if st := stats(at(15)); !same(st, hub.QueueStats{Pending: 3, Due: 2, OldestDue: at(0)}) {
		t.Errorf("QueueStats(15s, claimed) = %+v, want 3 pending, 2 due, the oldest at 0s", st)
	}
	record(t, s, cs[0], hub.DeliverySucceeded, at(16), time.Time{})
	record(t, s, cs[1], hub.DeliveryPending, at(16), at(100))
	if st := stats(at(25)); !same(st, hub.QueueStats{Pending: 2, Due: 1, OldestDue: at(20)}) {
		t.Errorf("QueueStats(25s) = %+v, want 2 pending, 1 due, the oldest at 20s", st)
	}
	if st := stats(at(100)); !same(st, hub.QueueStats{Pending: 2, Due: 2, OldestDue: at(20)}) {
		t.Errorf("QueueStats(100s) = %+v, want 2 pending, 2 due, the oldest at 20s", st)
	}
}

// testQueueStatsCap: QueueStats counts up to hub.QueueCountLimit and sets
// Capped from exactly that many, with the oldest due time still exact. The
// backlog is made cheaply, as few events fanned out to many endpoints: ep-0
// takes every source and the others s1 only, so that an event of s1 makes
// one delivery per endpoint and one of s2 a single delivery, and the count
// can stop one short of the limit.
func testQueueStatsCap(t *testing.T, s hub.Store) {
	if testing.Short() {
		// 2 s on either store, but 18 s on SQLite with -race: the
		// deliveries' inserts.
		t.Skip("makes hub.QueueCountLimit deliveries; skipped with -short")
	}
	const limit, endpoints = hub.QueueCountLimit, 10
	for i := range endpoints {
		ep := newEndpoint(fmt.Sprint("ep-", i), at(-10))
		if i > 0 {
			ep.Sources = []string{"s1"}
		}
		createEndpoints(t, s, ep)
	}
	// add ingests a message of source received at when carrying n events.
	add := func(source string, n int, when time.Time) {
		t.Helper()
		m := msg(source, hub.NewID("dedup", when), when)
		evs := make([]hub.Event, n)
		for i := range evs {
			evs[i] = hub.Event{ID: hub.NewID("evt", when), Type: hub.EventVideoCallUpdated, CreatedAt: when,
				Source: source, Provider: m.Provider, Data: []byte(`{"status":"ended"}`), MessageID: m.ID}
		}
		ingest(t, s, m, nil, evs...)
	}
	check := func(now time.Time, want hub.QueueStats, why string) {
		t.Helper()
		st, err := s.QueueStats(ctx(t), now)
		if err != nil {
			t.Fatalf("QueueStats = %v", err)
		}
		if st.Pending != want.Pending || st.Due != want.Due || st.Capped != want.Capped || !st.OldestDue.Equal(want.OldestDue) {
			t.Errorf("QueueStats(%s) = %+v, want %+v (%s)", now.Sub(t0), st, want, why)
		}
	}
	bulk := (limit - 1) / endpoints // events of s1
	first := limit - 1 - bulk*endpoints
	add("s2", first, at(0))
	add("s1", bulk, at(10))
	check(at(5), hub.QueueStats{Pending: limit - 1, Due: first, OldestDue: at(0)}, "one short of the limit, the first due")
	check(at(10), hub.QueueStats{Pending: limit - 1, Due: limit - 1, OldestDue: at(0)}, "one short of the limit, all due")
	add("s2", 1, at(20))
	check(at(15), hub.QueueStats{Pending: limit, Due: limit - 1, Capped: true, OldestDue: at(0)}, "at the limit, all but one due")
	check(at(20), hub.QueueStats{Pending: limit, Due: limit, Capped: true, OldestDue: at(0)}, "at the limit, all due")
	// More, one per endpoint: each count stops at the limit, Due too though
	// each endpoint's own count is below it.
	add("s1", 1, at(30))
	check(at(25), hub.QueueStats{Pending: limit, Due: limit, Capped: true, OldestDue: at(0)}, "past the limit, the limit due")
	check(at(30), hub.QueueStats{Pending: limit, Due: limit, Capped: true, OldestDue: at(0)}, "past the limit, all due")
	check(at(-1), hub.QueueStats{Pending: limit, Capped: true}, "past the limit, none due")
}

// testDeleteEndpointCascades: deleting an endpoint deletes its deliveries
// and their attempts, and nothing else.
func testDeleteEndpointCascades(t *testing.T, s hub.Store) {
	gone, kept := newEndpoint("ep-gone", at(-10)), newEndpoint("ep-kept", at(-10))
	createEndpoints(t, s, gone, kept)
	for i := range 2 {
		ingestStatus(t, s, "s1", fmt.Sprint("r", i), hub.StatusApproved, true, at(i))
	}
	cs := claim(t, s, at(5), 10, time.Hour)
	var goneIDs []string
	var held hub.Claim
	for _, c := range cs {
		if c.Delivery.EndpointID == gone.ID {
			goneIDs = append(goneIDs, c.Delivery.ID)
			if len(goneIDs) == 1 {
				record(t, s, c, hub.DeliveryFailed, at(6), time.Time{})
			} else {
				held = c
			}
		}
	}
	if len(goneIDs) != 2 {
		t.Fatalf("claimed %d deliveries of %s, want 2", len(goneIDs), gone.ID)
	}
	if err := s.DeleteEndpoint(ctx(t), gone.ID); err != nil {
		t.Fatalf("DeleteEndpoint = %v", err)
	}
	for _, id := range goneIDs {
		_, err := s.Delivery(ctx(t), id)
		wantCode(t, "Delivery(of a deleted endpoint)", err, hub.ENOTFOUND)
	}
	if ds := allDeliveries(t, s, hub.DeliveryFilter{EndpointID: gone.ID}); len(ds) != 0 {
		t.Errorf("%d deliveries of a deleted endpoint listed", len(ds))
	}
	if ds := allDeliveries(t, s, hub.DeliveryFilter{}); len(ds) != 2 || ds[0].EndpointID != kept.ID || ds[1].EndpointID != kept.ID {
		t.Errorf("deliveries after delete = %v, want the 2 of %s", deliveryIDs(ds), kept.ID)
	}
	wantCode(t, "RecordAttempt(delivery deleted)", s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: held.Delivery.ID,
		Lease: held.Lease, Status: hub.DeliverySucceeded, Attempt: hub.Attempt{At: at(7)}}), hub.ENOTFOUND)
	if st, err := s.QueueStats(ctx(t), at(7)); err != nil || st.Pending != 2 {
		t.Errorf("QueueStats after delete = %+v, %v; want 2 pending", st, err)
	}
	// New events go only to the endpoint that is left; the id can be used
	// again and starts empty.
	e := ingestStatus(t, s, "s1", "r9", hub.StatusApproved, true, at(8))
	createEndpoints(t, s, newEndpoint(gone.ID, at(9)))
	if ds := allDeliveries(t, s, hub.DeliveryFilter{EndpointID: gone.ID}); len(ds) != 0 {
		t.Errorf("a re-created endpoint has %d deliveries, want 0", len(ds))
	}
	if ds := allDeliveries(t, s, hub.DeliveryFilter{EventID: e.ID}); len(ds) != 1 || ds[0].EndpointID != kept.ID {
		t.Errorf("deliveries of an event ingested after the delete = %+v, want one to %s", ds, kept.ID)
	}
}

// testClaimRace: workers claiming at once never get the same delivery
// twice while the leases hold, and together get every claimable one.
func testClaimRace(t *testing.T, s hub.Store) { claimRace(t, []hub.Store{s}) }

// claimRace is testClaimRace with the workers spread over stores that share
// one database (see RunShared); it sets up through the first.
func claimRace(t *testing.T, stores []hub.Store) {
	s := stores[0]
	e1, e2, ord := newEndpoint("ep-1", at(-10)), newEndpoint("ep-2", at(-10)), newEndpoint("ep-ord", at(-10))
	ord.Ordered = true
	createEndpoints(t, s, e1, e2, ord)
	const refs, perRef = 12, 5
	heads := map[string]string{} // verification -> its first event
	for i := range refs * perRef {
		status := hub.StatusPending
		if (i/refs)%2 == 1 {
			status = hub.StatusReview
		}
		e := ingestStatus(t, s, "s1", fmt.Sprint("r", i%refs), status, false, at(i))
		if _, ok := heads[e.VerificationID]; !ok {
			heads[e.VerificationID] = e.ID
		}
	}
	want := 2*refs*perRef + refs // everything to e1 and e2, one per verification to ord

	const workers = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		got   []hub.Claim
		start = make(chan struct{})
	)
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			<-start
			for {
				cs, err := s.ClaimDeliveries(ctx(t), at(1000), 3, time.Hour)
				if err != nil {
					t.Errorf("ClaimDeliveries = %v", err)
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				got = append(got, cs...)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()

	seen := map[string]bool{}
	for _, c := range got {
		if seen[c.Delivery.ID] {
			t.Errorf("delivery %s claimed twice", c.Delivery.ID)
		}
		seen[c.Delivery.ID] = true
		if c.Delivery.EndpointID == ord.ID && heads[c.Event.VerificationID] != c.Event.ID {
			t.Errorf("ordered endpoint: claimed event %s of verification %s before its first event %s",
				c.Event.ID, c.Event.VerificationID, heads[c.Event.VerificationID])
		}
	}
	if len(seen) != want {
		t.Errorf("%d deliveries claimed, want %d", len(seen), want)
	}
}
