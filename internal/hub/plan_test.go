package hub_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// stored returns the verification that o would create, stored under id at
// version (its Final and Status as o says).
func stored(id string, version int, o hub.Observation) hub.Verification {
	v := hub.NewVerification(id, o)
	v.Version = version
	return v
}

// ref returns o observing the verification under ref, and former.
func ref(o hub.Observation, ref, former string) hub.Observation {
	o.ProviderRef, o.FormerRef = ref, former
	return o
}

func TestPlanIngest(t *testing.T) {
	t.Parallel()
	all := hub.Endpoint{ID: "ep_all", Enabled: true}
	other := hub.Endpoint{ID: "ep_other", Enabled: true, Sources: []string{"elsewhere"}}
	otp := hub.Event{ID: "evt_otp", Type: hub.EventOTPRequested, Source: "src", CreatedAt: t0}
	pending := obs(hub.StatusPending, false, 0, 0)
	approved := obs(hub.StatusApproved, true, 1, 10)
	tests := []struct {
		name         string
		obs          []hub.Observation
		events       []hub.Event
		whileCurrent bool
		st           hub.IngestState
		// Verifications by "id ref version", or "new ref version" for a
		// new id.
		wantInsert, wantUpdate []string
		// Timeline rows as "outcome version", events as "type prev".
		wantTimeline, wantEvents []string
		// Deliveries as "endpoint event-index".
		wantDeliveries []string
		wantKey        string
	}{
		{
			name:           "the first observation creates its verification",
			obs:            []hub.Observation{pending},
			st:             hub.IngestState{Endpoints: []hub.Endpoint{all, other}},
			wantInsert:     []string{"new ref 1"},
			wantTimeline:   []string{"applied 1"},
			wantEvents:     []string{"verification.updated "},
			wantDeliveries: []string{"ep_all 0"},
		},
		{
			name:           "a stored verification changes",
			obs:            []hub.Observation{approved},
			st:             hub.IngestState{Stored: []hub.Verification{stored("ver_1", 3, pending)}, Endpoints: []hub.Endpoint{all}},
			wantUpdate:     []string{"ver_1 ref 4"},
			wantTimeline:   []string{"applied 4"},
			wantEvents:     []string{"verification.updated pending"},
			wantDeliveries: []string{"ep_all 0"},
		},
		{
			name:         "an older observation is superseded and writes only its timeline row",
			obs:          []hub.Observation{obs(hub.StatusReview, false, 2, 5)},
			st:           hub.IngestState{Stored: []hub.Verification{stored("ver_1", 2, approved)}, Endpoints: []hub.Endpoint{all}},
			wantTimeline: []string{"superseded 2"},
		},
		{
			name:         "the same state again updates the row without a version or an event",
			obs:          []hub.Observation{obs(hub.StatusApproved, true, 3, 12)},
			st:           hub.IngestState{Stored: []hub.Verification{stored("ver_1", 2, approved)}},
			wantUpdate:   []string{"ver_1 ref 2"},
			wantTimeline: []string{"applied 2"},
		},
		{
			name:           "two observations of a new verification insert it once, as the second left it",
			obs:            []hub.Observation{pending, approved},
			st:             hub.IngestState{Endpoints: []hub.Endpoint{all}},
			wantInsert:     []string{"new ref 2"},
			wantTimeline:   []string{"applied 1", "applied 2"},
			wantEvents:     []string{"verification.updated ", "verification.updated pending"},
			wantDeliveries: []string{"ep_all 0", "ep_all 1"},
		},
		{
			name:         "the verification under the former reference takes the new one",
			obs:          []hub.Observation{ref(approved, "new", "old")},
			st:           hub.IngestState{Stored: []hub.Verification{stored("ver_1", 1, ref(pending, "old", ""))}},
			wantUpdate:   []string{"ver_1 new 2"},
			wantTimeline: []string{"applied 2"},
			wantEvents:   []string{"verification.updated pending"},
		},
		{
			name: "the verification under the provider reference wins over the former one",
			obs:  []hub.Observation{ref(approved, "new", "old")},
			st: hub.IngestState{Stored: []hub.Verification{
				stored("ver_old", 1, ref(pending, "old", "")), stored("ver_new", 5, ref(pending, "new", "")),
			}},
			wantUpdate:   []string{"ver_new new 6"},
			wantTimeline: []string{"applied 6"},
			wantEvents:   []string{"verification.updated pending"},
		},
		{
			name:         "a verification an earlier observation created is found under its former reference",
			obs:          []hub.Observation{ref(pending, "old", ""), ref(approved, "new", "old")},
			wantInsert:   []string{"new new 2"},
			wantTimeline: []string{"applied 1", "applied 2"},
			wantEvents:   []string{"verification.updated ", "verification.updated pending"},
		},
		{
			name:         "a verification the store created is not inserted again",
			obs:          []hub.Observation{pending},
			st:           hub.IngestState{Created: []hub.Verification{hub.NewVerification("ver_c", pending)}},
			wantTimeline: []string{"applied 1"},
			wantEvents:   []string{"verification.updated "},
		},
		{
			name: "a verification the store created, also read as stored, is updated by a later observation",
			obs:  []hub.Observation{pending, approved},
			st: hub.IngestState{
				Created: []hub.Verification{hub.NewVerification("ver_c", pending)},
				Stored:  []hub.Verification{hub.NewVerification("ver_c", pending)},
			},
			wantUpdate:   []string{"ver_c ref 2"},
			wantTimeline: []string{"applied 1", "applied 2"},
			wantEvents:   []string{"verification.updated ", "verification.updated pending"},
		},
		{
			name:           "the message's own events follow, and fan out by the endpoints' filters",
			obs:            []hub.Observation{approved},
			events:         []hub.Event{otp},
			st:             hub.IngestState{Stored: []hub.Verification{stored("ver_1", 1, pending)}, Endpoints: []hub.Endpoint{all, other, {ID: "ep_otp", Enabled: true, EventTypes: []string{"otp.*"}}}},
			wantUpdate:     []string{"ver_1 ref 2"},
			wantTimeline:   []string{"applied 2"},
			wantEvents:     []string{"verification.updated pending", "otp.requested "},
			wantDeliveries: []string{"ep_all 0", "ep_all 1", "ep_otp 1"},
		},
		{
			name:           "events without observations",
			events:         []hub.Event{otp},
			st:             hub.IngestState{Endpoints: []hub.Endpoint{all, {ID: "ep_off", EventTypes: []string{"*"}}}},
			wantEvents:     []string{"otp.requested "},
			wantDeliveries: []string{"ep_all 0"},
		},
		{
			name:         "a message deduplicated while current takes the versions it leaves",
			obs:          []hub.Observation{approved, ref(pending, "ref2", "")},
			whileCurrent: true,
			st:           hub.IngestState{Stored: []hub.Verification{stored("ver_1", 7, pending)}},
			wantInsert:   []string{"new ref2 1"},
			wantUpdate:   []string{"ver_1 ref 8"},
			wantTimeline: []string{"applied 8", "applied 1"},
			wantEvents:   []string{"verification.updated pending", "verification.updated "},
			wantKey:      "key@v8,1",
		},
		{
			name:         "while current, a copy that changes nothing takes the key of the stored copy",
			obs:          []hub.Observation{current(obs(hub.StatusPending, false, 5, -1))},
			whileCurrent: true,
			st:           hub.IngestState{Stored: []hub.Verification{stored("ver_1", 3, pending)}},
			wantUpdate:   []string{"ver_1 ref 3"},
			wantTimeline: []string{"applied 3"},
			wantKey:      "key@v3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := hub.Message{ID: "msg_1", SourceID: "src", ReceivedAt: t0, DedupKey: "key"}
			m.Dedup.WhileCurrent = tt.whileCurrent
			obs := slices.Clone(tt.obs)
			for i := range obs {
				obs[i].MessageID = m.ID
			}
			in := hub.Ingest{Message: m, Observations: obs, Events: tt.events}
			p := hub.PlanIngest(t0, in, tt.st)

			verifs := func(vs []hub.Verification) []string {
				var out []string
				for _, v := range vs {
					id := v.ID
					if !slices.ContainsFunc(append(tt.st.Stored, tt.st.Created...), func(s hub.Verification) bool { return s.ID == id }) {
						if !strings.HasPrefix(id, "ver_") {
							t.Errorf("new verification id %q", id)
						}
						id = "new"
					}
					out = append(out, fmt.Sprint(id, " ", v.ProviderRef, " ", v.Version))
				}
				return out
			}
			check(t, "inserts", verifs(p.Insert), tt.wantInsert)
			check(t, "updates", verifs(p.Update), tt.wantUpdate)
			var timeline []string
			for i, r := range p.Timeline {
				timeline = append(timeline, fmt.Sprint(r.Outcome, " ", r.Version))
				if r.ID == "" || r.MessageID != m.ID || r.VerificationKey != obs[i].VerificationKey {
					t.Errorf("timeline row %d: %+v", i, r)
				}
				all := append(append(slices.Clone(p.Insert), p.Update...), tt.st.Stored...)
				all = append(all, tt.st.Created...)
				if !slices.ContainsFunc(all, func(v hub.Verification) bool { return v.ID == r.VerificationID }) {
					t.Errorf("timeline row %d: verification %q is none of the plan's", i, r.VerificationID)
				}
			}
			check(t, "timeline", timeline, tt.wantTimeline)
			var events []string
			for _, e := range p.Events {
				var d hub.VerificationUpdated
				if e.Type == hub.EventVerificationUpdated {
					if err := json.Unmarshal(e.Data, &d); err != nil {
						t.Fatal(err)
					}
					if d.Verification.ID != e.VerificationID || e.MessageID != m.ID {
						t.Errorf("event %s: verification %q, event's %q, message %q", e.ID, d.Verification.ID, e.VerificationID, e.MessageID)
					}
				}
				events = append(events, fmt.Sprint(e.Type, " ", d.PreviousStatus))
			}
			check(t, "events", events, tt.wantEvents)
			var deliveries []string
			for _, d := range p.Deliveries {
				i := slices.IndexFunc(p.Events, func(e hub.Event) bool { return e.ID == d.Event.ID })
				deliveries = append(deliveries, fmt.Sprint(d.EndpointID, " ", i))
				if !strings.HasPrefix(d.ID, "dlv_") || !d.At.Equal(m.ReceivedAt) {
					t.Errorf("delivery %+v", d)
				}
			}
			check(t, "deliveries", deliveries, tt.wantDeliveries)
			if p.CurrentKey != tt.wantKey {
				t.Errorf("current key %q, want %q", p.CurrentKey, tt.wantKey)
			}
			res := p.Result(m.ID, 2)
			if res.MessageID != m.ID || res.Deliveries != len(p.Deliveries) || len(res.Events) != len(p.Events) || res.Dispatches != 2 {
				t.Errorf("result %+v", res)
			}
			// The plan is pure: what it was given is as it was.
			if !slices.EqualFunc(obs, tt.obs, func(a, b hub.Observation) bool { return a.ID == b.ID && a.Outcome == b.Outcome }) {
				t.Errorf("observations changed: %+v", obs)
			}
		})
	}
}

func check(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestReplayMissing(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	events := []hub.Event{
		{ID: "evt_had", Type: hub.EventVerificationUpdated, Source: "src"},
		{ID: "evt_new", Type: hub.EventVerificationUpdated, Source: "src"},
		{ID: "evt_other", Type: hub.EventVerificationUpdated, Source: "elsewhere"},
	}
	had := func(id string) bool { return id == "evt_had" }
	tests := []struct {
		name   string
		status hub.DeliveryStatus
		ep     hub.Endpoint
		want   []string
	}{
		{"events never delivered, by the endpoint's filters", "", hub.Endpoint{ID: "ep", Enabled: true, Sources: []string{"src"}}, []string{"evt_new"}},
		{"a disabled endpoint too", "", hub.Endpoint{ID: "ep"}, []string{"evt_new", "evt_other"}},
		{"none with a status filter", hub.DeliveryFailed, hub.Endpoint{ID: "ep", Enabled: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := hub.Replay{EndpointID: tt.ep.ID, Status: tt.status, Now: now}
			var got []string
			for _, d := range r.Missing(tt.ep, events, had) {
				got = append(got, d.Event.ID)
				if d.EndpointID != "ep" || !d.At.Equal(now) || !strings.HasPrefix(d.ID, "dlv_") {
					t.Errorf("delivery %+v", d)
				}
			}
			check(t, "deliveries", got, tt.want)
		})
	}
}

func TestPlanDispatchesEnded(t *testing.T) {
	t.Parallel()
	at := t0.Add(time.Minute)
	ds := []hub.Dispatch{
		{ID: "dsp_sent", Status: hub.DispatchSent, Source: "src", UpdatedAt: at},
		{ID: "dsp_failed", Status: hub.DispatchFailed, Source: "src", UpdatedAt: at},
		{ID: "dsp_expired", Status: hub.DispatchExpired, Source: "src", UpdatedAt: at.Add(time.Second)},
	}
	eps := []hub.Endpoint{
		{ID: "ep_failed", Enabled: true, EventTypes: []string{hub.EventDispatchFailed}},
		{ID: "ep_all", Enabled: true},
		{ID: "ep_off", EventTypes: []string{"*"}},
	}
	p := hub.PlanDispatchesEnded(ds, eps)
	var events, deliveries []string
	for _, e := range p.Events {
		var d hub.DispatchEnded
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatal(err)
		}
		events = append(events, e.Type+" "+d.DispatchID)
	}
	for _, d := range p.Deliveries {
		deliveries = append(deliveries, fmt.Sprint(d.EndpointID, " ", d.Event.Type, " ", d.At.Sub(t0)))
	}
	check(t, "events", events, []string{"dispatch.failed dsp_failed", "dispatch.expired dsp_expired"})
	check(t, "deliveries", deliveries, []string{
		"ep_failed dispatch.failed 1m0s", "ep_all dispatch.failed 1m0s", "ep_all dispatch.expired 1m1s",
	})
	if slices.ContainsFunc(ds[:1], hub.Dispatch.RaisesEvent) || !ds[1].RaisesEvent() || !ds[2].RaisesEvent() {
		t.Error("RaisesEvent disagrees with the events")
	}
}
