package hub

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// Apply runs one observation through the ordering rules of SPEC section 5 and
// returns the verification as it is afterwards, the observation's outcome and
// whether the current state changed (which raises Version and emits
// verification.updated).
//
// cur is the current verification; exists is false for the first observation
// of a verification, which is always applied. Rule 1 (duplicates change
// nothing) is enforced before Apply, by the store's dedup key (see Dedup).
// Then:
//
//  2. When both carry a provider timestamp, the older never replaces the newer.
//  3. A non-final observation never replaces a final one unless its provider
//     timestamp is strictly newer, or it is Current: a provider that states
//     the current status without a timestamp (Identomat) is believed, so a
//     decided session that a reviewer reopens is reopened.
//  4. Otherwise the later-received observation wins. A Dated observation
//     (a poll's answer, dated when its request was sent; a reprocessed
//     callback, dated when it was first received) is received at its date:
//     it never replaces a state that changed after it.
//
// An observation marked FinalIfNoAttempts is final only when no attempt is
// left: its AttemptsLeft, else the verification's last known one, is 0.
//
// A superseded observation changes nothing, its AttemptsLeft included
// (KYCAID's "attempts_left is always the provider's latest figure"): the
// rules above judge it older than the state that stands, and its count is
// as old as its status. KYCAID sends no timestamp, so only rule 3
// supersedes its observations: a pending or a rejection with attempts left
// arriving after an approval or after the rejection that used the last
// attempt. Taking its count would show a final rejection with attempts
// left, or an approval with a count from before it.
//
// An observation that wins but states what is already current (same status,
// final, reasons, applicant, attempts and provider reference) is applied
// without a new version. A winning observation whose ProviderRef differs from
// cur's (the store found cur under the observation's FormerRef) gives the
// verification its provider reference, which is a change.
// Apply is pure: it touches neither cur nor obs.
func Apply(cur Verification, exists bool, obs Observation) (next Verification, outcome Outcome, changed bool) {
	obs.Final = obs.final(cur, exists)
	if !exists {
		v := Verification{
			Source: obs.Source, Provider: obs.Provider, ProviderRef: obs.ProviderRef,
			Level: obs.Level, CreatedAt: obs.ReceivedAt,
		}
		fill(&v, obs)
		v.Version = 1
		return v, OutcomeApplied, true
	}
	if obs.Dated() && obs.ReceivedAt.Before(cur.UpdatedAt) {
		return cur, OutcomeSuperseded, false
	}
	bothTimed := !cur.ProviderTime.IsZero() && !obs.ProviderTime.IsZero()
	if bothTimed && obs.ProviderTime.Before(cur.ProviderTime) {
		return cur, OutcomeSuperseded, false
	}
	if cur.Final && !obs.Final && !obs.Current && !(bothTimed && obs.ProviderTime.After(cur.ProviderTime)) {
		return cur, OutcomeSuperseded, false
	}
	next = cur
	next.Reasons = slices.Clone(cur.Reasons)
	fill(&next, obs)
	if sameState(cur, next) {
		next.Version, next.UpdatedAt = cur.Version, cur.UpdatedAt
		return next, OutcomeApplied, false
	}
	next.Version = cur.Version + 1
	return next, OutcomeApplied, true
}

// final reports whether obs, applied to cur, makes the verification final.
func (obs Observation) final(cur Verification, exists bool) bool {
	if obs.Final || !obs.FinalIfNoAttempts {
		return obs.Final
	}
	left := obs.AttemptsLeft
	if left == nil && exists {
		left = cur.AttemptsLeft
	}
	return left != nil && *left == 0
}

// fill copies what an applied observation says onto v. Fields the provider
// did not send (an empty applicant, no attempts count, no timestamp) keep
// their current value.
func fill(v *Verification, obs Observation) {
	v.ProviderRef = obs.ProviderRef
	v.Kind = obs.Kind
	if v.Kind == "" {
		v.Kind = KindKYC
	}
	v.Status, v.Final = obs.Status, obs.Final
	v.Reasons = slices.Clone(obs.Reasons)
	if v.Reasons == nil {
		v.Reasons = []string{}
	}
	if obs.ApplicantRef != "" {
		v.ApplicantRef = obs.ApplicantRef
	}
	if obs.AttemptsLeft != nil {
		n := *obs.AttemptsLeft
		v.AttemptsLeft = &n
	}
	if !obs.ProviderTime.IsZero() {
		v.ProviderTime = obs.ProviderTime
	}
	v.UpdatedAt = obs.ReceivedAt
}

func sameState(a, b Verification) bool {
	sameAttempts := (a.AttemptsLeft == nil) == (b.AttemptsLeft == nil) &&
		(a.AttemptsLeft == nil || *a.AttemptsLeft == *b.AttemptsLeft)
	return a.Status == b.Status && a.Final == b.Final && a.Kind == b.Kind && a.ProviderRef == b.ProviderRef &&
		a.ApplicantRef == b.ApplicantRef && sameAttempts && slices.Equal(a.Reasons, b.Reasons)
}

// UpdatedEvent builds the verification.updated event for an applied change.
// The event id must be given; prev is the status before the change ("" for a
// new verification).
func UpdatedEvent(id string, v Verification, prev Status, obs Observation) Event {
	v.Timeline = nil
	data := appendUpdated(make([]byte, 0, 512), VerificationUpdated{Verification: v, PreviousStatus: prev, ProviderEvent: obs.ProviderEvent})
	return Event{
		ID: id, Type: EventVerificationUpdated, CreatedAt: obs.ReceivedAt,
		Source: v.Source, Provider: v.Provider, Data: data,
		MessageID: obs.MessageID, VerificationID: v.ID,
	}
}

// appendUpdated appends u's JSON, byte for byte what json.Marshal writes
// (FuzzUpdatedEvent holds it to that): every applied change builds one in the
// store's write transaction, where reflection took 2.7 % of SQLite's writer
// flat out. What json.Marshal would write otherwise than in this common shape
// (a poll state, a time it cannot write), it writes itself.
func appendUpdated(b []byte, u VerificationUpdated) []byte {
	v := u.Verification
	if v.Poll != nil || v.Timeline != nil || !jsonTime(v.ProviderTime) || !jsonTime(v.CreatedAt) ||
		!jsonTime(v.UpdatedAt) {
		data, _ := json.Marshal(u)
		return append(b, data...)
	}
	str := func(name string, s string) {
		b = append(b, name...)
		b = appendJSONString(b, s)
	}
	at := func(name string, t time.Time) {
		b = append(b, name...)
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	str(`{"verification":{"id":`, v.ID)
	str(`,"source":`, v.Source)
	str(`,"provider":`, v.Provider)
	str(`,"provider_ref":`, v.ProviderRef)
	str(`,"applicant_ref":`, v.ApplicantRef)
	str(`,"kind":`, string(v.Kind))
	str(`,"level":`, v.Level)
	str(`,"status":`, string(v.Status))
	b = strconv.AppendBool(append(b, `,"final":`...), v.Final)
	b = strconv.AppendInt(append(b, `,"version":`...), int64(v.Version), 10)
	b = append(b, `,"reasons":`...)
	if v.Reasons == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, r := range v.Reasons {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, r)
		}
		b = append(b, ']')
	}
	if v.AttemptsLeft != nil {
		b = strconv.AppendInt(append(b, `,"attempts_left":`...), int64(*v.AttemptsLeft), 10)
	}
	if !v.ProviderTime.IsZero() {
		at(`,"provider_time":`, v.ProviderTime)
	}
	at(`,"created_at":`, v.CreatedAt)
	at(`,"updated_at":`, v.UpdatedAt)
	b = append(b, '}')
	if u.PreviousStatus != "" {
		str(`,"previous_status":`, string(u.PreviousStatus))
	}
	str(`,"provider_event":`, u.ProviderEvent)
	return append(b, '}')
}

// jsonTime reports whether t.MarshalJSON writes t without an error: a year
// of four digits, an offset under 24 hours.
func jsonTime(t time.Time) bool {
	_, offset := t.Zone()
	return t.Year() >= 0 && t.Year() <= 9999 && offset > -24*3600 && offset < 24*3600
}
