package hub

import (
	"slices"
	"time"
)

// The logic of an ingest is written once, here, above the stores: given what
// a store read under its isolation (the verifications a message observes,
// the enabled endpoints), PlanIngest returns every row the message adds
// after its own, and the store writes them with its own SQL, batching and
// commit strategy. FanOut, Replay.Missing and EndedEvents do the same for
// the other writes that raise events or create deliveries.

// IngestState is what a store has read, inside the transaction that stored
// an ingest's message, for PlanIngest.
type IngestState struct {
	// Stored are, for each observation, the verification stored under its
	// ProviderRef or, when there is none, under its FormerRef, in any order
	// and each at least once, read (and locked) so that no other
	// transaction applies an observation to them before this one commits.
	Stored []Verification
	// Created are verifications the store has inserted already, each as
	// NewVerification made it from the first observation of its key: a
	// store that creates a verification before it locks it (PostgreSQL)
	// lists them here, not in Stored, and PlanIngest updates them if a later
	// observation changes them.
	Created []Verification
	// Endpoints are the enabled endpoints; needed only when the ingest has
	// observations or events.
	Endpoints []Endpoint
}

// TimelineRow is an observation as recorded in its verification's
// timeline: ID, Outcome and Version set.
type TimelineRow struct {
	Observation
	VerificationID string
}

// NewDelivery is a pending delivery to create: of Event to EndpointID,
// created and due at At.
type NewDelivery struct {
	ID         string
	EndpointID string
	Event      Event
	At         time.Time
}

// IngestPlan is every row an ingest writes besides its message.
type IngestPlan struct {
	// Insert are the verifications to create and Update those to update,
	// each in its state after the message's last observation.
	Insert, Update []Verification
	// Timeline are the message's observations as recorded, in order.
	Timeline []TimelineRow
	// Events are the events to store in order: a verification.updated for
	// each observation that changed its verification, then the message's
	// own events.
	Events []Event
	// Deliveries are the deliveries of Events to the endpoints that Match
	// them, due at the message's ReceivedAt, in event order.
	Deliveries []NewDelivery
	// CurrentKey is the key a message deduplicated while current takes
	// (Message.CurrentKey) before anything else of the plan is written; if a
	// copy holds it, the message is that copy's duplicate and the store
	// rolls back whatever it wrote of it. "" for any other message.
	CurrentKey string
}

// Result is what an ingest that wrote p reports, dispatches its number of
// dispatches.
func (p IngestPlan) Result(messageID string, dispatches int) IngestResult {
	return IngestResult{MessageID: messageID, Events: p.Events, Deliveries: len(p.Deliveries), Dispatches: dispatches}
}

// NewVerification returns the verification that obs, the first observation
// of a verification, creates, under id.
func NewVerification(id string, obs Observation) Verification {
	v, _, _ := Apply(Verification{}, false, obs)
	v.ID = id
	return v
}

// planned is one verification while PlanIngest applies observations to it.
type planned struct {
	v Verification
	// pending: in IngestState.Created, and not yet reached by the
	// observation that created it.
	pending bool
	// insert: created by the plan, to be inserted; dirty: changed after it
	// was read or inserted, to be updated.
	insert, dirty bool
}

// find returns the index in vs of the verification under k, pending (see
// planned) or not, or -1.
func find(vs []planned, k VerificationKey, pending bool) int {
	for i := range vs {
		p := &vs[i]
		if p.pending == pending && p.v.Source == k.Source && p.v.ProviderRef == k.ProviderRef && p.v.Level == k.Level {
			return i
		}
	}
	return -1
}

// PlanIngest applies in's observations, in order, to the verifications of
// st (or creates them), with Apply, and returns every row to write after
// in's message: what each observation did to its verification (SPEC section
// 5), a verification.updated event for each change, and a delivery of every
// event to every endpoint that Matches it. in must have been through
// Ingest.Prepare; now dates the ids it makes.
//
// An observation applies to the verification that is, by then, under its
// ProviderRef: one stored, or one an earlier observation of the message
// created or renamed; else to the one the store created for it (Created).
// Without one, to the one under its FormerRef, which takes ProviderRef.
// Without either, it creates it.
func PlanIngest(now time.Time, in Ingest, st IngestState) IngestPlan {
	vs := make([]planned, 0, len(st.Created)+len(st.Stored)+len(in.Observations))
	for _, v := range st.Created {
		vs = append(vs, planned{v: v, pending: true})
	}
	for i, v := range st.Stored {
		same := func(c Verification) bool { return c.ID == v.ID }
		if !slices.ContainsFunc(st.Created, same) && !slices.ContainsFunc(st.Stored[:i], same) {
			vs = append(vs, planned{v: v})
		}
	}
	p := IngestPlan{
		Timeline: make([]TimelineRow, 0, len(in.Observations)),
		Events:   make([]Event, 0, len(in.Observations)+len(in.Events)),
	}
	// at[i] is the index in vs of the verification observation i applied
	// to, for CurrentKey.
	var at []int
	if in.Message.Dedup.WhileCurrent {
		at = make([]int, len(in.Observations))
	}
	for i, o := range in.Observations {
		k := o.VerificationKey
		j := find(vs, k, false)
		if j < 0 {
			j = find(vs, k, true)
		}
		if j < 0 && o.FormerRef != "" {
			j = find(vs, VerificationKey{Source: k.Source, ProviderRef: o.FormerRef, Level: k.Level}, false)
		}
		var (
			next    Verification
			outcome Outcome
			changed bool
			prev    Status
		)
		switch {
		case j < 0:
			j = len(vs)
			vs = append(vs, planned{v: NewVerification(NewID("ver", now), o), insert: true})
			next, outcome, changed = vs[j].v, OutcomeApplied, true
		case vs[j].pending:
			vs[j].pending = false
			next, outcome, changed = vs[j].v, OutcomeApplied, true
		default:
			cur := &vs[j]
			prev = cur.v.Status
			next, outcome, changed = Apply(cur.v, true, o)
			if outcome == OutcomeApplied {
				// Even without a change of state an applied observation may
				// bring a newer provider timestamp.
				cur.v = next
				cur.dirty = !cur.insert
			}
		}
		if at != nil {
			at[i] = j
		}
		if o.ID == "" {
			o.ID = NewID("obs", now)
		}
		o.Outcome, o.Version = outcome, next.Version
		p.Timeline = append(p.Timeline, TimelineRow{Observation: o, VerificationID: next.ID})
		if changed {
			p.Events = append(p.Events, UpdatedEvent(NewID("evt", now), next, prev, o))
		}
	}
	for _, v := range vs {
		switch {
		case v.insert:
			p.Insert = append(p.Insert, v.v)
		case v.dirty:
			p.Update = append(p.Update, v.v)
		}
	}
	if in.Message.Dedup.WhileCurrent {
		versions := make(map[VerificationKey]int, len(at))
		for i, o := range in.Observations {
			versions[o.VerificationKey] = vs[at[i]].v.Version
		}
		p.CurrentKey = in.Message.CurrentKey(in.Observations, versions)
	}
	p.Events = append(p.Events, in.Events...)
	p.Deliveries = FanOut(p.Events, st.Endpoints, in.Message.ReceivedAt)
	return p
}

// FanOut returns a pending delivery, created and due at at, of each event
// to each endpoint that Matches it, in the order of events, then of
// endpoints.
func FanOut(events []Event, endpoints []Endpoint, at time.Time) []NewDelivery {
	var ds []NewDelivery
	for _, e := range events {
		for i := range endpoints {
			if endpoints[i].Matches(e) {
				ds = append(ds, NewDelivery{ID: NewID("dlv", at), EndpointID: endpoints[i].ID, Event: e, At: at})
			}
		}
	}
	return ds
}

// Missing returns the deliveries that a Replay to ep creates among events,
// a chunk of those it walks, once it has reset the existing ones: with no
// status filter, a delivery due at r.Now of each event that ep never had
// (had says which it had: those Replay reset) and that ep's filters, not
// Enabled, admit. With a status filter, none: Replay only resets.
func (r Replay) Missing(ep Endpoint, events []Event, had func(eventID string) bool) []NewDelivery {
	if r.Status != "" {
		return nil
	}
	ep.Enabled = true // Replay ignores Enabled: the operator asked for these events
	var ds []NewDelivery
	for _, e := range events {
		if !had(e.ID) && ep.Matches(e) {
			ds = append(ds, NewDelivery{ID: NewID("dlv", r.Now), EndpointID: ep.ID, Event: e, At: r.Now})
		}
	}
	return ds
}

// EndedPlan is what dispatches that ended failed or expired write: their
// events and the deliveries of those.
type EndedPlan struct {
	Events     []Event
	Deliveries []NewDelivery
}

// PlanDispatchesEnded returns the events that dispatches ds, just recorded,
// raise by ending failed or expired (see Dispatch.EndedEvent), each created
// at its dispatch's UpdatedAt, and their deliveries to the enabled
// endpoints that Match them, due then.
func PlanDispatchesEnded(ds []Dispatch, endpoints []Endpoint) EndedPlan {
	var p EndedPlan
	for _, d := range ds {
		if ev, ok := d.EndedEvent(NewID("evt", d.UpdatedAt), d.UpdatedAt); ok {
			p.Events = append(p.Events, ev)
			p.Deliveries = append(p.Deliveries, FanOut([]Event{ev}, endpoints, d.UpdatedAt)...)
		}
	}
	return p
}
