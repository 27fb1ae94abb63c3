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
func testDedupRace(t *testing.T, s hub.Store) { dedupRace(t, []hub.Store{s}) }

// dedupRace is testDedupRace with the deliveries spread over stores that
// share one database (see RunShared); it reads back through the first.
func dedupRace(t *testing.T, stores []hub.Store) {
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
		m := msg("idenfy-main", "scan-race:final", at(i))
		ids = append(ids, m.ID)
		in := hub.Ingest{Message: m, Observations: []hub.Observation{observe(m, "scan-race", "", hub.StatusApproved, true)},
			Events: []hub.Event{otpEvent(m)}}
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
