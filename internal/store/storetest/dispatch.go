package storetest

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// What the suite holds dispatches to, beyond hub.Store's contract: a lease
// ends at exactly now+lease; a dispatch whose deadline is at or before now is
// neither claimed nor left pending by ExpireDispatches; RecordDispatch with a
// token that is not the dispatch's lease is ECONFLICT.

// ingestOTP ingests a new message of source received at when with one
// otp.requested event and its dispatch (deadline ttl later), and returns the
// dispatch as created.
func ingestOTP(t *testing.T, s hub.Store, source, dedup string, when time.Time, ttl time.Duration) hub.Dispatch {
	t.Helper()
	m := msg(source, dedup, when)
	ev := otpEvent(m)
	d, ok := hub.DispatchFor(ev, ttl)
	if !ok {
		t.Fatal("DispatchFor(otp.requested) = false")
	}
	res, err := s.Ingest(ctx(t), hub.Ingest{Message: m, Events: []hub.Event{ev}, Dispatches: []hub.Dispatch{d}})
	if err != nil {
		t.Fatalf("Ingest(%s) = %v", m.ID, err)
	}
	if res.Duplicate || res.Dispatches != 1 {
		t.Fatalf("Ingest(%s) = duplicate %v, %d dispatches; want a new message with 1", m.ID, res.Duplicate, res.Dispatches)
	}
	return d
}

func claimDispatches(t *testing.T, s hub.Store, now time.Time, lease time.Duration) []hub.DispatchClaim {
	t.Helper()
	cs, err := s.ClaimDispatches(ctx(t), now, 10, lease)
	if err != nil {
		t.Fatalf("ClaimDispatches(%s) = %v", now.Format(time.RFC3339Nano), err)
	}
	return cs
}

func getDispatch(t *testing.T, s hub.Store, id string) hub.Dispatch {
	t.Helper()
	d, err := s.Dispatch(ctx(t), id)
	if err != nil {
		t.Fatalf("Dispatch(%s) = %v", id, err)
	}
	return d
}

func recordDispatch(t *testing.T, s hub.Store, r hub.DispatchRecord) {
	t.Helper()
	if err := s.RecordDispatch(ctx(t), r); err != nil {
		t.Fatalf("RecordDispatch(%s, %s) = %v", r.ID, r.Status, err)
	}
}

// eventsOfType lists the events of one type, newest first.
func eventsOfType(t *testing.T, s hub.Store, typ string) []hub.Event {
	t.Helper()
	evs, _, err := s.Events(ctx(t), hub.EventFilter{Type: typ, Page: hub.Page{Limit: 100}})
	if err != nil {
		t.Fatalf("Events(%s) = %v", typ, err)
	}
	return evs
}

func testDispatchIngest(t *testing.T, s hub.Store) {
	d := ingestOTP(t, s, "identomat-main", "otp-1", at(0), 5*time.Minute)

	got := getDispatch(t, s, d.ID)
	if got.Status != hub.DispatchPending || got.Kind != hub.DispatchOTP || got.Channel != hub.ChannelSMS ||
		got.Source != "identomat-main" || got.Provider != "idenfy" || got.EventID != d.EventID || got.SessionRef != "sess-1" || got.Attempts != 0 {
		t.Errorf("Dispatch = %+v, want a pending sms otp of event %s", got, d.EventID)
	}
	if !got.Deadline.Equal(at(300)) || !got.NextAttemptAt.Equal(at(0)) || !got.CreatedAt.Equal(at(0)) {
		t.Errorf("Dispatch times: deadline %s, next %s, created %s; want t0+5m, t0, t0", got.Deadline, got.NextAttemptAt, got.CreatedAt)
	}
	if got.Content != (hub.DispatchContent{}) {
		t.Errorf("Dispatch returned its content %+v; only claims carry it", got.Content)
	}

	// A duplicate of the message creates no second dispatch.
	m := msg("identomat-main", "otp-1", at(1))
	ev := otpEvent(m)
	d2, _ := hub.DispatchFor(ev, 5*time.Minute)
	res, err := s.Ingest(ctx(t), hub.Ingest{Message: m, Events: []hub.Event{ev}, Dispatches: []hub.Dispatch{d2}})
	if err != nil || !res.Duplicate || res.Dispatches != 0 {
		t.Fatalf("Ingest(duplicate) = %+v, %v; want a duplicate with no dispatch", res, err)
	}

	// A dispatch of an event that is not the message's is refused, and the
	// message with it.
	m3 := msg("identomat-main", "otp-3", at(2))
	ev3 := otpEvent(m3)
	bad := d2
	bad.ID = hub.NewID("dsp", at(2))
	_, err = s.Ingest(ctx(t), hub.Ingest{Message: m3, Events: []hub.Event{ev3}, Dispatches: []hub.Dispatch{bad}})
	wantCode(t, "Ingest(dispatch of another event)", err, hub.EINVALID)
	if _, err := s.Message(ctx(t), m3.ID); hub.ErrorCode(err) != hub.ENOTFOUND {
		t.Errorf("Message(%s) after a refused ingest = %v, want ENOTFOUND", m3.ID, err)
	}

	list, next, err := s.Dispatches(ctx(t), hub.DispatchFilter{})
	if err != nil || len(list) != 1 || list[0].ID != d.ID || next != "" {
		t.Fatalf("Dispatches = %v, %q, %v; want only %s", list, next, err, d.ID)
	}
	_, err = s.Dispatch(ctx(t), "dsp_unknown")
	wantCode(t, "Dispatch(unknown)", err, hub.ENOTFOUND)
}

func testDispatchClaimRecord(t *testing.T, s hub.Store) {
	d := ingestOTP(t, s, "identomat-main", "otp-1", at(0), 5*time.Minute)

	if cs := claimDispatches(t, s, at(-1), time.Minute); len(cs) != 0 {
		t.Fatalf("ClaimDispatches before it is due = %d claims, want 0", len(cs))
	}
	cs := claimDispatches(t, s, at(0), 30*time.Second)
	if len(cs) != 1 || cs[0].Dispatch.ID != d.ID || cs[0].Lease == "" {
		t.Fatalf("ClaimDispatches = %+v, want %s with a lease", cs, d.ID)
	}
	if c := cs[0].Dispatch.Content; c != d.Content {
		t.Errorf("claimed content = %+v, want %+v", c, d.Content)
	}
	if again := claimDispatches(t, s, at(29), time.Minute); len(again) != 0 {
		t.Errorf("ClaimDispatches while leased = %d claims, want 0", len(again))
	}
	// The lease ends at exactly now+lease: another worker takes it over.
	over := claimDispatches(t, s, at(30), 30*time.Second)
	if len(over) != 1 || over[0].Lease == cs[0].Lease {
		t.Fatalf("ClaimDispatches after the lease = %+v, want the dispatch under a new lease", over)
	}
	err := s.RecordDispatch(ctx(t), hub.DispatchRecord{ID: d.ID, Lease: cs[0].Lease, At: at(31), Attempted: true, Status: hub.DispatchSent})
	wantCode(t, "RecordDispatch(stale lease)", err, hub.ECONFLICT)
	err = s.RecordDispatch(ctx(t), hub.DispatchRecord{ID: "dsp_unknown", Lease: "x", Status: hub.DispatchSent})
	wantCode(t, "RecordDispatch(unknown)", err, hub.ENOTFOUND)
	err = s.RecordDispatch(ctx(t), hub.DispatchRecord{ID: d.ID, Lease: over[0].Lease, Status: hub.DispatchPending})
	wantCode(t, "RecordDispatch(pending without next)", err, hub.EINVALID)

	// A retryable failure: pending again, due at its next attempt.
	recordDispatch(t, s, hub.DispatchRecord{ID: d.ID, Lease: over[0].Lease, At: at(31), Attempted: true,
		Status: hub.DispatchPending, NextAttemptAt: at(33), Error: "smtp 451: try again"})
	got := getDispatch(t, s, d.ID)
	if got.Status != hub.DispatchPending || got.Attempts != 1 || got.LastError != "smtp 451: try again" || !got.NextAttemptAt.Equal(at(33)) {
		t.Errorf("after a retryable failure: %+v", got)
	}
	if cs := claimDispatches(t, s, at(32), time.Minute); len(cs) != 0 {
		t.Errorf("ClaimDispatches before the retry = %d claims, want 0", len(cs))
	}
	cs = claimDispatches(t, s, at(33), time.Minute)
	if len(cs) != 1 || cs[0].Dispatch.Attempts != 1 || cs[0].Dispatch.Content != d.Content {
		t.Fatalf("ClaimDispatches at the retry = %+v", cs)
	}
	recordDispatch(t, s, hub.DispatchRecord{ID: d.ID, Lease: cs[0].Lease, At: at(34), Attempted: true, Status: hub.DispatchSent})
	got = getDispatch(t, s, d.ID)
	if got.Status != hub.DispatchSent || got.Attempts != 2 || !got.SentAt.Equal(at(34)) || !got.NextAttemptAt.IsZero() || got.LastError != "" {
		t.Errorf("after sending: %+v", got)
	}
	if cs := claimDispatches(t, s, at(100), time.Minute); len(cs) != 0 {
		t.Errorf("ClaimDispatches after sending = %d claims, want 0", len(cs))
	}
	if evs := eventsOfType(t, s, hub.EventDispatchFailed); len(evs) != 0 {
		t.Errorf("a sent dispatch raised %d dispatch.failed events", len(evs))
	}
}

func testDispatchEnded(t *testing.T, s hub.Store) {
	ep := newEndpoint("backoffice", at(-10))
	ep.EventTypes = []string{"dispatch.*"}
	createEndpoints(t, s, ep)
	d := ingestOTP(t, s, "identomat-main", "otp-1", at(0), 5*time.Minute)
	cs := claimDispatches(t, s, at(0), time.Minute)
	if len(cs) != 1 {
		t.Fatalf("ClaimDispatches = %d claims, want 1", len(cs))
	}
	recordDispatch(t, s, hub.DispatchRecord{ID: d.ID, Lease: cs[0].Lease, At: at(1), Attempted: true,
		Status: hub.DispatchFailed, Error: "gateway 400: invalid number"})

	evs := eventsOfType(t, s, hub.EventDispatchFailed)
	if len(evs) != 1 {
		t.Fatalf("dispatch.failed events = %d, want 1", len(evs))
	}
	var data hub.DispatchEnded
	if err := json.Unmarshal(evs[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	want := hub.DispatchEnded{DispatchID: d.ID, EventID: d.EventID, Kind: hub.DispatchOTP, Channel: hub.ChannelSMS,
		SessionRef: "sess-1", Attempts: 1, Error: "gateway 400: invalid number"}
	if data != want || evs[0].Source != "identomat-main" || evs[0].Provider != "idenfy" || !evs[0].CreatedAt.Equal(at(1)) {
		t.Errorf("dispatch.failed = %+v %s, want %+v", data, evs[0].Data, want)
	}
	if strings.Contains(string(evs[0].Data), d.Content.Recipient) || strings.Contains(string(evs[0].Data), "123456") {
		t.Errorf("dispatch.failed carries personal data: %s", evs[0].Data)
	}
	// It goes to the endpoint, due at once.
	dl := deliveryOf(t, s, "backoffice", evs[0].ID)
	if dl.Status != hub.DeliveryPending || !dl.NextAttemptAt.Equal(at(1)) {
		t.Errorf("delivery of dispatch.failed = %+v", dl)
	}
}

func testExpireDispatches(t *testing.T, s hub.Store) {
	createEndpoints(t, s, newEndpoint("all", at(-10)))
	free := ingestOTP(t, s, "identomat-main", "otp-1", at(0), time.Minute)
	held := ingestOTP(t, s, "identomat-main", "otp-2", at(1), time.Minute)
	later := ingestOTP(t, s, "identomat-main", "otp-3", at(2), 5*time.Minute)

	// held is claimed, and its lease runs past its deadline.
	cs, err := s.ClaimDispatches(ctx(t), at(1), 1, 70*time.Second)
	if err != nil || len(cs) != 1 || cs[0].Dispatch.ID != free.ID {
		t.Fatalf("ClaimDispatches = %+v, %v", cs, err)
	}
	recordDispatch(t, s, hub.DispatchRecord{ID: free.ID, Lease: cs[0].Lease, At: at(2), Attempted: true,
		Status: hub.DispatchPending, NextAttemptAt: at(90), Error: "smtp 421: busy"})
	cs, err = s.ClaimDispatches(ctx(t), at(2), 1, 70*time.Second)
	if err != nil || len(cs) != 1 || cs[0].Dispatch.ID != held.ID {
		t.Fatalf("ClaimDispatches = %+v, %v", cs, err)
	}

	// At the deadline nothing is claimed, even if due.
	if got := claimDispatches(t, s, at(60), time.Minute); len(got) != 1 || got[0].Dispatch.ID != later.ID {
		t.Fatalf("ClaimDispatches at free's deadline = %+v, want only %s", got, later.ID)
	}
	ended, err := s.ExpireDispatches(ctx(t), at(61))
	if err != nil || len(ended) != 1 || ended[0].ID != free.ID || ended[0].Status != hub.DispatchExpired {
		t.Fatalf("ExpireDispatches(t0+61s) = %+v, %v; want %s only (the leased one waits for its lease)", ended, err, free.ID)
	}
	got := getDispatch(t, s, free.ID)
	if got.Status != hub.DispatchExpired || got.LastError != "smtp 421: busy" || !got.NextAttemptAt.IsZero() || !got.UpdatedAt.Equal(at(61)) {
		t.Errorf("expired dispatch = %+v", got)
	}
	if got := getDispatch(t, s, held.ID); got.Status != hub.DispatchPending {
		t.Errorf("leased dispatch = %s, want pending while its lease holds", got.Status)
	}
	ended, err = s.ExpireDispatches(ctx(t), at(72))
	if err != nil || len(ended) != 1 || ended[0].ID != held.ID {
		t.Fatalf("ExpireDispatches(t0+72s) = %+v, %v; want %s", ended, err, held.ID)
	}
	if got := getDispatch(t, s, held.ID); got.Status != hub.DispatchExpired || got.LastError != "not sent before its deadline" {
		t.Errorf("dispatch after its lease = %+v", got)
	}
	evs := eventsOfType(t, s, hub.EventDispatchExpired)
	if len(evs) != 2 {
		t.Fatalf("dispatch.expired events = %d, want 2", len(evs))
	}
	for _, ev := range evs {
		if dl := deliveryOf(t, s, "all", ev.ID); dl.Status != hub.DeliveryPending {
			t.Errorf("delivery of %s = %+v", ev.ID, dl)
		}
	}
	// The expired ones are never claimed again; the record of a worker that
	// held one finds it no longer leased.
	err = s.RecordDispatch(ctx(t), hub.DispatchRecord{ID: held.ID, Lease: cs[0].Lease, At: at(73), Attempted: true, Status: hub.DispatchSent})
	wantCode(t, "RecordDispatch(expired)", err, hub.ECONFLICT)
	// later was claimed at t0+60s for a minute, which ended long before its
	// deadline.
	if ended, err := s.ExpireDispatches(ctx(t), at(400)); err != nil || len(ended) != 1 || ended[0].ID != later.ID {
		t.Errorf("ExpireDispatches(t0+400s) = %+v, %v; want %s", ended, err, later.ID)
	}
}

func testDispatchFilters(t *testing.T, s hub.Store) {
	a := ingestOTP(t, s, "identomat-a", "otp-1", at(0), time.Minute)
	b := ingestOTP(t, s, "identomat-b", "otp-1", at(1), time.Minute)
	cs := claimDispatches(t, s, at(1), time.Minute)
	for _, c := range cs {
		if c.Dispatch.ID == a.ID {
			recordDispatch(t, s, hub.DispatchRecord{ID: a.ID, Lease: c.Lease, At: at(2), Attempted: true, Status: hub.DispatchSent})
		}
	}
	for _, tc := range []struct {
		name string
		f    hub.DispatchFilter
		want []string
	}{
		{"all", hub.DispatchFilter{}, []string{b.ID, a.ID}},
		{"source", hub.DispatchFilter{Source: "identomat-a"}, []string{a.ID}},
		{"sent", hub.DispatchFilter{Status: hub.DispatchSent}, []string{a.ID}},
		{"pending", hub.DispatchFilter{Status: hub.DispatchPending}, []string{b.ID}},
	} {
		list, _, err := s.Dispatches(ctx(t), tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ids []string
		for _, d := range list {
			ids = append(ids, d.ID)
		}
		if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%s: Dispatches = %v, want %v", tc.name, ids, tc.want)
		}
	}
	_, _, err := s.Dispatches(ctx(t), hub.DispatchFilter{Status: "lost"})
	wantCode(t, "Dispatches(status=lost)", err, hub.EINVALID)
	page, next, err := s.Dispatches(ctx(t), hub.DispatchFilter{Page: hub.Page{Limit: 1}})
	if err != nil || len(page) != 1 || page[0].ID != b.ID || next == "" {
		t.Fatalf("Dispatches(limit 1) = %v, %q, %v", page, next, err)
	}
	page, next, err = s.Dispatches(ctx(t), hub.DispatchFilter{Page: hub.Page{Limit: 1, Cursor: next}})
	if err != nil || len(page) != 1 || page[0].ID != a.ID || next != "" {
		t.Fatalf("Dispatches(page 2) = %v, %q, %v", page, next, err)
	}
}

func testDispatchClaimRace(t *testing.T, s hub.Store) { dispatchClaimRace(t, []hub.Store{s}) }

// dispatchClaimRace has workers on every store claim the dispatches at once,
// while others expire them: no dispatch is claimed twice while its lease
// holds, and every one is claimed.
func dispatchClaimRace(t *testing.T, stores []hub.Store) {
	const n = 40
	want := map[string]bool{}
	for i := range n {
		want[ingestOTP(t, stores[0], "identomat-main", fmt.Sprint("otp-", i), at(i), time.Hour).ID] = true
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		got   = map[string]int{}
		start = make(chan struct{})
	)
	for w := range 8 {
		s := stores[w%len(stores)]
		wg.Go(func() {
			<-start
			for {
				if w%4 == 0 {
					// Nothing is past its deadline: an expiry changes nothing.
					if ended, err := s.ExpireDispatches(ctx(t), at(n)); err != nil || len(ended) != 0 {
						t.Errorf("ExpireDispatches = %d, %v", len(ended), err)
					}
				}
				cs, err := s.ClaimDispatches(ctx(t), at(n), 3, time.Hour)
				if err != nil {
					t.Errorf("ClaimDispatches = %v", err)
					return
				}
				if len(cs) == 0 {
					return
				}
				mu.Lock()
				for _, c := range cs {
					got[c.Dispatch.ID]++
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	for id, k := range got {
		if k != 1 || !want[id] {
			t.Errorf("dispatch %s claimed %d times", id, k)
		}
	}
	if len(got) != n {
		t.Errorf("%d dispatches claimed, want %d", len(got), n)
	}
}
