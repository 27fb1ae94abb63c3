package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// testSourceLifecycle: CreateSource, UpdateSource (rotation keeps the
// previous secrets with their expiry) and DeleteSource, with their errors.
func testSourceLifecycle(t *testing.T, s hub.Store) {
	src := hub.Source{ID: "kycaid-api", Provider: "kycaid", CreatedAt: at(0), UpdatedAt: at(0),
		Secrets: map[string]string{"api_token": "old-token"}}
	if err := s.CreateSource(ctx(t), src); err != nil {
		t.Fatalf("CreateSource = %v", err)
	}
	want := src
	want.Managed = hub.ManagedAPI // the default
	got, err := s.Source(ctx(t), src.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(got, want); d != "" {
		t.Errorf("Source after CreateSource differs: %s", d)
	}
	wantCode(t, "CreateSource(id exists)", s.CreateSource(ctx(t), src), hub.ECONFLICT)
	wantCode(t, "CreateSource(bad managed)", s.CreateSource(ctx(t), hub.Source{ID: "x", Provider: "kycaid", Managed: "file"}), hub.EINVALID)

	got.Rotate(map[string]string{"api_token": "new-token"}, at(60), time.Hour)
	if err := s.UpdateSource(ctx(t), got); err != nil {
		t.Fatalf("UpdateSource = %v", err)
	}
	rotated, err := s.Source(ctx(t), src.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(rotated, got); d != "" {
		t.Errorf("Source after a rotation differs: %s", d)
	}
	if g := rotated.GraceSecrets(at(60 + 3599)); g["api_token"] != "old-token" {
		t.Errorf("GraceSecrets within the grace = %v, want the old token", g)
	}
	if g := rotated.GraceSecrets(at(60 + 3600)); g != nil {
		t.Errorf("GraceSecrets after the grace = %v, want nil", g)
	}
	// Upserting (provisioning) keeps the previous secrets and takes Managed.
	up := hub.Source{ID: src.ID, Provider: "kycaid", Managed: hub.ManagedConfig, UpdatedAt: at(70),
		Secrets: map[string]string{"api_token": "config-token"}}
	if err := s.UpsertSource(ctx(t), up); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Source(ctx(t), src.ID); got.Managed != hub.ManagedConfig || got.PreviousSecrets["api_token"] != "old-token" {
		t.Errorf("after an upsert: managed %q, previous %v; want config and the old token", got.Managed, got.PreviousSecrets)
	}

	wantCode(t, "UpdateSource(unknown)", s.UpdateSource(ctx(t), hub.Source{ID: "nope", Provider: "kycaid"}), hub.ENOTFOUND)
	if err := s.DeleteSource(ctx(t), src.ID); err != nil {
		t.Fatalf("DeleteSource = %v", err)
	}
	_, err = s.Source(ctx(t), src.ID)
	wantCode(t, "Source(deleted)", err, hub.ENOTFOUND)
	wantCode(t, "DeleteSource(again)", s.DeleteSource(ctx(t), src.ID), hub.ENOTFOUND)
}

// testActivity: the counters follow ingests, rejections and attempts, by
// minute; rejections are grouped by source and reason; every source has
// its last message.
func testActivity(t *testing.T, s hub.Store) {
	for _, id := range []string{"s1", "quiet"} {
		if err := s.UpsertSource(ctx(t), hub.Source{ID: id, Provider: "idenfy", Secrets: map[string]string{}}); err != nil {
			t.Fatal(err)
		}
	}
	createEndpoints(t, s, newEndpoint("ep1", at(0)))
	ev := ingestStatus(t, s, "s1", "ref-1", hub.StatusApproved, true, at(0))
	ingestStatus(t, s, "s1", "ref-2", hub.StatusReview, false, at(30))
	dup := msg("s1", fmt.Sprintf("ref-2:review:%d", at(30).UnixNano()), at(31))
	if res := ingest(t, s, dup, nil); !res.Duplicate {
		t.Fatal("the duplicate was not one")
	}
	q := msg("s1", "q", at(65))
	q.Status, q.Reason = hub.MessageQuarantined, "unknown event"
	ingest(t, s, q, nil)
	for i, r := range []struct{ source, reason string }{{"s1", "bad signature"}, {"s1", "bad signature"}, {"nobody", "unknown source"}} {
		m := hub.Message{ID: hub.NewID("msg", at(70+i)), SourceID: r.source, ReceivedAt: at(70 + i), HTTPStatus: 401, Reason: r.reason, Status: hub.MessageRejected}
		if err := s.RecordRejection(ctx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	cs := claim(t, s, at(80), 10, time.Minute)
	for _, c := range cs {
		status := hub.DeliverySucceeded
		if c.Delivery.EventID != ev.ID {
			status = hub.DeliveryFailed
		}
		record(t, s, c, status, at(100), time.Time{})
	}

	a, err := s.Activity(ctx(t), at(-600))
	if err != nil {
		t.Fatalf("Activity = %v", err)
	}
	type key struct {
		minute    time.Time
		name, key string
	}
	got := map[key][2]int64{}
	for _, c := range a.Counts {
		got[key{c.Minute.UTC(), c.Name, c.Key}] = [2]int64{c.N, c.LatencyMS}
	}
	m0 := t0.Truncate(time.Minute)
	want := map[key][2]int64{
		{m0, hub.CountAccepted, ""}:                          {2, 0},
		{m0.Add(time.Minute), hub.CountQuarantined, ""}:      {1, 0},
		{m0.Add(time.Minute), hub.CountRejected, ""}:         {3, 0},
		{m0.Add(time.Minute), hub.CountDelivered, "ep1"}:     {1, 20},
		{m0.Add(time.Minute), hub.CountDeliveryError, "ep1"}: {1, 20},
	}
	if d := diff(got, want); d != "" {
		t.Errorf("Activity counts differ: %s", d)
	}
	wantRej := []hub.RejectionCount{
		{Source: "s1", Reason: "bad signature", N: 2, Last: at(71)},
		{Source: "nobody", Reason: "unknown source", N: 1, Last: at(72)},
	}
	if d := diff(a.Rejections, wantRej); d != "" {
		t.Errorf("Activity rejections differ: %s", d)
	}
	if d := diff(a.LastMessage, map[string]time.Time{"s1": at(71)}); d != "" {
		t.Errorf("Activity last messages differ: %s", d)
	}

	// A later since leaves the earlier minute and rejections out.
	a, err = s.Activity(ctx(t), at(75))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range a.Counts {
		if c.Minute.Before(m0.Add(time.Minute)) {
			t.Errorf("Activity(since 12:01:15) has a count of %s", c.Minute)
		}
	}
	if len(a.Rejections) != 0 {
		t.Errorf("Activity(since after the rejections) = %v, want none", a.Rejections)
	}
}

// testStaleVerifications: only verifications that are not final and were
// created before the bound, newest first. Stores name verifications by
// their own clock, so the bounds are the real clock's.
func testStaleVerifications(t *testing.T, s hub.Store) {
	ingestStatus(t, s, "s1", "open-1", hub.StatusReview, false, at(0))
	ingestStatus(t, s, "s1", "final", hub.StatusApproved, true, at(1))
	ingestStatus(t, s, "s1", "open-2", hub.StatusPending, false, at(2))
	got, err := s.StaleVerifications(ctx(t), time.Now().Add(time.Minute), 10)
	if err != nil {
		t.Fatalf("StaleVerifications = %v", err)
	}
	var refs []string
	for _, v := range got {
		refs = append(refs, v.ProviderRef)
	}
	if d := diff(refs, []string{"open-2", "open-1"}); d != "" {
		t.Errorf("StaleVerifications refs differ: %s", d)
	}
	if got, _ := s.StaleVerifications(ctx(t), time.Now().Add(time.Minute), 1); len(got) != 1 {
		t.Errorf("StaleVerifications(limit 1) = %d, want 1", len(got))
	}
	if got, _ := s.StaleVerifications(ctx(t), time.Now().Add(-time.Hour), 10); len(got) != 0 {
		t.Errorf("StaleVerifications(before they were created) = %d, want 0", len(got))
	}
}

// testSessions: a session reads back with its token, whose revocation it
// shows at once; DeleteSession ends it; a session that expired is deleted
// by the next CreateSession. Its times are the real clock's, which the
// store's cleanup goes by.
func testSessions(t *testing.T, s hub.Store) {
	now := time.Now().UTC().Truncate(time.Second)
	tok := newToken(0, "ops", hub.RoleAdmin)
	if err := s.CreateToken(ctx(t), tok); err != nil {
		t.Fatal(err)
	}
	ses := hub.Session{ID: hub.NewID("ses", now), Hash: "h1", TokenID: tok.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	old := hub.Session{ID: hub.NewID("ses", now.Add(-2*time.Hour)), Hash: "h0", TokenID: tok.ID,
		CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)}
	for _, x := range []hub.Session{old, ses} {
		if err := s.CreateSession(ctx(t), x); err != nil {
			t.Fatalf("CreateSession(%s) = %v", x.Hash, err)
		}
	}
	_, _, err := s.SessionByHash(ctx(t), "h0")
	wantCode(t, "SessionByHash(expired before the last create)", err, hub.ENOTFOUND)
	wantCode(t, "CreateSession(hash exists)", s.CreateSession(ctx(t),
		hub.Session{ID: hub.NewID("ses", now), Hash: "h1", TokenID: tok.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}), hub.ECONFLICT)
	wantCode(t, "CreateSession(invalid)", s.CreateSession(ctx(t), hub.Session{ID: "x", Hash: "h2"}), hub.EINVALID)
	got, gotTok, err := s.SessionByHash(ctx(t), "h1")
	if err != nil {
		t.Fatalf("SessionByHash = %v", err)
	}
	if d := diff(got, ses); d != "" {
		t.Errorf("SessionByHash differs: %s", d)
	}
	if gotTok.ID != tok.ID || gotTok.Role != hub.RoleAdmin || gotTok.State(now) != hub.TokenActive {
		t.Errorf("SessionByHash token = %+v, want the active admin token", gotTok)
	}
	if _, err := s.RevokeToken(ctx(t), tok.ID, now); err != nil {
		t.Fatal(err)
	}
	if _, gotTok, _ := s.SessionByHash(ctx(t), "h1"); gotTok.State(now) != hub.TokenRevoked {
		t.Errorf("after a revoke the session's token is %s, want revoked", gotTok.State(now))
	}
	if err := s.DeleteSession(ctx(t), "h1"); err != nil {
		t.Fatalf("DeleteSession = %v", err)
	}
	_, _, err = s.SessionByHash(ctx(t), "h1")
	wantCode(t, "SessionByHash(deleted)", err, hub.ENOTFOUND)
	if err := s.DeleteSession(ctx(t), "h1"); err != nil {
		t.Errorf("DeleteSession(again) = %v, want nil", err)
	}
}

// testSampleQueue: RecordQueueSample keeps the first sample of each minute.
func testSampleQueue(t *testing.T, s hub.Store) { sampleQueue(t, []hub.Store{s, s}) }

// sampleQueue is testSampleQueue with the samples taken at once through
// stores that share one database (see RunShared), as every instance
// samples: each minute still has one sample of each kind, the first, which
// Activity returns beside the counters and the counters' purge deletes.
func sampleQueue(t *testing.T, stores []hub.Store) {
	s := stores[0]
	createEndpoints(t, s, newEndpoint("ep", at(-10)))
	for i := range 3 {
		ingestStatus(t, s, "s1", fmt.Sprint("r", i), hub.StatusApproved, true, at(10*i))
	}
	sampleAll := func(now time.Time) {
		t.Helper()
		errs := make(chan error, len(stores))
		for _, st := range stores {
			go func() { errs <- hub.SampleQueue(ctx(t), st, now) }()
		}
		for range stores {
			if err := <-errs; err != nil {
				t.Fatalf("hub.SampleQueue(%s) = %v", now.Format(time.TimeOnly), err)
			}
		}
	}
	type sample struct{ depth, oldestDue int64 }
	samples := func() map[time.Time]sample {
		t.Helper()
		a, err := s.Activity(ctx(t), at(-600))
		if err != nil {
			t.Fatalf("Activity = %v", err)
		}
		out := map[time.Time]sample{}
		for _, c := range a.Counts {
			v := out[c.Minute.UTC()]
			switch c.Name {
			case hub.CountQueueDepth:
				v.depth += c.N
			case hub.CountOldestDue:
				v.oldestDue += c.N
			default:
				continue
			}
			out[c.Minute.UTC()] = v
		}
		return out
	}
	m0 := t0.Truncate(time.Minute)

	sampleAll(at(30)) // 3 pending, the oldest due for 30 s
	cs := claim(t, s, at(40), 1, time.Minute)
	record(t, s, cs[0], hub.DeliverySucceeded, at(40), time.Time{})
	sampleAll(at(50)) // the minute has its samples: nothing changes
	sampleAll(at(70)) // 2 pending, the oldest (at 10 s) due for 60 s
	want := map[time.Time]sample{m0: {3, 30}, m0.Add(time.Minute): {2, 60}}
	if d := diff(samples(), want); d != "" {
		t.Errorf("queue samples differ: %s", d)
	}
	if err := s.RecordQueueSample(ctx(t), time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC), hub.QueueStats{}); hub.ErrorCode(err) != hub.EINVALID {
		t.Errorf("RecordQueueSample(year 300000) = %v, want EINVALID", err)
	}

	res, err := s.Purge(ctx(t), hub.Purge{CountersBefore: m0.Add(time.Minute)})
	if err != nil || res.Counters < 2 {
		t.Fatalf("Purge(counters before 12:01) = %+v, %v; want the two samples of 12:00 and more", res, err)
	}
	if d := diff(samples(), map[time.Time]sample{m0.Add(time.Minute): {2, 60}}); d != "" {
		t.Errorf("queue samples after the purge differ: %s", d)
	}
}
