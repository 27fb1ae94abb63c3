package reconcile_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/kycaid"
	"github.com/verihook/verihook/internal/reconcile"
)

// pollStore is the part of a store the pacing test needs: three stuck
// verifications of one source.
type pollStore struct {
	hub.Store // the rest is not called
	mu        sync.Mutex
	states    map[string]hub.PollState
}

var paced = hub.Source{ID: "kycaid-main", Provider: "kycaid", Secrets: map[string]string{"api_token": "t"}}

func (s *pollStore) Source(context.Context, string) (hub.Source, error) { return paced, nil }
func (s *pollStore) Verification(_ context.Context, id string) (hub.Verification, error) {
	return hub.Verification{ID: id, Source: paced.ID, ProviderRef: id}, nil
}
func (s *pollStore) Sources(context.Context) ([]hub.Source, error) { return []hub.Source{paced}, nil }
func (s *pollStore) ClaimPolls(_ context.Context, c hub.PollClaim) ([]hub.Verification, error) {
	var out []hub.Verification
	for _, id := range []string{"ver_1", "ver_2", "ver_3"} {
		out = append(out, hub.Verification{ID: id, Source: paced.ID, ProviderRef: id})
	}
	return out[:min(c.Limit, len(out))], nil
}
func (s *pollStore) RecordPoll(_ context.Context, id string, p hub.PollState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[id] = p
	return nil
}

// timedPoller answers pending, or fails, and notes when it was asked.
type timedPoller struct {
	kycaid.Provider
	mu   sync.Mutex
	at   []time.Time
	fail bool
}

func (p *timedPoller) Poll(_ context.Context, r provider.PollRequest) (hub.Parsed, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.at = append(p.at, time.Now())
	if p.fail {
		return hub.Parsed{}, &provider.APIError{Code: hub.EUNAVAILABLE, StatusCode: 503}
	}
	return hub.Parsed{Observations: []hub.Observation{{VerificationKey: hub.VerificationKey{ProviderRef: r.Verification.ProviderRef}, Status: hub.StatusPending}}}, nil
}

// Polls of one source are a gap apart, and an API error pauses the source:
// timed on a fake clock (testing/synctest), without sleeping.
func TestPollsArePaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &timedPoller{}
		st := &pollStore{states: map[string]hub.PollState{}}
		w := &reconcile.Worker{
			Store: st, Providers: provider.Registry{"kycaid": p},
			Record: func(context.Context, hub.Source, hub.Verification, hub.Parsed, time.Time) (bool, error) {
				return false, nil
			},
			Sources: map[string]reconcile.Settings{paced.ID: {Gap: time.Minute}},
			Tick:    5 * time.Minute,
		}
		start := time.Now()
		res, err := w.Source(context.Background(), paced.ID, false)
		if err != nil || len(res) != 3 {
			t.Fatalf("Source = %d results, %v", len(res), err)
		}
		for i, at := range p.at {
			if got := at.Sub(start); got != time.Duration(i)*time.Minute {
				t.Errorf("poll %d at +%s, want +%dm", i, got, i)
			}
		}
		if s := st.states["ver_1"]; s.Polls != 1 || s.NextPollAt.Sub(s.LastPolledAt) != time.Hour {
			t.Errorf("poll state = %+v, want the next poll an hour later", s)
		}

		// An error pauses the source: the next polls wait a minute, then
		// two, then four (longer than a tick: the rest is given back).
		time.Sleep(time.Minute) // the fake clock: the gap after the last poll
		p.fail, p.at = true, nil
		start = time.Now()
		res, _ = w.Source(context.Background(), paced.ID, false)
		if len(res) != 3 {
			t.Fatalf("%d polls, want 3 (a minute, then two minutes apart)", len(res))
		}
		if got := []time.Duration{p.at[1].Sub(start), p.at[2].Sub(start)}; got[0] != time.Minute || got[1] != 3*time.Minute {
			t.Errorf("polls after errors at %v, want +1m and +3m", got)
		}
		_, err = w.Refresh(context.Background(), "ver_1")
		if hub.ErrorCode(err) != hub.EUNAVAILABLE {
			t.Errorf("Refresh during the pause = %v, want EUNAVAILABLE", err)
		}
	})
}
