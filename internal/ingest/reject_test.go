package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/httpapi"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/ingest"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/provider/fractal"
	"github.com/verihook/verihook/internal/provider/idenfy"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// harness is the ingest path as verihook serves it: a SQLite store, the
// service with a clock the test moves, and the HTTP API on a real listener.
type harness struct {
	store *sqlite.Store
	svc   *ingest.Service
	url   string
	log   *lockedBuffer
	now   atomic.Int64 // the service's clock, Unix nanoseconds
}

func newHarness(t *testing.T, budget int, maxBody, maxInflight int64) *harness {
	t.Helper()
	ctx := context.Background()
	c, err := hub.NewCipher(bytes.Repeat([]byte{7}, hub.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "verihook.db"), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, src := range []hub.Source{
		{ID: "idenfy-main", Provider: "idenfy", Secrets: map[string]string{"signing_key": "k"}},
		{ID: "fractal-main", Provider: "fractal", Secrets: map[string]string{"webhook_secrets.verification_approved": "k"}},
	} {
		if err := st.UpsertSource(ctx, src); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{store: st, log: &lockedBuffer{}}
	h.now.Store(time.Date(2026, 11, 29, 12, 0, 10, 0, time.UTC).UnixNano())
	logger := slog.New(slog.NewTextHandler(h.log, nil))
	h.svc = &ingest.Service{Store: st, Providers: provider.NewRegistry(idenfy.New(), fractal.New()), Logger: logger,
		Now: func() time.Time { return time.Unix(0, h.now.Load()) }, RejectBudget: budget}
	api := &httpapi.Server{Store: st, Receiver: h.svc, Logger: logger,
		MaxBody: maxBody, MaxInflight: maxInflight}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// post sends a badly signed iDenfy or Fractal callback to source and returns the
// status, the Retry-After header and the body of the answer.
func (h *harness) post(t *testing.T, source string, body io.Reader, length int64) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/ingest/"+source, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set(idenfy.HeaderSignature, "00ff")
	req.Header.Set("X-Fractal-Signature", "sha1="+strings.Repeat("0", 40))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /ingest/%.20s: %v", source, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(raw)
}

func (h *harness) rejections(t *testing.T) []hub.Message {
	t.Helper()
	rows, _, err := h.store.Messages(context.Background(), hub.MessageFilter{Status: hub.MessageRejected, Page: hub.Page{Limit: 500}})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

const badBody = `{"scanRef":"x"}`

// TestFloodCostsBoundedSpace: past the budget of rows in full, the
// rejections of a source, reason and minute are one counting row and one
// more log line, however many they are; unknown sources share one bucket; an
// overlong source id is a plain 404 that keeps and echoes nothing.
func TestFloodCostsBoundedSpace(t *testing.T) {
	t.Parallel()
	// Two senders of each kind, n requests each.
	const budget, n = 3, 50
	h := newHarness(t, budget, 0, 0)
	long := strings.Repeat("L", 5000)

	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				var code int
				var answer string
				switch w % 3 {
				case 0:
					code, _, answer = h.post(t, "idenfy-main", strings.NewReader(badBody), int64(len(badBody)))
					if code != http.StatusUnauthorized {
						t.Errorf("bad signature: %d %s, want 401", code, answer)
					}
				case 1:
					code, _, answer = h.post(t, "nobody-"+string(rune('a'+i%26)), strings.NewReader(badBody), int64(len(badBody)))
					if code != http.StatusNotFound {
						t.Errorf("unknown source: %d %s, want 404", code, answer)
					}
				case 2:
					code, _, answer = h.post(t, long, strings.NewReader(badBody), int64(len(badBody)))
					if code != http.StatusNotFound || strings.Contains(answer, "LLLL") {
						t.Errorf("overlong source id: %d %q, want a plain 404", code, answer)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := h.svc.FlushRejections(context.Background()); err != nil {
		t.Fatal(err)
	}

	// 2n requests at idenfy-main (401), 4n at unknown sources (404): the
	// long id is one of them.
	rows := h.rejections(t)
	full, counts := map[int]int{}, map[int]int64{}
	for _, m := range rows {
		if len(m.SourceID) > hub.MaxIDLen || m.Body != nil {
			t.Errorf("rejection row kept %d bytes of source id, %d of body", len(m.SourceID), len(m.Body))
		}
		if m.Count == 0 {
			full[m.HTTPStatus]++
			continue
		}
		counts[m.HTTPStatus] += m.Count
		if m.HTTPStatus == http.StatusNotFound && m.SourceID != "" {
			t.Errorf("the unknown sources' counting row names source %q", m.SourceID)
		}
	}
	if len(rows) != 2*(budget+1) || full[401] != budget || full[404] != budget ||
		counts[401] != 2*n-budget || counts[404] != 4*n-budget {
		t.Errorf("%d rows: in full %v, counted %v; want %d rows: %d in full and %d, %d counted",
			len(rows), full, counts, 2*(budget+1), budget, 2*n-budget, 4*n-budget)
	}
	if lines := h.log.lines(); lines > 2*(budget+1) {
		t.Errorf("%d log lines for %d rejections, want at most %d:\n%s", lines, 6*n, 2*(budget+1), h.log)
	}
	if strings.Contains(h.log.String(), "LLLL") {
		t.Error("the log holds the overlong source id")
	}

	// The counting row reads through the API with its count.
	tok := hub.NewTokenSecret()
	if err := h.store.CreateToken(context.Background(), hub.Token{ID: "tok_1", Role: hub.RoleViewer,
		Hash: hub.HashToken(tok), CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, h.url+"/api/v1/messages?status=rejected&source=idenfy-main", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Data []map[string]any }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Data) != budget+1 {
		t.Fatalf("GET rejected messages of idenfy-main: %v %+v, want %d rows", err, list.Data, budget+1)
	}
	var shown []any
	for _, m := range list.Data {
		if c, ok := m["count"]; ok {
			shown = append(shown, c)
		}
	}
	if len(shown) != 1 || shown[0] != float64(2*n-budget) {
		t.Errorf("GET rejected messages of idenfy-main shows counts %v, want [%d]", shown, 2*n-budget)
	}

	// A new minute has a new budget.
	h.now.Add(int64(time.Minute))
	h.post(t, "idenfy-main", strings.NewReader(badBody), int64(len(badBody)))
	if got := len(h.rejections(t)); got != 2*(budget+1)+1 {
		t.Errorf("%d rows after a rejection in the next minute, want %d", got, 2*(budget+1)+1)
	}
}

// TestVaryingReasonsAreBounded: reasons that name what the request sent (a
// Fractal event type no secret is configured for) share the budget of their
// source and status, and past a bound of counting rows a minute they share
// one row.
func TestVaryingReasonsAreBounded(t *testing.T) {
	t.Parallel()
	const budget, n = 3, 60
	h := newHarness(t, budget, 0, 0)
	for i := range n {
		body := fmt.Sprintf(`{"type":"made-up-%d","user_id":"u"}`, i)
		if code, _, answer := h.post(t, "fractal-main", strings.NewReader(body), int64(len(body))); code != http.StatusUnauthorized {
			t.Fatalf("made-up type: %d %s, want 401", code, answer)
		}
	}
	if err := h.svc.FlushRejections(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows := h.rejections(t)
	var full, counted int64
	for _, m := range rows {
		if m.Count == 0 {
			full++
		}
		counted += m.Count
	}
	if full != budget || counted != n-budget || len(rows) > budget+21 {
		t.Errorf("%d rows: %d in full, %d counted; want %d in full, %d counted, at most %d rows",
			len(rows), full, counted, budget, n-budget, budget+21)
	}
	if lines := h.log.lines(); lines > budget+1 {
		t.Errorf("%d log lines, want at most %d:\n%s", lines, budget+1, h.log)
	}
}

// TestUnknownSourceRefusedBeforeBody: a request to an unknown source is
// answered 404 while its body has not been sent.
func TestUnknownSourceRefusedBeforeBody(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3, 0, 0)
	pr, pw := io.Pipe()
	// Should the server wait for the body, the request fails after 10 s.
	stop := time.AfterFunc(10*time.Second, func() { pw.CloseWithError(errors.New("no answer within 10 s")) })
	defer stop.Stop()
	if code, _, answer := h.post(t, "nobody", pr, 1<<20); code != http.StatusNotFound || strings.Contains(answer, "nobody") {
		t.Errorf("unknown source with its body held back: %d %q, want a 404 that names nothing", code, answer)
	}
}

// TestInflightBudget: a body that does not fit in the bytes left for bodies
// in flight gets 503 with Retry-After, and fits again once they are freed;
// a body over the limit is refused (413) before it is read.
func TestInflightBudget(t *testing.T) {
	t.Parallel()
	const limit = 4096
	h := newHarness(t, 1000, limit, limit)

	// A request that holds the whole budget while its body trickles in.
	pr, pw := io.Pipe()
	held := make(chan int, 1)
	go func() {
		code, _, _ := h.post(t, "idenfy-main", pr, limit)
		held <- code
	}()
	pw.Write([]byte("{"))

	// Until the first request holds the budget, the probe is read and
	// refused (401); a hang is the test binary's timeout to report.
	for {
		code, retry, answer := h.post(t, "idenfy-main", strings.NewReader(badBody), int64(len(badBody)))
		if code == http.StatusServiceUnavailable {
			if retry == "" || !strings.Contains(answer, "retry later") {
				t.Errorf("503 with Retry-After %q and %q, want a Retry-After and a reason", retry, answer)
			}
			break
		}
		if code != http.StatusUnauthorized {
			t.Fatalf("while the budget is held: %d %s, want 503 (or 401 until the first request holds it)", code, answer)
		}
	}
	if code, _, _ := h.post(t, "nobody", strings.NewReader(badBody), int64(len(badBody))); code != http.StatusNotFound {
		t.Errorf("unknown source while the budget is held: %d, want 404", code)
	}
	pr2, pw2 := io.Pipe()
	defer pw2.Close()
	// (A body over net/http's 256 KiB that it drains after an answer, so
	// that the answer comes before the body is sent.)
	if code, _, _ := h.post(t, "idenfy-main", pr2, 1<<20); code != http.StatusRequestEntityTooLarge {
		t.Errorf("declared length over the limit: %d, want 413 before the body is sent", code)
	}

	pw.Write(bytes.Repeat([]byte(" "), limit-1))
	pw.Close()
	if code := <-held; code != http.StatusUnauthorized {
		t.Errorf("the request that held the budget: %d, want 401", code)
	}
	if code, _, answer := h.post(t, "idenfy-main", strings.NewReader(badBody), int64(len(badBody))); code != http.StatusUnauthorized {
		t.Errorf("after the budget is freed: %d %s, want 401", code, answer)
	}
}

// lockedBuffer is a log destination that handlers write from many
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *lockedBuffer) lines() int { return strings.Count(b.String(), "\n") }
