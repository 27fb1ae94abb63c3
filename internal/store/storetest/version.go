package storetest

import (
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// testEndpointVersion: every write of an endpoint moves its version on, and
// UpdateEndpoint writes only over the version it was given, so that a
// disable landing between the read and the write of an update is not
// undone.
func testEndpointVersion(t *testing.T, s hub.Store) {
	ep := newEndpoint("ep", at(0))
	ep.Version = 7 // not the caller's to choose: a new endpoint is at 1
	createEndpoints(t, s, ep)
	// version reads the endpoint and checks that its version moved on from
	// prev (or, with same, did not).
	version := func(prev int64, same bool, after string) hub.Endpoint {
		t.Helper()
		e := getEndpoint(t, s, ep.ID)
		if same && e.Version != prev || !same && e.Version <= prev {
			t.Errorf("version after %s = %d, was %d; want it moved on: %v", after, e.Version, prev, !same)
		}
		return e
	}
	v1 := version(1, true, "CreateEndpoint")

	edited := v1
	edited.URL = "https://hooks.example.com/v2"
	if err := s.UpdateEndpoint(ctx(t), edited); err != nil {
		t.Fatalf("UpdateEndpoint(at its version) = %v", err)
	}
	v2 := version(1, false, "UpdateEndpoint")
	stale := v1
	stale.RateLimit = 9
	wantCode(t, "UpdateEndpoint(a stale version)", s.UpdateEndpoint(ctx(t), stale), hub.ECONFLICT)
	if e := version(v2.Version, true, "a stale UpdateEndpoint"); e.RateLimit != 0 || e.URL != edited.URL {
		t.Errorf("a stale UpdateEndpoint wrote: rate limit %v, URL %s", e.RateLimit, e.URL)
	}

	// RecordAttempt's writes of the endpoint: the first failure, a success,
	// and disabling. Attempts that change nothing of it leave it as it is.
	attempt := func(at time.Time, status hub.DeliveryStatus, code int, disable string) {
		t.Helper()
		ingestStatus(t, s, "s1", "ref-"+at.Format("150405"), hub.StatusApproved, true, at)
		cs := claim(t, s, at, 1, time.Minute)
		if len(cs) != 1 {
			t.Fatalf("claimed %d deliveries at %v, want 1", len(cs), at)
		}
		err := s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: cs[0].Delivery.ID, Lease: cs[0].Lease,
			Attempt: hub.Attempt{At: at, StatusCode: code}, Status: status, DisableEndpoint: disable})
		if err != nil {
			t.Fatalf("RecordAttempt = %v", err)
		}
	}
	attempt(at(10), hub.DeliveryFailed, 500, "")
	v3 := version(v2.Version, false, "the first failure")
	attempt(at(11), hub.DeliveryFailed, 500, "")
	version(v3.Version, true, "a second failure")
	attempt(at(12), hub.DeliverySucceeded, 200, "")
	version(v3.Version, false, "a success")

	// An operator's update read the endpoint; then verihook disables it;
	// then the update is written: it must not enable the endpoint again.
	read := getEndpoint(t, s, ep.ID)
	attempt(at(13), hub.DeliveryFailed, 410, "the endpoint answered 410 Gone")
	disabled := version(read.Version, false, "the 410")
	if disabled.Enabled {
		t.Fatal("the 410 did not disable the endpoint")
	}
	read.RateLimit = 5
	wantCode(t, "UpdateEndpoint(read before the disable)", s.UpdateEndpoint(ctx(t), read), hub.ECONFLICT)
	if e := version(disabled.Version, true, "an update read before the disable"); e.Enabled || e.DisabledReason == "" {
		t.Errorf("after an update read before the disable: enabled %v, reason %q; want disabled by verihook", e.Enabled, e.DisabledReason)
	}

	// EditEndpoint reads again and edits what is stored: the same race, with
	// the disable landing between its first read and its write, keeps the
	// edit and the disable.
	ep2 := newEndpoint("ep2", at(20))
	createEndpoints(t, s, ep2)
	rounds := 0
	got, err := hub.EditEndpoint(ctx(t), s, ep2.ID, func(e *hub.Endpoint) error {
		rounds++
		if rounds == 1 {
			ingestStatus(t, s, "s1", "ref-race", hub.StatusApproved, true, at(21))
			cs := claim(t, s, at(21), 10, time.Minute)
			for _, c := range cs {
				if c.Endpoint.ID == ep2.ID {
					if err := s.RecordAttempt(ctx(t), hub.AttemptRecord{DeliveryID: c.Delivery.ID, Lease: c.Lease,
						Attempt: hub.Attempt{At: at(21), StatusCode: 410}, Status: hub.DeliveryFailed,
						DisableEndpoint: "the endpoint answered 410 Gone"}); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		e.RateLimit = 3
		return nil
	})
	if err != nil {
		t.Fatalf("EditEndpoint = %v", err)
	}
	stored := getEndpoint(t, s, ep2.ID)
	if rounds != 2 || stored.Enabled || stored.DisabledReason == "" || stored.RateLimit != 3 {
		t.Errorf("EditEndpoint across a disable: %d rounds, enabled %v, reason %q, rate limit %v; want 2 rounds, disabled by verihook, rate limit 3",
			rounds, stored.Enabled, stored.DisabledReason, stored.RateLimit)
	}
	if got.Version != stored.Version || got.Enabled {
		t.Errorf("EditEndpoint returned version %d (enabled %v), stored is %d", got.Version, got.Enabled, stored.Version)
	}
	_, err = hub.EditEndpoint(ctx(t), s, "ep-nope", func(*hub.Endpoint) error { return nil })
	wantCode(t, "EditEndpoint(unknown)", err, hub.ENOTFOUND)
}
