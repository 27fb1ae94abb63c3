package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// testOrigins: a poll's message and its timeline entries keep their origin;
// a dated answer never replaces a state changed after its date.
func testOrigins(t *testing.T, s hub.Store) {
	cb := ingestOne(t, s, "idenfy-main", "cb-1", at(0), func(m hub.Message) hub.Observation {
		return observe(m, "scan-1", "", hub.StatusPending, false)
	})
	vid := cb.Events[0].VerificationID
	later := ingestOne(t, s, "idenfy-main", "cb-2", at(20), func(m hub.Message) hub.Observation {
		return observe(m, "scan-1", "", hub.StatusReview, false)
	})
	if len(later.Events) != 1 {
		t.Fatalf("second callback: %d events, want 1", len(later.Events))
	}

	// A poll sent at 10 s, answered after the callback of 20 s: superseded.
	poll := msg("idenfy-main", "poll:1", at(10))
	poll.Origin, poll.EventName, poll.RemoteAddr = hub.OriginPoll, "status", ""
	o := observe(poll, "scan-1", "", hub.StatusPending, false)
	o.Origin = ""
	res := ingest(t, s, poll, []hub.Observation{o})
	if len(res.Events) != 0 {
		t.Errorf("an answer dated before the last change made %d events, want 0", len(res.Events))
	}
	// A poll sent at 30 s with news is applied like a callback.
	poll2 := msg("idenfy-main", "poll:2", at(30))
	poll2.Origin, poll2.EventName = hub.OriginPoll, "status"
	o2 := observe(poll2, "scan-1", "", hub.StatusApproved, true)
	o2.Origin = "" // the message's
	res = ingest(t, s, poll2, []hub.Observation{o2})
	if len(res.Events) != 1 || updated(t, res.Events[0]).Verification.Status != hub.StatusApproved {
		t.Fatalf("a newer answer made %d events, want one verification.updated to approved", len(res.Events))
	}

	got, err := s.Message(ctx(t), poll.ID)
	if err != nil || got.Origin != hub.OriginPoll {
		t.Errorf("Message(poll) = origin %q, %v; want %q", got.Origin, err, hub.OriginPoll)
	}
	v, err := s.Verification(ctx(t), vid)
	if err != nil {
		t.Fatal(err)
	}
	var origins []string
	var outcomes []hub.Outcome
	for _, o := range v.Timeline {
		origins, outcomes = append(origins, o.Origin), append(outcomes, o.Outcome)
	}
	wantOrigins := []string{hub.OriginCallback, hub.OriginCallback, hub.OriginPoll, hub.OriginPoll}
	wantOutcomes := []hub.Outcome{hub.OutcomeApplied, hub.OutcomeApplied, hub.OutcomeSuperseded, hub.OutcomeApplied}
	if !slices.Equal(origins, wantOrigins) || !slices.Equal(outcomes, wantOutcomes) {
		t.Errorf("timeline origins %v outcomes %v, want %v %v", origins, outcomes, wantOrigins, wantOutcomes)
	}
	if v.Status != hub.StatusApproved || v.Version != 3 {
		t.Errorf("verification = %s v%d, want approved v3", v.Status, v.Version)
	}
}

// testReprocess: a quarantined message, reprocessed, becomes accepted with
// its observations and events; a second reprocess changes nothing.
func testReprocess(t *testing.T, s hub.Store) {
	m := msg("idenfy-main", "sha256:q1", at(0))
	m.Status, m.Reason, m.EventName = hub.MessageQuarantined, "unknown event type", "NEW_EVENT"
	ingest(t, s, m, nil)

	in := hub.Ingest{Message: m}
	in.Message.Status, in.Message.Reason = hub.MessageAccepted, ""
	o := observe(m, "scan-9", "", hub.StatusReview, false)
	o.Origin = hub.OriginReprocess
	in.Observations = []hub.Observation{o}
	res, err := s.Reprocess(ctx(t), in)
	if err != nil {
		t.Fatalf("Reprocess = %v", err)
	}
	if res.MessageID != m.ID || len(res.Events) != 1 || res.Duplicate {
		t.Fatalf("Reprocess = %+v, want one event of message %s", res, m.ID)
	}
	got, err := s.Message(ctx(t), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != hub.MessageAccepted || got.Reason != "" || len(got.Events) != 1 || got.DedupKey != m.DedupKey {
		t.Errorf("reprocessed message = status %s reason %q events %v key %q; want accepted, no reason, 1 event, key kept",
			got.Status, got.Reason, got.Events, got.DedupKey)
	}
	v, err := s.Verification(ctx(t), res.Events[0].VerificationID)
	if err != nil || len(v.Timeline) != 1 || v.Timeline[0].Origin != hub.OriginReprocess {
		t.Errorf("timeline = %+v, %v; want one entry of origin reprocess", v.Timeline, err)
	}

	_, err = s.Reprocess(ctx(t), in)
	wantCode(t, "Reprocess again", err, hub.ECONFLICT)
	if v2, _ := s.Verification(ctx(t), v.ID); len(v2.Timeline) != 1 || v2.Version != v.Version {
		t.Errorf("a second Reprocess changed the verification: %d entries, v%d", len(v2.Timeline), v2.Version)
	}
	in.Message.ID = hub.NewID("msg", at(5))
	in.Observations = nil
	_, err = s.Reprocess(ctx(t), in)
	wantCode(t, "Reprocess(unknown)", err, hub.ENOTFOUND)
}

// testClaimPolls: only stale verifications not final and due are claimed,
// each by one claim at a time; RecordPoll's state is read back; a
// verification given up is claimed only by hand.
func testClaimPolls(t *testing.T, s hub.Store) {
	mk := func(ref string, sec int, st hub.Status, final bool) string {
		res := ingestOne(t, s, "kycaid-main", "k-"+ref, at(sec), func(m hub.Message) hub.Observation {
			return observe(m, ref, "", st, final)
		})
		return res.Events[0].VerificationID
	}
	old := mk("old", 0, hub.StatusPending, false)
	older := mk("older", -10, hub.StatusReview, false)
	mk("done", -20, hub.StatusApproved, true)
	mk("fresh", 100, hub.StatusPending, false)
	ingestOne(t, s, "idenfy-main", "other", at(-30), func(m hub.Message) hub.Observation {
		return observe(m, "x", "", hub.StatusPending, false)
	})

	claim := hub.PollClaim{Source: "kycaid-main", StaleBefore: at(50), Now: at(200), Until: at(260), Limit: 10}
	got, err := s.ClaimPolls(ctx(t), claim)
	if err != nil {
		t.Fatal(err)
	}
	if ids := verificationIDs(got); !slices.Equal(ids, []string{older, old}) {
		t.Fatalf("ClaimPolls = %v, want [older old], oldest change first", ids)
	}
	if got[0].Poll == nil || !sameTime(got[0].Poll.NextPollAt, at(260)) {
		t.Errorf("claimed poll state = %+v, want next poll at the lease's end", got[0].Poll)
	}
	// Leased: not claimed again before the lease ends, unless forced.
	if again, _ := s.ClaimPolls(ctx(t), claim); len(again) != 0 {
		t.Errorf("ClaimPolls during the lease = %v, want none", verificationIDs(again))
	}
	claim.Force = true
	if again, _ := s.ClaimPolls(ctx(t), claim); len(again) != 2 {
		t.Errorf("forced ClaimPolls = %v, want both", verificationIDs(again))
	}
	claim.Force = false

	st := hub.PollState{Polls: 3, LastPolledAt: at(200), NextPollAt: at(500), LastError: "status 503", GaveUpAt: at(200)}
	if err := s.RecordPoll(ctx(t), old, st); err != nil {
		t.Fatal(err)
	}
	v, err := s.Verification(ctx(t), old)
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(v.Poll, &st); d != "" {
		t.Errorf("poll state read back differs: %s", d)
	}
	if err := s.RecordPoll(ctx(t), older, hub.PollState{Polls: 1, LastPolledAt: at(200), NextPollAt: at(300)}); err != nil {
		t.Fatal(err)
	}
	claim.Now, claim.Until = at(1000), at(1060)
	if got, _ := s.ClaimPolls(ctx(t), claim); !slices.Equal(verificationIDs(got), []string{older}) {
		t.Errorf("ClaimPolls after give-up = %v, want only older", verificationIDs(got))
	}
	claim.Force, claim.Now, claim.Until = true, at(2000), at(2060)
	if got, _ := s.ClaimPolls(ctx(t), claim); !slices.Equal(verificationIDs(got), []string{older}) {
		t.Errorf("forced ClaimPolls = %v, want only older: a verification given up is not polled by the worker", verificationIDs(got))
	}
	wantCode(t, "RecordPoll(unknown)", s.RecordPoll(ctx(t), "ver_unknown", st), hub.ENOTFOUND)

	// Concurrent claims never hand out one verification twice.
	claim = hub.PollClaim{Source: "kycaid-main", StaleBefore: at(50), Now: at(5000), Until: at(5060), Limit: 10}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.ClaimPolls(ctx(t), claim)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			for _, v := range got {
				seen[v.ID]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if seen[older] != 1 || len(seen) != 1 {
		t.Errorf("concurrent claims = %v, want older claimed once", seen)
	}
}

// testStuck: the stuck filter and Backlog use each source's deadline.
func testStuck(t *testing.T, s hub.Store) {
	for i, src := range []string{"a", "b"} {
		for j, sec := range []int{0, 100} {
			ingestOne(t, s, src, src+string(rune('0'+j)), at(sec+i), func(m hub.Message) hub.Observation {
				return observe(m, src+"-ref"+string(rune('0'+j)), "", hub.StatusPending, false)
			})
		}
		ingestOne(t, s, src, src+"-final", at(-50), func(m hub.Message) hub.Observation {
			return observe(m, src+"-done", "", hub.StatusApproved, true)
		})
	}
	q := msg("a", "sha256:q", at(0))
	q.Status, q.Reason = hub.MessageQuarantined, "unknown"
	ingest(t, s, q, nil)

	// a's deadline takes in both of its open ones, b's default only the old.
	stuck := hub.Stuck{Default: at(50), Before: map[string]time.Time{"a": at(200)}}
	vs, _, err := s.Verifications(ctx(t), hub.VerificationFilter{Stuck: &stuck})
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, v := range vs {
		refs = append(refs, v.ProviderRef)
	}
	slices.Sort(refs)
	if want := []string{"a-ref0", "a-ref1", "b-ref0"}; !slices.Equal(refs, want) {
		t.Errorf("Verifications(stuck) = %v, want %v", refs, want)
	}
	vs, _, _ = s.Verifications(ctx(t), hub.VerificationFilter{Source: "b", Stuck: &hub.Stuck{Default: at(50)}})
	if len(vs) != 1 || vs[0].ProviderRef != "b-ref0" {
		t.Errorf("Verifications(source b, stuck) = %v, want [b-ref0]", verificationIDs(vs))
	}
	b, err := s.Backlog(ctx(t), stuck)
	if err != nil {
		t.Fatal(err)
	}
	if b.Stuck["a"] != 2 || b.Stuck["b"] != 1 || len(b.Stuck) != 2 || b.Quarantined["a"] != 1 || len(b.Quarantined) != 1 {
		t.Errorf("Backlog = %+v, want stuck a:2 b:1, quarantined a:1", b)
	}
}
