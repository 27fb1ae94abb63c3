package hub_test

import (
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// BenchmarkApply measures the ordering rules, which every observation of
// every ingested message goes through inside the store's write transaction.
func BenchmarkApply(b *testing.B) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	attempts := 2
	newObs := func(status hub.Status, final bool, received, provider time.Duration) hub.Observation {
		return hub.Observation{
			VerificationKey: hub.VerificationKey{Source: "idenfy-main", ProviderRef: "scan-1"},
			Provider:        "idenfy", Kind: hub.KindKYC, ApplicantRef: "user-42",
			Status: status, Final: final, Reasons: []string{"FACE_MISMATCH"}, AttemptsLeft: &attempts,
			ProviderTime: at.Add(provider), ProviderEvent: "IDENTIFICATION_MANUAL_FINISHED",
			ReceivedAt: at.Add(received),
		}
	}
	first := newObs(hub.StatusReview, false, 0, 0)
	cur, _, _ := hub.Apply(hub.Verification{}, false, first)
	cur.ID = "ver_1"
	final, _, _ := hub.Apply(cur, true, newObs(hub.StatusApproved, true, time.Minute, time.Minute))
	for _, bc := range []struct {
		name   string
		cur    hub.Verification
		exists bool
		obs    hub.Observation
		want   hub.Outcome
	}{
		{"new verification", hub.Verification{}, false, first, hub.OutcomeApplied},
		{"applied change", cur, true, newObs(hub.StatusApproved, true, time.Minute, time.Minute), hub.OutcomeApplied},
		{"applied no change", cur, true, newObs(hub.StatusReview, false, time.Minute, time.Minute), hub.OutcomeApplied},
		{"superseded older", final, true, newObs(hub.StatusRejected, true, 2*time.Minute, -time.Minute), hub.OutcomeSuperseded},
		{"superseded preliminary", final, true, newObs(hub.StatusReview, false, 2*time.Minute, time.Minute), hub.OutcomeSuperseded},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, outcome, _ := hub.Apply(bc.cur, bc.exists, bc.obs); outcome != bc.want {
					b.Fatalf("outcome %s, want %s", outcome, bc.want)
				}
			}
		})
	}
}

// BenchmarkUpdatedEvent measures building (and JSON encoding) the
// verification.updated event that every applied change emits.
func BenchmarkUpdatedEvent(b *testing.B) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	o := hub.Observation{
		VerificationKey: hub.VerificationKey{Source: "idenfy-main", ProviderRef: "scan-1"},
		Provider:        "idenfy", Kind: hub.KindKYC, ApplicantRef: "user-42",
		Status: hub.StatusApproved, Final: true, ProviderTime: at, ProviderEvent: "IDENTIFICATION_MANUAL_FINISHED",
		ReceivedAt: at, MessageID: "msg_1",
	}
	v, _, _ := hub.Apply(hub.Verification{}, false, o)
	v.ID = "ver_1"
	b.ReportAllocs()
	for b.Loop() {
		if e := hub.UpdatedEvent("evt_1", v, hub.StatusReview, o); len(e.Data) == 0 {
			b.Fatal("no data")
		}
	}
}

// BenchmarkPlanIngest measures what every ingest runs in the store's write
// transaction besides the SQL: a message of one observation that changes its
// stored verification, planned with two endpoints that want its event.
func BenchmarkPlanIngest(b *testing.B) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	o := hub.Observation{
		VerificationKey: hub.VerificationKey{Source: "idenfy-main", ProviderRef: "scan-1"},
		Provider:        "idenfy", Kind: hub.KindKYC, ApplicantRef: "user-42",
		Status: hub.StatusApproved, Final: true, ProviderTime: at.Add(time.Minute), ProviderEvent: "IDENTIFICATION_MANUAL_FINISHED",
		ReceivedAt: at.Add(time.Minute), MessageID: "msg_1",
	}
	pending := o
	pending.Status, pending.Final, pending.ProviderTime, pending.ReceivedAt = hub.StatusReview, false, at, at
	in := hub.Ingest{
		Message:      hub.Message{ID: "msg_1", SourceID: "idenfy-main", ReceivedAt: o.ReceivedAt},
		Observations: []hub.Observation{o},
	}
	st := hub.IngestState{
		Stored:    []hub.Verification{hub.NewVerification("ver_1", pending)},
		Endpoints: []hub.Endpoint{{ID: "ep_1", Enabled: true}, {ID: "ep_2", Enabled: true, EventTypes: []string{"verification.*"}}},
	}
	b.ReportAllocs()
	for b.Loop() {
		if p := hub.PlanIngest(at, in, st); len(p.Update) != 1 || len(p.Deliveries) != 2 {
			b.Fatalf("%d updates, %d deliveries; want 1 and 2", len(p.Update), len(p.Deliveries))
		}
	}
}
