package hub

import (
	"testing"
	"time"
)

// A dated observation (a poll's answer, a reprocessed callback) never
// replaces a state that changed after its date; a callback is not dated.
func TestApplyDated(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	cur := Verification{ID: "ver_1", Status: StatusReview, Version: 2, UpdatedAt: t0.Add(time.Minute)}
	tests := []struct {
		name     string
		origin   string
		received time.Time
		want     Outcome
	}{
		{"poll sent before the last change", OriginPoll, t0, OutcomeSuperseded},
		{"reprocessed, received before the last change", OriginReprocess, t0, OutcomeSuperseded},
		{"poll sent after the last change", OriginPoll, t0.Add(2 * time.Minute), OutcomeApplied},
		{"callback, whatever its time", OriginCallback, t0, OutcomeApplied},
		{"no origin is a callback", "", t0, OutcomeApplied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := Observation{Status: StatusApproved, Final: true, Origin: tc.origin, ReceivedAt: tc.received}
			next, outcome, changed := Apply(cur, true, obs)
			if outcome != tc.want || changed != (tc.want == OutcomeApplied) {
				t.Errorf("Apply = %s, changed %v; want %s", outcome, changed, tc.want)
			}
			if tc.want == OutcomeSuperseded && next.Status != cur.Status {
				t.Errorf("superseded, yet status became %s", next.Status)
			}
		})
	}
}
