package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// step is one observation of a verification in an ordering scenario; a zero
// ptime means the provider sent no timestamp.
type step struct {
	status hub.Status
	final  bool
	ptime  time.Time
}

// testOrdering runs SPEC section 5's rules through the store: each step is a
// message of its own, received in order.
func testOrdering(t *testing.T, s hub.Store) {
	tests := []struct {
		name         string
		steps        []step
		wantOutcomes []hub.Outcome
		wantVersions []int // after each step
		wantStatus   hub.Status
		wantPrev     []hub.Status // previous_status of each verification.updated event
	}{
		{
			name:         "preliminary then final",
			steps:        []step{{hub.StatusReview, false, time.Time{}}, {hub.StatusApproved, true, time.Time{}}},
			wantOutcomes: []hub.Outcome{hub.OutcomeApplied, hub.OutcomeApplied},
			wantVersions: []int{1, 2},
			wantStatus:   hub.StatusApproved,
			wantPrev:     []hub.Status{"", hub.StatusReview},
		},
		{
			name:         "final then preliminary is superseded",
			steps:        []step{{hub.StatusApproved, true, time.Time{}}, {hub.StatusReview, false, time.Time{}}},
			wantOutcomes: []hub.Outcome{hub.OutcomeApplied, hub.OutcomeSuperseded},
			wantVersions: []int{1, 1},
			wantStatus:   hub.StatusApproved,
			wantPrev:     []hub.Status{""},
		},
		{
			name:         "final then older preliminary is superseded",
			steps:        []step{{hub.StatusApproved, true, at(100)}, {hub.StatusReview, false, at(50)}},
			wantOutcomes: []hub.Outcome{hub.OutcomeApplied, hub.OutcomeSuperseded},
			wantVersions: []int{1, 1},
			wantStatus:   hub.StatusApproved,
			wantPrev:     []hub.Status{""},
		},
		{
			name:         "older provider time never replaces newer",
			steps:        []step{{hub.StatusApproved, true, at(100)}, {hub.StatusRejected, true, at(50)}},
			wantOutcomes: []hub.Outcome{hub.OutcomeApplied, hub.OutcomeSuperseded},
			wantVersions: []int{1, 1},
			wantStatus:   hub.StatusApproved,
			wantPrev:     []hub.Status{""},
		},
		{
			name:         "strictly newer preliminary replaces final",
			steps:        []step{{hub.StatusRejected, true, at(100)}, {hub.StatusReview, false, at(200)}},
			wantOutcomes: []hub.Outcome{hub.OutcomeApplied, hub.OutcomeApplied},
			wantVersions: []int{1, 2},
			wantStatus:   hub.StatusReview,
			wantPrev:     []hub.Status{"", hub.StatusRejected},
		},
		{
			name: "re-attempt: final rejected then final approved",
			steps: []step{{hub.StatusPending, false, at(10)}, {hub.StatusRejected, true, at(20)},
				{hub.StatusApproved, true, at(30)}},
			wantOutcomes: []hub.Outcome{hub.OutcomeApplied, hub.OutcomeApplied, hub.OutcomeApplied},
			wantVersions: []int{1, 2, 3},
			wantStatus:   hub.StatusApproved,
			wantPrev:     []hub.Status{"", hub.StatusPending, hub.StatusRejected},
		},
		{
			name:         "later received wins without timestamps",
			steps:        []step{{hub.StatusRejected, true, time.Time{}}, {hub.StatusApproved, true, time.Time{}}},
			wantOutcomes: []hub.Outcome{hub.OutcomeApplied, hub.OutcomeApplied},
			wantVersions: []int{1, 2},
			wantStatus:   hub.StatusApproved,
			wantPrev:     []hub.Status{"", hub.StatusRejected},
		},
		{
			name:         "same state again is applied without a new version",
			steps:        []step{{hub.StatusPending, false, at(1)}, {hub.StatusPending, false, at(2)}},
			wantOutcomes: []hub.Outcome{hub.OutcomeApplied, hub.OutcomeApplied},
			wantVersions: []int{1, 1},
			wantStatus:   hub.StatusPending,
			wantPrev:     []hub.Status{""},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := fmt.Sprintf("scan-%d", i)
			var results []hub.IngestResult
			for j, st := range tc.steps {
				m := msg("idenfy-main", fmt.Sprintf("%s:%d", ref, j), at(1000*i+j))
				o := observe(m, ref, "", st.status, st.final)
				o.ProviderTime = st.ptime
				results = append(results, ingest(t, s, m, []hub.Observation{o}))
			}
			v := only(t, s, hub.VerificationFilter{ProviderRef: ref})
			if v.Status != tc.wantStatus || v.Version != tc.wantVersions[len(tc.wantVersions)-1] {
				t.Errorf("verification = %s v%d, want %s v%d", v.Status, v.Version, tc.wantStatus, tc.wantVersions[len(tc.wantVersions)-1])
			}
			if len(v.Timeline) != len(tc.steps) {
				t.Fatalf("timeline has %d entries, want %d", len(v.Timeline), len(tc.steps))
			}
			for j, o := range v.Timeline {
				if o.Outcome != tc.wantOutcomes[j] || o.Version != tc.wantVersions[j] || o.Status != tc.steps[j].status ||
					o.MessageID != results[j].MessageID {
					t.Errorf("timeline[%d] = %s %s v%d (message %s), want %s %s v%d (message %s)", j, o.Status, o.Outcome, o.Version,
						o.MessageID, tc.steps[j].status, tc.wantOutcomes[j], tc.wantVersions[j], results[j].MessageID)
				}
			}
			replay(t, v)
			// Each applied change emitted exactly one event, in its ingest's
			// result; superseded and unchanged observations none.
			var fromResults []hub.Event
			for _, r := range results {
				fromResults = append(fromResults, r.Events...)
			}
			es := allEvents(t, s, hub.EventFilter{VerificationID: v.ID})
			if len(es) != len(tc.wantPrev) || len(fromResults) != len(tc.wantPrev) {
				t.Fatalf("%d events stored, %d returned by Ingest; want %d", len(es), len(fromResults), len(tc.wantPrev))
			}
			sort.Slice(es, func(a, b int) bool {
				return updated(t, es[a]).Verification.Version < updated(t, es[b]).Verification.Version
			})
			for j, e := range es {
				u := updated(t, e)
				if u.Verification.Version != j+1 || u.PreviousStatus != tc.wantPrev[j] || e.ID != fromResults[j].ID {
					t.Errorf("event %d: version %d, previous %q, id %s; want version %d, previous %q, id %s",
						j, u.Verification.Version, u.PreviousStatus, e.ID, j+1, tc.wantPrev[j], fromResults[j].ID)
				}
			}
		})
	}
}

// testDedupRace: the same message delivered 32 times at once is stored once,
// and every delivery is told the stored message's id.
func testDedupRace(t *testing.T, s hub.Store) { dedupRace(t, []hub.Store{s}, hub.Dedup{}) }

// testDedupRaceWhileCurrent is testDedupRace for a message deduplicated
// while the state it describes is current (hub.Dedup.WhileCurrent).
func testDedupRaceWhileCurrent(t *testing.T, s hub.Store) {
	dedupRace(t, []hub.Store{s}, hub.Dedup{WhileCurrent: true})
}

// testDedupRaceWindow is testDedupRace for a message deduplicated within a
// window (hub.Dedup.Window), with copies on both sides of the end of a
// window-long interval, whose keys differ.
func testDedupRaceWindow(t *testing.T, s hub.Store) {
	dedupRace(t, []hub.Store{s}, hub.Dedup{Window: raceWindow})
}

// raceWindow is the dedup window of testDedupRaceWindow: the race's copies
// arrive within 1.6 s of t0+29.5 s, across the end of the interval at t0+30 s.
const raceWindow = 30 * time.Second

// dedupRace is testDedupRace with the deliveries spread over stores that
// share one database (see RunShared), for messages deduplicated by d; it
// reads back through the first.
func dedupRace(t *testing.T, stores []hub.Store, d hub.Dedup) {
	s := stores[0]
	const n = 32
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []hub.IngestResult
		ids     []string
	)
	start := make(chan struct{})
	for i := range n {
		when := at(i)
		if d.Window > 0 {
			when = t0.Truncate(raceWindow).Add(raceWindow - 500*time.Millisecond + time.Duration(i)*50*time.Millisecond)
		}
		m := msg("idenfy-main", "scan-race:final", when)
		m.Dedup = d
		ids = append(ids, m.ID)
		o := observe(m, "scan-race", "", hub.StatusApproved, true)
		o.Current = d.WhileCurrent
		in := hub.Ingest{Message: m, Observations: []hub.Observation{o}, Events: []hub.Event{otpEvent(m)}}
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			res, err := s.Ingest(ctx(t), in)
			if err != nil {
				t.Errorf("Ingest = %v", err)
				return
			}
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if len(results) != n {
		t.Fatalf("%d of %d ingests succeeded", len(results), n)
	}
	var winners []hub.IngestResult
	for _, r := range results {
		if !r.Duplicate {
			winners = append(winners, r)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("%d ingests were not duplicates, want exactly 1", len(winners))
	}
	winner := winners[0]
	if !slices.Contains(ids, winner.MessageID) {
		t.Errorf("winner's message id %s is none of the ingested ones", winner.MessageID)
	}
	for _, r := range results {
		if r.MessageID != winner.MessageID {
			t.Errorf("an ingest reported message %s, want %s", r.MessageID, winner.MessageID)
		}
		if r.Duplicate && len(r.Events) != 0 {
			t.Errorf("a duplicate reported %d events", len(r.Events))
		}
	}
	if ms := allMessages(t, s, hub.MessageFilter{}); len(ms) != 1 || ms[0].ID != winner.MessageID {
		t.Errorf("messages stored = %v, want [%s]", messageIDs(ms), winner.MessageID)
	}
	v := only(t, s, hub.VerificationFilter{})
	if len(v.Timeline) != 1 || v.Version != 1 {
		t.Errorf("verification v%d with %d timeline entries, want v1 with 1", v.Version, len(v.Timeline))
	}
	if es := allEvents(t, s, hub.EventFilter{}); len(es) != 2 {
		t.Errorf("%d events stored, want 2", len(es))
	}
}

// testOrderingRace: many different observations of one verification ingested
// at once end in the state that replaying the recorded timeline serially
// through hub.Apply gives, with one version and one event per change.
func testOrderingRace(t *testing.T, s hub.Store) { orderingRace(t, []hub.Store{s}) }

// orderingRace is testOrderingRace with the observations spread over stores
// that share one database (see RunShared); it reads back through the first.
func orderingRace(t *testing.T, stores []hub.Store) {
	s := stores[0]
	const n = 48
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []hub.Status{hub.StatusPending, hub.StatusReview, hub.StatusActionRequired, hub.StatusApproved,
		hub.StatusRejected, hub.StatusSuspected}
	var ins []hub.Ingest
	for i := range n {
		m := msg("idenfy-main", fmt.Sprintf("race-%d", i), at(i))
		o := observe(m, "scan-ordering", "", statuses[rng.IntN(len(statuses))], rng.IntN(3) == 0)
		if rng.IntN(3) > 0 {
			o.ProviderTime = at(rng.IntN(20))
		}
		if rng.IntN(2) == 0 {
			o.Reasons = []string{fmt.Sprintf("TAG_%d", rng.IntN(3))}
		}
		if rng.IntN(2) == 0 {
			o.AttemptsLeft = ptr(rng.IntN(3))
		}
		if rng.IntN(4) == 0 {
			o.ApplicantRef = fmt.Sprintf("user-%d", rng.IntN(2))
		}
		ins = append(ins, hub.Ingest{Message: m, Observations: []hub.Observation{o}})
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, in := range ins {
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			if _, err := s.Ingest(ctx(t), in); err != nil {
				t.Errorf("Ingest = %v", err)
			}
		})
	}
	close(start)
	wg.Wait()

	v := only(t, s, hub.VerificationFilter{ProviderRef: "scan-ordering"})
	if len(v.Timeline) != n {
		t.Fatalf("timeline has %d entries, want %d", len(v.Timeline), n)
	}
	changes := replay(t, v)
	es := allEvents(t, s, hub.EventFilter{VerificationID: v.ID})
	if len(es) != changes {
		t.Fatalf("%d verification.updated events, want %d (one per change)", len(es), changes)
	}
	var versions []int
	for _, e := range es {
		versions = append(versions, updated(t, e).Verification.Version)
	}
	slices.Sort(versions)
	for i, ver := range versions {
		if ver != i+1 {
			t.Fatalf("event versions = %v, want 1..%d once each", versions, changes)
		}
	}
}

// testConcurrentIngest: many distinct messages at once are all stored.
func testConcurrentIngest(t *testing.T, s hub.Store) { concurrentIngest(t, []hub.Store{s}) }

// concurrentIngest is testConcurrentIngest with the messages spread over
// stores that share one database (see RunShared); it reads back through the
// first.
func concurrentIngest(t *testing.T, stores []hub.Store) {
	s := stores[0]
	const n = 500
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		m := msg(fmt.Sprintf("source-%d", i%5), fmt.Sprintf("key-%d", i), at(i))
		in := hub.Ingest{Message: m, Observations: []hub.Observation{observe(m, fmt.Sprintf("ref-%d", i), "", hub.StatusApproved, true)}}
		s := stores[i%len(stores)]
		wg.Go(func() {
			<-start
			res, err := s.Ingest(ctx(t), in)
			if err != nil {
				t.Errorf("Ingest = %v", err)
				return
			}
			if res.Duplicate || res.MessageID != in.Message.ID || len(res.Events) != 1 {
				t.Errorf("Ingest(%s) = {%s, duplicate %v, %d events}", in.Message.ID, res.MessageID, res.Duplicate, len(res.Events))
			}
		})
	}
	close(start)
	wg.Wait()
	if ms := allMessages(t, s, hub.MessageFilter{Page: hub.Page{Limit: hub.MaxPageLimit}}); len(ms) != n {
		t.Errorf("%d messages stored, want %d", len(ms), n)
	}
	if vs := allVerifications(t, s, hub.VerificationFilter{Page: hub.Page{Limit: 100}}); len(vs) != n {
		t.Errorf("%d verifications stored, want %d", len(vs), n)
	}
	if es := allEvents(t, s, hub.EventFilter{Page: hub.Page{Limit: 100}}); len(es) != n {
		t.Errorf("%d events stored, want %d", len(es), n)
	}
	if ms := allMessages(t, s, hub.MessageFilter{Source: "source-3"}); len(ms) != n/5 {
		t.Errorf("%d messages of source-3, want %d", len(ms), n/5)
	}
}

// replay runs v's timeline serially through hub.Apply and checks that each
// entry's recorded outcome and version, and v's stored state, are what the
// replay gives. It returns the number of changes, which must be v's version.
func replay(t *testing.T, v hub.Verification) (changes int) {
	t.Helper()
	var (
		cur    hub.Verification
		exists bool
	)
	for i, o := range v.Timeline {
		next, outcome, changed := hub.Apply(cur, exists, o)
		if changed {
			changes++
		}
		if outcome != o.Outcome || next.Version != o.Version {
			t.Errorf("timeline[%d] recorded %s v%d, replay gives %s v%d", i, o.Outcome, o.Version, outcome, next.Version)
		}
		cur, exists = next, true
	}
	if v.Version != changes {
		t.Errorf("version %d, want %d (the number of changes in the timeline)", v.Version, changes)
	}
	cur.ID = v.ID
	got := v
	got.Timeline = nil
	if d := diff(got, cur); d != "" {
		t.Errorf("stored state differs from the serial replay of its timeline: %s", d)
	}
	return changes
}

// identomatMsg returns a message of a provider that sends neither an event
// id nor a timestamp and states the current status (Identomat), whose
// session-change body with this result has dedup key key.
func identomatMsg(key string, when time.Time) hub.Message {
	m := msg("identomat-main", key, when)
	m.Provider, m.EventName, m.Dedup = "identomat", "session-change", hub.Dedup{WhileCurrent: true}
	return m
}

// testDedupWhileCurrent: SPEC section 5 rule 1 for such a provider (see
// hub.Dedup.WhileCurrent). An identical body is a duplicate only while the
// state it describes is current; a state that comes back after another one
// is a change, and the provider's current status wins over a final one.
func testDedupWhileCurrent(t *testing.T, s hub.Store) {
	bodies := map[hub.Status]string{ // one body per result, as Identomat sends them
		hub.StatusReview: "sha256:manual-check", hub.StatusActionRequired: "sha256:info-requested",
		hub.StatusRejected: "sha256:rejected",
	}
	steps := []struct {
		status      hub.Status
		wantDupOf   int // 1-based step whose message a duplicate reports; 0: not a duplicate
		wantVersion int
	}{
		{hub.StatusReview, 0, 1},
		{hub.StatusReview, 1, 1}, // the provider's retry while it is current
		{hub.StatusActionRequired, 0, 2},
		{hub.StatusReview, 0, 3}, // MANUAL_CHECK comes back: a change
		{hub.StatusReview, 4, 3},
		{hub.StatusRejected, 0, 4},
		{hub.StatusActionRequired, 0, 5}, // a reviewer reopens the rejected session
		{hub.StatusRejected, 0, 6},       // and rejects it again: the same body as step 6
		{hub.StatusRejected, 8, 6},
	}
	var ids []string
	stored, events := 0, 0
	for i, st := range steps {
		m := identomatMsg(bodies[st.status], at(i))
		o := observe(m, "sess-1", "", st.status, st.status == hub.StatusRejected)
		o.Current = true
		res := ingest(t, s, m, []hub.Observation{o})
		ids = append(ids, m.ID)
		checkDuplicate(t, i, res, ids, st.wantDupOf)
		if st.wantDupOf == 0 {
			stored++
			events += len(res.Events)
		}
		v := only(t, s, hub.VerificationFilter{ProviderRef: "sess-1"})
		if v.Status != st.status || v.Version != st.wantVersion {
			t.Fatalf("after step %d: %s v%d, want %s v%d", i+1, v.Status, v.Version, st.status, st.wantVersion)
		}
	}
	v := only(t, s, hub.VerificationFilter{ProviderRef: "sess-1"})
	if len(v.Timeline) != stored {
		t.Errorf("timeline has %d entries, want %d", len(v.Timeline), stored)
	}
	replay(t, v)
	if ms := allMessages(t, s, hub.MessageFilter{}); len(ms) != stored {
		t.Errorf("%d messages stored, want %d", len(ms), stored)
	}
	if es := allEvents(t, s, hub.EventFilter{}); len(es) != events || events != 6 {
		t.Errorf("%d events stored, %d returned; want 6", len(es), events)
	}
}

// windowMsg returns an OTP request of a provider that sends neither an event
// id nor a timestamp (Identomat), whose copies within window are retries.
func windowMsg(source string, when time.Time) hub.Message {
	m := msg(source, "sha256:otp", when)
	m.Provider, m.EventName, m.Dedup = "identomat", "one-time-password", hub.Dedup{Window: 30 * time.Second}
	return m
}

// testDedupWindow: SPEC section 5 rule 1 for requests a provider may send
// again on purpose (see hub.Dedup.Window): an identical message is a
// duplicate only when it comes less than the window after the stored copy,
// whichever side of a window-long interval's end either falls.
func testDedupWindow(t *testing.T, s hub.Store) {
	// t0 is 0.123456 s past a multiple of 30 s since 1970: 30 s later is the
	// next interval.
	steps := []struct {
		source    string
		after     time.Duration // after t0
		wantDupOf int           // 1-based; 0: a new request
	}{
		{"identomat-main", 20 * time.Second, 0},
		{"identomat-main", 35 * time.Second, 1}, // 15 s later, in the next interval
		{"identomat-main", 49 * time.Second, 1}, // 29 s later
		{"identomat-main", 51 * time.Second, 0}, // 31 s later: the user asked again
		{"identomat-main", 52 * time.Second, 4}, // in the same interval
		{"identomat-main", 81 * time.Second, 0}, // exactly 30 s after step 4: not a retry
		{"identomat-other", 20 * time.Second, 0},
	}
	var ids []string
	events := 0
	for i, st := range steps {
		m := windowMsg(st.source, t0.Add(st.after))
		res := ingest(t, s, m, nil, otpEvent(m))
		ids = append(ids, m.ID)
		checkDuplicate(t, i, res, ids, st.wantDupOf)
		events += len(res.Events)
	}
	if es := allEvents(t, s, hub.EventFilter{Type: hub.EventOTPRequested}); len(es) != 4 || events != 4 {
		t.Errorf("%d otp.requested events stored, %d returned; want 4", len(es), events)
	}
	if ms := allMessages(t, s, hub.MessageFilter{}); len(ms) != 4 {
		t.Errorf("%d messages stored, want 4", len(ms))
	}
}

// testFormerRef: a verification the provider has not named yet is kept
// under its FormerRef (KYCAID's applicant, while verification_id is null)
// and continues, same id, once the provider names it.
func testFormerRef(t *testing.T, s hub.Store) {
	send := func(i int, ref, former string, status hub.Status, final bool) hub.IngestResult {
		t.Helper()
		m := msg("kycaid-main", fmt.Sprintf("request_id:%d", i), at(i))
		o := observe(m, ref, "", status, final)
		o.FormerRef = former
		return ingest(t, s, m, []hub.Observation{o})
	}
	first := send(1, "applicant:a1", "", hub.StatusPending, false)
	v := only(t, s, hub.VerificationFilter{ProviderRef: "applicant:a1"})
	named := send(2, "ver-1", "applicant:a1", hub.StatusPending, false)
	send(3, "ver-1", "applicant:a1", hub.StatusApproved, true)
	got := only(t, s, hub.VerificationFilter{ProviderRef: "ver-1"})
	if got.ID != v.ID || got.Status != hub.StatusApproved || got.Version != 3 || len(got.Timeline) != 3 {
		t.Fatalf("named verification %s %s v%d with %d timeline entries, want %s approved v3 with 3",
			got.ID, got.Status, got.Version, len(got.Timeline), v.ID)
	}
	replay(t, got)
	// Taking its id is a change, which the company hears of.
	if len(first.Events) != 1 || len(named.Events) != 1 {
		t.Fatalf("events: %d then %d, want 1 and 1", len(first.Events), len(named.Events))
	}
	if u := updated(t, named.Events[0]); u.Verification.ProviderRef != "ver-1" || u.Verification.ID != v.ID || u.Verification.Version != 2 {
		t.Errorf("event on naming: %s %s v%d, want %s ver-1 v2", u.Verification.ID, u.Verification.ProviderRef,
			u.Verification.Version, v.ID)
	}
	if vs := allVerifications(t, s, hub.VerificationFilter{ProviderRef: "applicant:a1"}); len(vs) != 0 {
		t.Errorf("%d verifications still under the applicant, want 0", len(vs))
	}

	// The applicant's next verification starts unnamed again: a new one.
	send(4, "applicant:a1", "", hub.StatusPending, false)
	next := only(t, s, hub.VerificationFilter{ProviderRef: "applicant:a1"})
	send(5, "ver-2", "applicant:a1", hub.StatusPending, false)
	if got := only(t, s, hub.VerificationFilter{ProviderRef: "ver-2"}); got.ID != next.ID || got.ID == v.ID {
		t.Errorf("ver-2 is %s, want %s (the applicant's second verification)", got.ID, next.ID)
	}
	// A verification stored under its own reference is the one observed,
	// even when one is also under the FormerRef.
	send(6, "applicant:a2", "", hub.StatusPending, false)
	send(7, "ver-3", "", hub.StatusPending, false)
	send(8, "ver-3", "applicant:a2", hub.StatusApproved, true)
	if got := only(t, s, hub.VerificationFilter{ProviderRef: "ver-3"}); got.Version != 2 || got.Status != hub.StatusApproved {
		t.Errorf("ver-3 = %s v%d, want approved v2", got.Status, got.Version)
	}
	if got := only(t, s, hub.VerificationFilter{ProviderRef: "applicant:a2"}); got.Version != 1 {
		t.Errorf("applicant:a2 = v%d, want v1 (untouched)", got.Version)
	}
	if vs := allVerifications(t, s, hub.VerificationFilter{}); len(vs) != 4 {
		t.Errorf("%d verifications, want 4", len(vs))
	}
}

// testFormerRefInOneMessage: a message whose second observation names the
// verification that its first creates (under the FormerRef) has one
// verification, at the second's state, whichever reference sorts first.
func testFormerRefInOneMessage(t *testing.T, s hub.Store) {
	for i, c := range []struct{ applicant, named string }{
		{"applicant:b1", "ver-b1"}, // the former reference sorts first
		{"zz-applicant:b2", "ver-b2"},
	} {
		m := msg("kycaid-main", fmt.Sprintf("in-one:%d", i), at(i))
		first := observe(m, c.applicant, "", hub.StatusPending, false)
		named := observe(m, c.named, "", hub.StatusApproved, true)
		named.FormerRef = c.applicant
		res := ingest(t, s, m, []hub.Observation{first, named})
		got := only(t, s, hub.VerificationFilter{ProviderRef: c.named})
		if got.Status != hub.StatusApproved || got.Version != 2 || len(got.Timeline) != 2 {
			t.Errorf("%s: %s v%d with %d timeline entries, want approved v2 with 2", c.named, got.Status, got.Version,
				len(got.Timeline))
		}
		if vs := allVerifications(t, s, hub.VerificationFilter{ProviderRef: c.applicant}); len(vs) != 0 {
			t.Errorf("%d verifications still under %s, want 0", len(vs), c.applicant)
		}
		if len(res.Events) != 2 || updated(t, res.Events[1]).Verification.ID != got.ID {
			t.Errorf("%s: %d events, want 2, the second of %s", c.named, len(res.Events), got.ID)
		}
	}
}

// testAttempts: a rejection that is final only when no attempt is left
// (KYCAID, hub.Observation.FinalIfNoAttempts), with attempts_left the
// provider's latest figure.
func testAttempts(t *testing.T, s hub.Store) {
	steps := []struct {
		status       hub.Status
		attempts     *int
		wantOutcome  hub.Outcome
		wantFinal    bool
		wantAttempts int
	}{
		{hub.StatusPending, ptr(2), hub.OutcomeApplied, false, 2},
		{hub.StatusRejected, nil, hub.OutcomeApplied, false, 2},   // attempts remain: not final
		{hub.StatusPending, ptr(1), hub.OutcomeApplied, false, 1}, // the next attempt
		{hub.StatusRejected, nil, hub.OutcomeApplied, false, 1},
		{hub.StatusPending, ptr(0), hub.OutcomeApplied, false, 0},
		{hub.StatusRejected, nil, hub.OutcomeApplied, true, 0}, // the last attempt failed
		// A late pending is judged older than the final rejection, and so
		// is its count (see hub.Apply).
		{hub.StatusPending, ptr(1), hub.OutcomeSuperseded, true, 0},
	}
	for i, st := range steps {
		m := msg("kycaid-main", fmt.Sprintf("request_id:%d", i), at(i))
		o := observe(m, "ver-1", "", st.status, false) // no attempt left: final (see FinalIfNoAttempts)
		o.AttemptsLeft, o.FinalIfNoAttempts = st.attempts, st.status == hub.StatusRejected
		ingest(t, s, m, []hub.Observation{o})
		v := only(t, s, hub.VerificationFilter{ProviderRef: "ver-1"})
		last := v.Timeline[len(v.Timeline)-1]
		applied := st.wantOutcome == hub.OutcomeApplied
		if applied && v.Status != st.status || v.Final != st.wantFinal ||
			v.AttemptsLeft == nil || *v.AttemptsLeft != st.wantAttempts || last.Outcome != st.wantOutcome {
			t.Fatalf("after step %d: %s final %v attempts %s (%s), want %s final %v attempts %d (%s)", i+1,
				v.Status, v.Final, attempts(v.AttemptsLeft), last.Outcome, st.status, st.wantFinal,
				st.wantAttempts, st.wantOutcome)
		}
		if i == len(steps)-1 {
			replay(t, v)
		}
	}
}

// attempts renders an attempts count for a failure message.
func attempts(n *int) string {
	if n == nil {
		return "none"
	}
	return fmt.Sprint(*n)
}

// checkDuplicate checks the result of step i (0-based), whose message id is
// ids[i]: a duplicate of the 1-based step dupOf, or, when dupOf is 0, a new
// message with one event.
func checkDuplicate(t *testing.T, i int, res hub.IngestResult, ids []string, dupOf int) {
	t.Helper()
	switch {
	case dupOf > 0 && (!res.Duplicate || res.MessageID != ids[dupOf-1] || len(res.Events) != 0):
		t.Errorf("step %d: Ingest = {%s, duplicate %v, %d events}, want a duplicate of step %d (%s)",
			i+1, res.MessageID, res.Duplicate, len(res.Events), dupOf, ids[dupOf-1])
	case dupOf == 0 && (res.Duplicate || res.MessageID != ids[i] || len(res.Events) != 1):
		t.Errorf("step %d: Ingest = {%s, duplicate %v, %d events}, want a new message with one event",
			i+1, res.MessageID, res.Duplicate, len(res.Events))
	}
}
