package reconcile_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/ingest"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/fractal"
	"github.com/verihook/verihook/internal/provider/idenfy"
	"github.com/verihook/verihook/internal/provider/identomat"
	"github.com/verihook/verihook/internal/provider/kycaid"
	"github.com/verihook/verihook/internal/reconcile"
	"github.com/verihook/verihook/internal/store/sqlite/sqlitetest"
)

const secret = "s3cret"

// env is a real store, the ingest service, a provider emulator on loopback
// and a worker pointed at it.
type env struct {
	st  hub.Store
	svc *ingest.Service
	w   *reconcile.Worker
	// state is what the emulated provider answers, by reference.
	mu    sync.Mutex
	state map[string]hub.Observation
	// hook, when set, runs inside the emulator before it answers.
	hook  func()
	calls atomic.Int32
}

func newEnv(t *testing.T, prov string) *env {
	t.Helper()
	ctx := context.Background()
	st := sqlitetest.Open(t)
	secrets := map[string]string{"api_token": secret, "signing_key": secret, "api_key": "k", "api_secret": secret,
		"callback_api_key": secret, "company_key": secret, "webhook_secret": secret}
	for _, id := range []string{"kycaid-main", "idenfy-main", "identomat-main", "fractal-main"} {
		p, _, _ := strings.Cut(id, "-")
		if err := st.UpsertSource(ctx, hub.Source{ID: id, Provider: p, Secrets: secrets}); err != nil {
			t.Fatal(err)
		}
	}
	reg := provider.NewRegistry(kycaid.New(), idenfy.New(), identomat.New(), fractal.New())
	e := &env{st: st, state: map[string]hub.Observation{}}
	mux := http.NewServeMux()
	pattern, h := reg[prov].(provider.Poller).EmulateStatus(secrets, func(ref string) (hub.Observation, bool) {
		e.mu.Lock()
		defer e.mu.Unlock()
		o, ok := e.state[ref]
		return o, ok
	})
	mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		if e.hook != nil {
			e.hook()
		}
		h.ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.svc = &ingest.Service{Store: st, Providers: reg}
	e.w = &reconcile.Worker{
		Store: st, Providers: reg, Client: srv.Client(),
		Record: func(ctx context.Context, src hub.Source, v hub.Verification, parsed hub.Parsed, sentAt time.Time) (bool, error) {
			res, err := e.svc.RecordPoll(ctx, src, v, parsed, sentAt)
			return len(res.Events) > 0, err
		},
		Sources: map[string]reconcile.Settings{prov + "-main": {APIURL: srv.URL, Gap: time.Millisecond}},
	}
	return e
}

// set makes the emulated provider answer o for ref.
func (e *env) set(ref string, o hub.Observation) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.state[ref] = o
}

// receive sends a signed callback of prov's event to the ingest service,
// as received at when.
func (e *env) receive(t *testing.T, source, event string, f provider.Fields, when time.Time) {
	t.Helper()
	p := e.svc.Providers[strings.SplitN(source, "-", 2)[0]]
	body, h, err := p.Build(event, f)
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = http.Header{}
	}
	src, _ := e.st.Source(context.Background(), source)
	if body, err = p.Sign(src.Secrets, h, body); err != nil {
		t.Fatal(err)
	}
	e.svc.Now = func() time.Time { return when }
	defer func() { e.svc.Now = nil }()
	if _, err := e.svc.Receive(context.Background(), hub.Callback{SourceID: source, Header: h, Body: body}); err != nil {
		t.Fatalf("Receive(%s) = %v", event, err)
	}
}

func (e *env) verification(t *testing.T, source, ref string) hub.Verification {
	t.Helper()
	vs, _, err := e.st.Verifications(context.Background(), hub.VerificationFilter{Source: source, ProviderRef: ref})
	if err != nil || len(vs) != 1 {
		t.Fatalf("Verifications(%s) = %d, %v", ref, len(vs), err)
	}
	v, err := e.st.Verification(context.Background(), vs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A verification left pending for two days, whose final callback was lost,
// is polled and recovered: the answer is applied with origin poll and makes
// the same verification.updated event; once final it is not polled again.
func TestRecoversMissedCallback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "kycaid")
	twoDaysAgo := time.Now().Add(-48 * time.Hour)
	e.receive(t, "kycaid-main", kycaid.EventVerificationStatusChanged, provider.Fields{Ref: "ver-1", Status: "pending", ApplicantRef: "user-1"}, twoDaysAgo)
	e.receive(t, "kycaid-main", kycaid.EventVerificationStatusChanged, provider.Fields{Ref: "ver-fresh", Status: "pending"}, time.Now())
	// The provider decided; its VERIFICATION_COMPLETED never arrived.
	e.set("ver-1", hub.Observation{Status: hub.StatusRejected, Final: true, Reasons: []string{"Document expired"}, AttemptsLeft: ptr(0)})
	e.set("ver-fresh", hub.Observation{Status: hub.StatusApproved, Final: true})

	e.w.Round(context.Background())

	v := e.verification(t, "kycaid-main", "ver-1")
	if v.Status != hub.StatusRejected || !v.Final || v.Version != 2 {
		t.Fatalf("after reconciliation: %s final=%v v%d; want rejected, final, v2", v.Status, v.Final, v.Version)
	}
	last := v.Timeline[len(v.Timeline)-1]
	if last.Origin != hub.OriginPoll || last.Outcome != hub.OutcomeApplied || last.ProviderEvent != kycaid.VerificationAPI {
		t.Errorf("last timeline entry = %+v; want an applied poll", last)
	}
	if len(v.Reasons) != 1 || v.Reasons[0] != "Document expired" {
		t.Errorf("reasons = %v", v.Reasons)
	}
	if v.Poll == nil || v.Poll.Polls != 1 || v.Poll.LastError != "" {
		t.Errorf("poll state = %+v; want one poll, no error", v.Poll)
	}
	evs, _, _ := e.st.Events(context.Background(), hub.EventFilter{VerificationID: v.ID, Type: hub.EventVerificationUpdated})
	if len(evs) != 2 || !strings.Contains(string(evs[0].Data), `"previous_status":"pending"`) {
		t.Errorf("events = %d; want 2 verification.updated, the newest from pending", len(evs))
	}
	if fresh := e.verification(t, "kycaid-main", "ver-fresh"); fresh.Status != hub.StatusPending || fresh.Poll != nil {
		t.Errorf("a verification changed within the deadline was polled: %s, %+v", fresh.Status, fresh.Poll)
	}

	calls := e.calls.Load()
	e.w.Round(context.Background())
	if e.calls.Load() != calls {
		t.Errorf("a final verification was polled again")
	}
}

// A callback that arrives while a poll is under way is not overwritten by
// the poll's older answer.
func TestAnswerNeverReplacesNewerCallback(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "idenfy")
	e.receive(t, "idenfy-main", idenfy.EventAutoFinished, provider.Fields{Ref: "scan-1", Final: ptr(false)}, time.Now().Add(-48*time.Hour))
	e.set("scan-1", hub.Observation{Status: hub.StatusReview})
	// While the status API is asked, the manual decision arrives.
	e.hook = func() {
		e.hook = nil
		e.receive(t, "idenfy-main", idenfy.EventManualFinished, provider.Fields{Ref: "scan-1", Status: "DENIED"}, time.Now())
	}
	res, err := e.w.Source(context.Background(), "idenfy-main", false)
	if err != nil || len(res) != 1 || res[0].Error != "" || res[0].Changed {
		t.Fatalf("Source = %+v, %v; want one poll that changed nothing", res, err)
	}
	v := e.verification(t, "idenfy-main", "scan-1")
	if v.Status != hub.StatusRejected {
		t.Errorf("status = %s; the older answer replaced the newer callback", v.Status)
	}
	last := v.Timeline[len(v.Timeline)-1]
	if last.Origin != hub.OriginPoll || last.Outcome != hub.OutcomeSuperseded {
		t.Errorf("last timeline entry = %s %s; want a superseded poll", last.Origin, last.Outcome)
	}
}

// A verification that never finishes is polled with growing waits, then
// given up after the source's limit; a refresh by hand still asks.
func TestGivesUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "identomat")
	s := e.w.Sources["identomat-main"]
	s.MaxPolls = 2
	e.w.Sources["identomat-main"] = s
	e.receive(t, "identomat-main", identomat.EventSessionChange, provider.Fields{Ref: "sess-1", Status: "MANUAL_CHECK"}, time.Now().Add(-48*time.Hour))
	e.set("sess-1", hub.Observation{Status: hub.StatusReview})

	e.w.Round(context.Background())
	v := e.verification(t, "identomat-main", "sess-1")
	if v.Poll == nil || v.Poll.Polls != 1 || !v.Poll.GaveUpAt.IsZero() || v.Poll.NextPollAt.Sub(v.Poll.LastPolledAt) != time.Hour {
		t.Fatalf("after one poll: %+v; want next poll an hour later", v.Poll)
	}
	e.w.Round(context.Background()) // not due
	if n := e.calls.Load(); n != 1 {
		t.Fatalf("%d calls; a verification not due was polled", n)
	}
	res, _ := e.w.Source(context.Background(), "identomat-main", false) // on demand: due or not
	if len(res) != 1 || !res[0].GaveUp {
		t.Fatalf("Source = %+v; want the second poll to give up", res)
	}
	v = e.verification(t, "identomat-main", "sess-1")
	if v.Poll.Polls != 2 || v.Poll.GaveUpAt.IsZero() || v.Poll.NextPollAt.Sub(v.Poll.LastPolledAt) != 2*time.Hour {
		t.Errorf("after two polls: %+v; want given up, the wait doubled", v.Poll)
	}
	if len(v.Timeline) != 2 || v.Version != 1 {
		t.Errorf("timeline has %d entries, v%d; want the callback and one poll, v1: the same answer about the same state is a duplicate",
			len(v.Timeline), v.Version)
	}
	if res, _ := e.w.Source(context.Background(), "identomat-main", true); len(res) != 0 {
		t.Errorf("a verification given up was polled: %+v", res)
	}
	if _, err := e.w.Refresh(context.Background(), v.ID); err != nil {
		t.Errorf("Refresh of a verification given up = %v", err)
	}
	if n := e.calls.Load(); n != 3 {
		t.Errorf("%d calls, want 3", n)
	}
}

// A rate limit pauses the source for the provider's Retry-After: the worker
// does not ask again, and a refresh is refused with when to try again.
func TestRateLimitPausesSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "kycaid")
	e.receive(t, "kycaid-main", kycaid.EventVerificationStatusChanged, provider.Fields{Ref: "ver-1"}, time.Now().Add(-48*time.Hour))
	e.receive(t, "kycaid-main", kycaid.EventVerificationStatusChanged, provider.Fields{Ref: "ver-2"}, time.Now().Add(-47*time.Hour))
	mux := http.NewServeMux()
	var calls atomic.Int32
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Retry-After", "120")
		http.Error(w, `{"message":"Too many requests"}`, http.StatusTooManyRequests)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.w.Sources["kycaid-main"] = reconcile.Settings{APIURL: srv.URL, Gap: time.Millisecond}

	for range 3 {
		e.w.Round(context.Background())
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the API was called %d times after a 429; want once", n)
	}
	v := e.verification(t, "kycaid-main", "ver-1")
	if v.Poll == nil || !strings.Contains(v.Poll.LastError, "429") || v.Poll.NextPollAt.Sub(v.Poll.LastPolledAt) < 120*time.Second {
		t.Errorf("poll state = %+v; want the 429 and the next poll after Retry-After", v.Poll)
	}
	if v2 := e.verification(t, "kycaid-main", "ver-2"); v2.Poll == nil || v2.Poll.Polls != 0 || v2.Poll.NextPollAt.After(time.Now()) {
		t.Errorf("the verification not polled = %+v; want it given back, due", v2.Poll)
	}
	_, err := e.w.Refresh(context.Background(), v.ID)
	if hub.ErrorCode(err) != hub.EUNAVAILABLE || !strings.Contains(hub.ErrorMessage(err), "again in") {
		t.Errorf("Refresh during the pause = %v; want EUNAVAILABLE saying when", err)
	}
}

// Fractal cannot be polled, and a source without API credentials neither:
// both say so.
func TestCannotPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "kycaid")
	e.receive(t, "fractal-main", "verification_contacted", provider.Fields{Ref: "user-1", Level: "basic"}, time.Now().Add(-48*time.Hour))
	v := e.verification(t, "fractal-main", "user-1")
	_, err := e.w.Refresh(context.Background(), v.ID)
	if hub.ErrorCode(err) != hub.EINVALID || !strings.Contains(hub.ErrorMessage(err), "OAuth") {
		t.Errorf("Refresh(fractal) = %v; want EINVALID naming the OAuth token", err)
	}
	if err := e.st.UpsertSource(context.Background(), hub.Source{ID: "kycaid-main", Provider: "kycaid", Secrets: map[string]string{"webhook": "x"}}); err != nil {
		t.Fatal(err)
	}
	_, err = e.w.Source(context.Background(), "kycaid-main", false)
	if hub.ErrorCode(err) != hub.EINVALID || !strings.Contains(hub.ErrorMessage(err), "api_token") {
		t.Errorf("Source without credentials = %v; want EINVALID naming api_token", err)
	}
}

func ptr[T any](v T) *T { return &v }
