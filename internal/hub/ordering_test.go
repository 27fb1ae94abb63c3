package hub_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// obs builds an observation received at t0+received minutes, with a provider
// timestamp at t0+provider minutes when provider >= 0.
func obs(status hub.Status, final bool, received, provider int) hub.Observation {
	o := hub.Observation{
		VerificationKey: hub.VerificationKey{Source: "src", ProviderRef: "ref"},
		Provider:        "idenfy", Status: status, Final: final, ProviderEvent: "EV",
		ReceivedAt: t0.Add(time.Duration(received) * time.Minute),
	}
	if provider >= 0 {
		o.ProviderTime = t0.Add(time.Duration(provider) * time.Minute)
	}
	return o
}

// current marks o as stating the current status (Identomat).
func current(o hub.Observation) hub.Observation { o.Current = true; return o }

// attempt makes o a KYCAID-like observation with attempts left (nil: not
// sent); a rejection is final only once none is left.
func attempt(o hub.Observation, left *int) hub.Observation {
	o.AttemptsLeft = left
	if o.Status == hub.StatusRejected {
		o.Final, o.FinalIfNoAttempts = false, true
	}
	return o
}

func TestApply(t *testing.T) {
	t.Parallel()
	type step struct {
		obs     hub.Observation
		outcome hub.Outcome
	}
	zero, one, two := 0, 1, 2
	tests := []struct {
		name        string
		steps       []step
		wantStatus  hub.Status
		wantFinal   bool
		wantVersion int
	}{
		{
			name: "idenfy preliminary then final",
			steps: []step{
				{obs(hub.StatusReview, false, 0, 10), hub.OutcomeApplied},
				{obs(hub.StatusApproved, true, 1, 10), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusApproved, wantFinal: true, wantVersion: 2,
		},
		{
			name: "idenfy final then late preliminary with the same timestamp",
			steps: []step{
				{obs(hub.StatusApproved, true, 0, 10), hub.OutcomeApplied},
				{obs(hub.StatusReview, false, 1, 10), hub.OutcomeSuperseded},
			},
			wantStatus: hub.StatusApproved, wantFinal: true, wantVersion: 1,
		},
		{
			name: "non-final with a strictly newer timestamp replaces a final",
			steps: []step{
				{obs(hub.StatusApproved, true, 0, 10), hub.OutcomeApplied},
				{obs(hub.StatusReview, false, 1, 11), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusReview, wantFinal: false, wantVersion: 2,
		},
		{
			name: "fractal level: newer approved, then older rejected arrives",
			steps: []step{
				{obs(hub.StatusApproved, true, 0, 20), hub.OutcomeApplied},
				{obs(hub.StatusRejected, true, 1, 5), hub.OutcomeSuperseded},
			},
			wantStatus: hub.StatusApproved, wantFinal: true, wantVersion: 1,
		},
		{
			name: "fractal level: contacted, then approved, in timestamp order",
			steps: []step{
				{obs(hub.StatusActionRequired, false, 0, 5), hub.OutcomeApplied},
				{obs(hub.StatusApproved, true, 1, 20), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusApproved, wantFinal: true, wantVersion: 2,
		},
		{
			name: "kycaid pending (no timestamps) after completed",
			steps: []step{
				{obs(hub.StatusApproved, true, 0, -1), hub.OutcomeApplied},
				{obs(hub.StatusPending, false, 1, -1), hub.OutcomeSuperseded},
			},
			wantStatus: hub.StatusApproved, wantFinal: true, wantVersion: 1,
		},
		{
			name: "re-attempt: final rejected, later final approved",
			steps: []step{
				{obs(hub.StatusRejected, true, 0, 10), hub.OutcomeApplied},
				{obs(hub.StatusApproved, true, 30, 40), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusApproved, wantFinal: true, wantVersion: 2,
		},
		{
			name: "re-attempt without timestamps: the later received final wins",
			steps: []step{
				{obs(hub.StatusRejected, true, 0, -1), hub.OutcomeApplied},
				{obs(hub.StatusApproved, true, 1, -1), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusApproved, wantFinal: true, wantVersion: 2,
		},
		{
			name: "a timestamp on one side only: the later received wins",
			steps: []step{
				{obs(hub.StatusPending, false, 0, -1), hub.OutcomeApplied},
				{obs(hub.StatusReview, false, 1, 3), hub.OutcomeApplied},
				{obs(hub.StatusActionRequired, false, 2, -1), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusActionRequired, wantFinal: false, wantVersion: 3,
		},
		{
			name: "identomat: a reviewer reopens a rejected session, the current status wins",
			steps: []step{
				{current(obs(hub.StatusRejected, true, 0, -1)), hub.OutcomeApplied},
				{current(obs(hub.StatusActionRequired, false, 1, -1)), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusActionRequired, wantFinal: false, wantVersion: 2,
		},
		{
			name: "kycaid: a rejection with attempts left is not final, the next attempt applies",
			steps: []step{
				{attempt(obs(hub.StatusPending, false, 0, -1), &two), hub.OutcomeApplied},
				{attempt(obs(hub.StatusRejected, false, 1, -1), nil), hub.OutcomeApplied},
				{attempt(obs(hub.StatusPending, false, 2, -1), &one), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusPending, wantFinal: false, wantVersion: 3,
		},
		{
			name: "kycaid: the rejection of the last attempt is final",
			steps: []step{
				{attempt(obs(hub.StatusPending, false, 0, -1), &zero), hub.OutcomeApplied},
				{attempt(obs(hub.StatusRejected, false, 1, -1), nil), hub.OutcomeApplied},
				{attempt(obs(hub.StatusPending, false, 2, -1), &zero), hub.OutcomeSuperseded},
			},
			wantStatus: hub.StatusRejected, wantFinal: true, wantVersion: 2,
		},
		{
			name: "kycaid: a rejection carrying its own count of 0 is final",
			steps: []step{
				{attempt(obs(hub.StatusRejected, false, 0, -1), &zero), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusRejected, wantFinal: true, wantVersion: 1,
		},
		{
			name: "kycaid: a rejection with attempts unknown or unlimited is not final",
			steps: []step{
				{attempt(obs(hub.StatusRejected, false, 0, -1), nil), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusRejected, wantFinal: false, wantVersion: 1,
		},
		{
			name: "the same state again is applied without a new version",
			steps: []step{
				{obs(hub.StatusPending, false, 0, -1), hub.OutcomeApplied},
				{obs(hub.StatusPending, false, 1, -1), hub.OutcomeApplied},
			},
			wantStatus: hub.StatusPending, wantFinal: false, wantVersion: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v hub.Verification
			exists := false
			for i, s := range tt.steps {
				before := v
				next, outcome, changed := hub.Apply(v, exists, s.obs)
				if outcome != s.outcome {
					t.Fatalf("step %d: outcome %s, want %s", i, outcome, s.outcome)
				}
				if changed != (next.Version != before.Version) {
					t.Errorf("step %d: changed=%v but version %d -> %d", i, changed, before.Version, next.Version)
				}
				if outcome == hub.OutcomeSuperseded && (next.Status != before.Status || next.Version != before.Version) {
					t.Errorf("step %d: superseded observation changed the state: %+v", i, next)
				}
				v, exists = next, true
			}
			if v.Status != tt.wantStatus || v.Final != tt.wantFinal || v.Version != tt.wantVersion {
				t.Errorf("got status=%s final=%v version=%d, want %s %v %d", v.Status, v.Final, v.Version, tt.wantStatus, tt.wantFinal, tt.wantVersion)
			}
		})
	}
}

func TestApplyFirstObservation(t *testing.T) {
	t.Parallel()
	n := 3
	o := obs(hub.StatusSuspected, true, 0, 10)
	o.Level, o.ApplicantRef, o.AttemptsLeft, o.Reasons = "basic", "user-1", &n, []string{"NAME"}
	v, outcome, changed := hub.Apply(hub.Verification{}, false, o)
	if outcome != hub.OutcomeApplied || !changed || v.Version != 1 {
		t.Fatalf("first observation: outcome %s changed %v version %d", outcome, changed, v.Version)
	}
	if v.Source != "src" || v.Provider != "idenfy" || v.ProviderRef != "ref" || v.Level != "basic" ||
		v.ApplicantRef != "user-1" || *v.AttemptsLeft != 3 || v.Kind != hub.KindKYC ||
		!v.ProviderTime.Equal(o.ProviderTime) || !v.CreatedAt.Equal(o.ReceivedAt) || len(v.Reasons) != 1 {
		t.Errorf("verification %+v does not carry the observation", v)
	}
	n = 0
	if *v.AttemptsLeft != 3 {
		t.Error("Apply aliases the observation's attempts count")
	}
}

func TestApplyKeepsWhatIsNotSent(t *testing.T) {
	t.Parallel()
	first := obs(hub.StatusPending, false, 0, -1)
	first.ApplicantRef = "user-1"
	v, _, _ := hub.Apply(hub.Verification{}, false, first)
	second := obs(hub.StatusApproved, true, 1, -1) // no applicant echoed
	v, _, _ = hub.Apply(v, true, second)
	if v.ApplicantRef != "user-1" {
		t.Errorf("applicant_ref = %q, want it kept", v.ApplicantRef)
	}
	if v.Reasons == nil {
		t.Error("reasons is nil; want an empty list so the JSON says []")
	}
}

func TestApplyTakesTheProviderRef(t *testing.T) {
	t.Parallel()
	first := obs(hub.StatusPending, false, 0, -1)
	first.ProviderRef = "applicant:a1"
	v, _, _ := hub.Apply(hub.Verification{}, false, first)
	v.ID = "ver_1"
	named := obs(hub.StatusPending, false, 1, -1) // the same state, under its own reference
	named.ProviderRef, named.FormerRef = "ver-1", "applicant:a1"
	next, outcome, changed := hub.Apply(v, true, named)
	if outcome != hub.OutcomeApplied || !changed || next.ProviderRef != "ver-1" || next.ID != "ver_1" || next.Version != 2 {
		t.Errorf("naming: %s changed %v, %s %s v%d; want applied, changed, ver_1 ver-1 v2",
			outcome, changed, next.ID, next.ProviderRef, next.Version)
	}
}

// FuzzUpdatedEvent holds the verification.updated event's data, which
// UpdatedEvent writes by hand, to what json.Marshal writes, byte for byte:
// strings that need escaping or are not UTF-8, reasons nil or empty, attempts
// left or not, times zero, far off or in other zones, a poll state.
func FuzzUpdatedEvent(f *testing.F) {
	f.Add("ver_1", "src", "idenfy", "scan-1", "user-42", "kyc", "", "approved", "review", "EV", "a<b>&\"c\\", "\xff\u2028",
		true, 3, 2, true, false, t0.Unix(), int64(123456789), int64(0), 0, false)
	f.Add("", "", "", "", "", "", "", "", "", "", "", "", false, 0, 0, true, true, int64(0), int64(0), int64(-1), 5*3600+1800, false)
	f.Add("v", "s", "p", "r", "a", "k", "l", "s", "", "", "", "", false, 1, 1, true, false, t0.Unix(), int64(0), int64(0), 0, true)
	f.Add("v", "s", "p", "r", "", "k", "l", "s", "", "\x00\t\n", "", "", false, -7, -1, true, false,
		int64(-62135596801), int64(999999999), int64(253402300800), -23*3600, false)
	f.Fuzz(func(t *testing.T, id, source, provider, ref, applicant, kind, level, status, prev, event, r1, r2 string,
		final bool, version, attempts int, hasAttempts, nilReasons bool, created, nanos, providerTime int64, offset int, poll bool) {
		zone := time.FixedZone("z", offset%(30*3600))
		v := hub.Verification{
			ID: id, Source: source, Provider: provider, ProviderRef: ref, ApplicantRef: applicant,
			Kind: hub.Kind(kind), Level: level, Status: hub.Status(status), Final: final, Version: version,
			Reasons: []string{r1, r2}, CreatedAt: time.Unix(created, nanos).In(zone), UpdatedAt: time.Unix(created, 0).UTC(),
		}
		if nilReasons {
			v.Reasons = nil
		}
		if hasAttempts {
			v.AttemptsLeft = &attempts
		}
		if providerTime != -1 {
			v.ProviderTime = time.Unix(providerTime, nanos).In(zone)
		}
		if poll {
			v.Poll = &hub.PollState{Polls: attempts, LastError: r1}
		}
		e := hub.UpdatedEvent("evt_1", v, hub.Status(prev), hub.Observation{ProviderEvent: event})
		want, err := json.Marshal(hub.VerificationUpdated{Verification: v, PreviousStatus: hub.Status(prev), ProviderEvent: event})
		if err != nil {
			want = nil
		}
		if !bytes.Equal(e.Data, want) {
			t.Fatalf("data\n%s\njson.Marshal\n%s", e.Data, want)
		}
	})
}
