package storetest

import (
	"testing"

	"github.com/verihook/verihook/internal/hub"
)

// RunShared runs the suite's race tests against several stores that share
// one database, as verihook instances behind a load balancer do (the
// PostgreSQL store): the same webhook delivered to different instances at
// once, observations of one verification split between them, and their
// workers claiming from one outbox and sampling it. open is called once per subtest,
// possibly from parallel subtests, and must return two or more stores, each
// with its own connections, on one fresh, empty database; RunShared closes
// them when the subtest ends. The assertions are those of Run's tests of
// the same names.
func RunShared(t *testing.T, open func(t *testing.T) []hub.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, stores []hub.Store)
	}{
		{"DedupRace", func(t *testing.T, stores []hub.Store) { dedupRace(t, stores, hub.Dedup{}) }},
		{"DedupRaceWhileCurrent", func(t *testing.T, stores []hub.Store) { dedupRace(t, stores, hub.Dedup{WhileCurrent: true}) }},
		{"DedupRaceWindow", func(t *testing.T, stores []hub.Store) { dedupRace(t, stores, hub.Dedup{Window: raceWindow}) }},
		{"OrderingRace", orderingRace},
		{"ConcurrentIngest", concurrentIngest},
		{"ClaimRace", claimRace},
		{"DispatchClaimRace", dispatchClaimRace},
		{"SampleQueue", sampleQueue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stores := open(t)
			if len(stores) < 2 {
				t.Fatalf("open returned %d stores, want 2 or more sharing one database", len(stores))
			}
			for _, s := range stores {
				t.Cleanup(func() { s.Close() })
			}
			tc.fn(t, stores)
		})
	}
}
