package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/idenfy"
	"github.com/verihook/verihook/internal/provider/identomat"
	"github.com/verihook/verihook/internal/provider/kycaid"
)

// A journey is what one provider sends about one applicant: its webhooks,
// and the final status each verification must end at.
type journey struct {
	// inOrder: each webhook is sent once the one before is acknowledged
	// (Identomat and KYCAID, whose payloads carry nothing that orders
	// them). Otherwise every webhook goes at its delay, in any order.
	inOrder bool
	steps   []step
	want    map[hub.VerificationKey]hub.Status
}

// step is one webhook of a journey.
type step struct {
	p     payload
	delay time.Duration // out of order: sent this long after the journey starts
	dups  int           // sent again this many times once acknowledged: a duplicate
}

// planJourneys draws journeys, round the four providers, until they hold
// at least n webhooks.
func planJourneys(rnd *mrand.Rand, runID string, n int) ([]journey, error) {
	var out []journey
	sent := 0
	for i := 0; sent < n; i++ {
		ref := fmt.Sprintf("fault-%s-%06d", runID, i)
		var j journey
		var err error
		switch i % 4 {
		case 0:
			j, err = planIdentomat(rnd, ref)
		case 1:
			j, err = planIdenfy(rnd, ref)
		case 2:
			j, err = planKYCAID(rnd, ref)
		case 3:
			j, err = planFractal(rnd, ref)
		}
		if err != nil {
			return nil, err
		}
		for _, s := range j.steps {
			sent += 1 + s.dups
		}
		out = append(out, j)
	}
	return out, nil
}

// build builds and signs one webhook of source number src.
func build(src int, event string, f provider.Fields) (payload, error) {
	s := benchSources[src]
	body, h, err := s.Provider.Build(event, f)
	if err != nil {
		return payload{}, fmt.Errorf("build %s %s: %w", s.Provider.Name(), event, err)
	}
	if body, err = s.Provider.Sign(s.Secrets, h, body); err != nil {
		return payload{}, fmt.Errorf("sign %s %s: %w", s.Provider.Name(), event, err)
	}
	return payload{source: s.ID, ref: f.Ref, body: body, header: h}, nil
}

// dups draws how often a webhook is sent again: one in five, once.
func dups(rnd *mrand.Rand) int {
	if rnd.IntN(5) == 0 {
		return 1
	}
	return 0
}

// planIdentomat: maybe an OTP request, then session-change MANUAL_CHECK,
// sometimes ADDITIONAL_INFORMATION_REQUESTED and MANUAL_CHECK again, then
// APPROVED or REJECTED, sometimes reopened for review and decided again.
// In order; a duplicate follows its original at once, while it is current.
func planIdentomat(rnd *mrand.Rand, ref string) (journey, error) {
	statuses := []string{"MANUAL_CHECK"}
	if rnd.IntN(3) == 0 {
		statuses = append(statuses, "ADDITIONAL_INFORMATION_REQUESTED", "MANUAL_CHECK")
	}
	decide := func() string { return []string{"APPROVED", "REJECTED"}[rnd.IntN(2)] }
	statuses = append(statuses, decide())
	if rnd.IntN(10) == 0 {
		statuses = append(statuses, "MANUAL_CHECK", decide())
	}
	j := journey{inOrder: true}
	if rnd.IntN(2) == 0 {
		p, err := build(0, identomat.EventOTPRequest, provider.Fields{Ref: ref})
		if err != nil {
			return j, err
		}
		j.steps = append(j.steps, step{p: p, dups: dups(rnd)})
	}
	for _, st := range statuses {
		p, err := build(0, identomat.EventSessionChange, provider.Fields{Ref: ref, Status: st})
		if err != nil {
			return j, err
		}
		j.steps = append(j.steps, step{p: p, dups: dups(rnd)})
	}
	want := map[string]hub.Status{"APPROVED": hub.StatusApproved, "REJECTED": hub.StatusRejected, "MANUAL_CHECK": hub.StatusReview}
	j.want = map[hub.VerificationKey]hub.Status{{Source: benchSources[0].ID, ProviderRef: ref}: want[statuses[len(statuses)-1]]}
	return j, nil
}

// planKYCAID: pending (sometimes before the verification has an id),
// sometimes a rejection with an attempt left and pending again, then
// verified true or false with no attempt left. In order; every webhook has
// its own request_id.
func planKYCAID(rnd *mrand.Rand, ref string) (journey, error) {
	zero, one := 0, 1
	type s struct {
		event, status string
		left          *int
	}
	seq := []s{{kycaid.EventVerificationStatusChanged, "pending", nil}}
	// One in four starts before the verification exists (verification_id
	// null): kept against the applicant until the next webhook names it.
	nullFirst := rnd.IntN(4) == 0
	if rnd.IntN(3) == 0 {
		seq = append(seq, s{kycaid.EventVerificationCompleted, "false", &one}, s{kycaid.EventVerificationStatusChanged, "pending", nil})
	}
	last := []string{"true", "false"}[rnd.IntN(2)]
	seq = append(seq, s{kycaid.EventVerificationCompleted, last, &zero})
	j := journey{inOrder: true}
	for k, x := range seq {
		vref := ref
		if k == 0 && nullFirst {
			vref = "null"
		}
		p, err := build(2, x.event, provider.Fields{Ref: vref, ApplicantRef: "user-" + ref, Status: x.status,
			AttemptsLeft: x.left, EventID: fmt.Sprintf("req-%s-%d", ref, k)})
		if err != nil {
			return j, err
		}
		j.steps = append(j.steps, step{p: p, dups: dups(rnd)})
	}
	want := hub.StatusApproved
	if last == "false" {
		want = hub.StatusRejected
	}
	j.want = map[hub.VerificationKey]hub.Status{{Source: benchSources[2].ID, ProviderRef: ref}: want}
	return j, nil
}

// lateDelay draws when an out-of-order webhook is sent: within 2 s, or one
// in six late, 3 to 6 s after the journey starts.
func lateDelay(rnd *mrand.Rand) time.Duration {
	if rnd.IntN(6) == 0 {
		return 3*time.Second + time.Duration(rnd.Int64N(int64(3*time.Second)))
	}
	return time.Duration(rnd.Int64N(int64(2 * time.Second)))
}

// planIdenfy: a preliminary AUTO_FINISHED (final:false), a MANUAL_FINISHED
// decision a minute later by finishTime, and sometimes a second decision
// (a re-attempt) later still; sent in any order, some late. The decision
// with the newest finishTime is the true status.
func planIdenfy(rnd *mrand.Rand, ref string) (journey, error) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rnd.IntN(1e6)) * time.Second)
	no := false
	decisions := map[string]hub.Status{"APPROVED": hub.StatusApproved, "DENIED": hub.StatusRejected, "SUSPECTED": hub.StatusSuspected}
	names := []string{"APPROVED", "DENIED", "SUSPECTED"}
	type s struct {
		event, status string
		final         *bool
	}
	seq := []s{{idenfy.EventAutoFinished, "APPROVED", &no}, {idenfy.EventManualFinished, names[rnd.IntN(3)], nil}}
	if rnd.IntN(4) == 0 {
		seq = append(seq, s{idenfy.EventManualFinished, names[rnd.IntN(3)], nil})
	}
	j := journey{}
	for k, x := range seq {
		p, err := build(1, x.event, provider.Fields{Ref: ref, ApplicantRef: "user-" + ref, Status: x.status,
			Final: x.final, Time: t0.Add(time.Duration(k) * time.Minute)})
		if err != nil {
			return j, err
		}
		j.steps = append(j.steps, step{p: p, delay: lateDelay(rnd), dups: dups(rnd)})
	}
	j.want = map[hub.VerificationKey]hub.Status{{Source: benchSources[1].ID, ProviderRef: ref}: decisions[seq[len(seq)-1].status]}
	return j, nil
}

// planFractal: one or two levels, each with one to three of contacted,
// rejected and approved at rising timestamps; sent in any order, some late.
// Each level's newest is its true status.
func planFractal(rnd *mrand.Rand, ref string) (journey, error) {
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rnd.IntN(1e6)) * time.Second)
	events := map[string]hub.Status{"verification_contacted": hub.StatusActionRequired,
		"verification_rejected": hub.StatusRejected, "verification_approved": hub.StatusApproved}
	names := []string{"verification_contacted", "verification_rejected", "verification_approved"}
	levels := []string{"basic+liveness"}
	if rnd.IntN(2) == 0 {
		levels = append(levels, "plus+liveness")
	}
	j := journey{want: map[hub.VerificationKey]hub.Status{}}
	for _, level := range levels {
		var last string
		for k := range 1 + rnd.IntN(3) {
			last = names[rnd.IntN(3)]
			p, err := build(3, last, provider.Fields{Ref: ref, Level: level, Time: t0.Add(time.Duration(k) * time.Minute)})
			if err != nil {
				return j, err
			}
			j.steps = append(j.steps, step{p: p, delay: lateDelay(rnd), dups: dups(rnd)})
		}
		j.want[hub.VerificationKey{Source: benchSources[3].ID, ProviderRef: ref, Level: level}] = events[last]
	}
	return j, nil
}

// ack is verihook's answer to an accepted webhook.
type ack struct {
	Status    string `json:"status"`
	MessageID string `json:"message_id"`
	Duplicate bool   `json:"duplicate"`
}

// sender sends journeys at a fixed rate to random instances and retries
// each webhook, as a provider does, until it is acknowledged.
type sender struct {
	client *http.Client
	urls   []string
	every  time.Duration // between two webhooks

	mu           sync.Mutex
	rnd          *mrand.Rand
	next         time.Time
	acked        map[string]string // message id -> source
	sent         int               // webhooks (each duplicate counts)
	retries      int
	failures     map[string]int // why a try failed
	dupsSent     int            // duplicates sent on purpose
	dupsAnswered int            // of those, answered "duplicate": true
	dupsStored   []string       // deliberate duplicates stored as new messages
	refused      []string       // 4xx answers: a webhook verihook must take
	unacked      int            // webhooks never acknowledged
	incomplete   map[hub.VerificationKey]bool
}

func newSender(urls []string, rate float64, seed uint64) *sender {
	return &sender{
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}},
		urls:   urls, every: time.Duration(float64(time.Second) / rate),
		rnd:   mrand.New(mrand.NewPCG(seed, 0x5e4d)),
		acked: map[string]string{}, failures: map[string]int{}, incomplete: map[hub.VerificationKey]bool{},
	}
}

// run sends every journey, up to 256 at once; it returns when each is done
// or ctx ends.
func (s *sender) run(ctx context.Context, js []journey) {
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, j := range js {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if !s.journey(ctx, j) {
				s.mu.Lock()
				for k := range j.want {
					s.incomplete[k] = true
				}
				s.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// journey sends one journey; false if a webhook of it was never
// acknowledged.
func (s *sender) journey(ctx context.Context, j journey) bool {
	if j.inOrder {
		for _, st := range j.steps {
			if !s.step(ctx, st) {
				return false
			}
		}
		return true
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := true
	for _, st := range j.steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(st.delay):
			case <-ctx.Done():
			}
			if !s.step(ctx, st) {
				mu.Lock()
				ok = false
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok
}

// step sends one webhook, then its duplicates.
func (s *sender) step(ctx context.Context, st step) bool {
	first, ok := s.deliver(ctx, st.p)
	if !ok {
		return false
	}
	for range st.dups {
		a, ok := s.deliver(ctx, st.p)
		if !ok {
			return false
		}
		s.mu.Lock()
		s.dupsSent++
		if a.Duplicate {
			s.dupsAnswered++
		}
		if a.MessageID != first.MessageID {
			s.dupsStored = append(s.dupsStored, fmt.Sprintf("%s %s: %s then %s", st.p.source, st.p.ref, first.MessageID, a.MessageID))
		}
		s.mu.Unlock()
	}
	return true
}

// pace waits for the webhook's turn at the fixed rate.
func (s *sender) pace(ctx context.Context) {
	s.mu.Lock()
	now := time.Now()
	if s.next.Before(now) {
		s.next = now
	}
	at := s.next
	s.next = s.next.Add(s.every)
	s.sent++
	s.mu.Unlock()
	select {
	case <-time.After(time.Until(at)):
	case <-ctx.Done():
	}
}

// deliver POSTs p to a random instance until one acknowledges it with
// 200; a refusal (4xx other than 429) ends the tries.
func (s *sender) deliver(ctx context.Context, p payload) (ack, bool) {
	s.pace(ctx)
	for try := 0; ; try++ {
		if ctx.Err() != nil {
			s.mu.Lock()
			s.unacked++
			s.mu.Unlock()
			return ack{}, false
		}
		s.mu.Lock()
		url := s.urls[s.rnd.IntN(len(s.urls))] + "/ingest/" + p.source
		if try > 0 {
			s.retries++
		}
		s.mu.Unlock()
		a, status, err := s.post(ctx, url, p)
		if err == nil && status == http.StatusOK {
			s.mu.Lock()
			s.acked[a.MessageID] = p.source
			s.mu.Unlock()
			return a, true
		}
		why := fmt.Sprint(status)
		if err != nil {
			why = errorKind(err)
		}
		s.mu.Lock()
		s.failures[why]++
		if status == http.StatusOK || (status >= 400 && status < 500 && status != http.StatusTooManyRequests) {
			s.refused = append(s.refused, fmt.Sprintf("%s %s: %d", p.source, p.ref, status))
			s.mu.Unlock()
			return ack{}, false
		}
		s.mu.Unlock()
		select {
		case <-time.After(time.Duration(min(try+1, 10)) * 100 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

func (s *sender) post(ctx context.Context, url string, p payload) (ack, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(p.body))
	if err != nil {
		return ack{}, 0, err
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return ack{}, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return ack{}, 0, err
	}
	var a ack
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &a); err != nil || a.MessageID == "" || a.Status != "accepted" {
			return ack{}, resp.StatusCode, fmt.Errorf("not accepted: %s", tail(string(raw), 200))
		}
	}
	return a, resp.StatusCode, nil
}

// errorKind names a failed request's error for the report.
func errorKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		for _, k := range []string{"connection refused", "connection reset", "EOF", "not accepted"} {
			if strings.Contains(err.Error(), k) {
				return k
			}
		}
		return "other"
	}
}
