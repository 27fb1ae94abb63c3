package main

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	mrand "math/rand/v2"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// TestFaultJourneysReachTheirStatus plays the fault campaign's journeys,
// without faults, to verihook served in process: each verification ends at
// the status the campaign expects of it, and each duplicate is answered as
// one. The campaign's verdicts rest on these expectations.
func TestFaultJourneysReachTheirStatus(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop, err := serveInProcess(ctx, ln, serverOpts{dataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	js, err := planJourneys(mrand.New(mrand.NewPCG(1, 2)), "test", 300)
	if err != nil {
		t.Fatal(err)
	}
	// Every out-of-order webhook at once, in whatever order the goroutines
	// run: no waiting in a test.
	for i := range js {
		for k := range js[i].steps {
			js[i].steps[k].delay = 0
		}
	}
	s := newSender([]string{"http://" + ln.Addr().String()}, 1e6, 3)
	s.run(ctx, js)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s.unacked != 0 || len(s.refused) != 0 || len(s.incomplete) != 0 {
		t.Fatalf("unacknowledged %d, refused %v, incomplete %d", s.unacked, s.refused, len(s.incomplete))
	}
	if s.dupsSent == 0 || s.dupsAnswered != s.dupsSent || len(s.dupsStored) != 0 {
		t.Errorf("duplicates sent %d, answered as such %d, stored anew %v", s.dupsSent, s.dupsAnswered, s.dupsStored)
	}

	key, err := ensureKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cipherFor(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "verihook.db"), c)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	vs, _, err := st.Verifications(ctx, hub.VerificationFilter{Page: hub.Page{Limit: 500}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[hub.VerificationKey]hub.Status{}
	for _, v := range vs {
		got[hub.VerificationKey{Source: v.Source, ProviderRef: v.ProviderRef, Level: v.Level}] = v.Status
	}
	n := 0
	for _, j := range js {
		for k, want := range j.want {
			n++
			if got[k] != want {
				t.Errorf("%s %s %s: %q, want %q", k.Source, k.ProviderRef, k.Level, got[k], want)
			}
		}
	}
	if n < 50 || len(vs) != n {
		t.Errorf("%d verifications stored, %d expected; want the same, at least 50", len(vs), n)
	}
}
