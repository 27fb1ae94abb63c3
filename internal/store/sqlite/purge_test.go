package sqlite

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// TestPurgeBoundsTheFile runs steady traffic, a day of it per round, with a
// purge after each round of what is older than three days: webhooks with
// 2.5 KB bodies full of personal data, their events and OTPs, a delivery of
// each with an attempt that echoes a response, and rejections. Once the
// first purges have run, the pages they free are reused, so the free list
// stays under a day's worth of pages and the file grows each day by only
// what stays for good (rows, statuses, timelines, previews, redacted event
// data): well under what a day's traffic adds before it is purged (with
// 4 KiB pages 59 pages a day against 122 when measured; with 1 KiB pages
// 240 against 357, 67 %, as what stays fills small pages less well, then
// 222 against 404 once the bodies and event data were sealed compressed;
// with 512-byte pages 554 against 836, 277 KiB against 418, 66 %: an
// event's row fills a page alone; with the bodies cleared in place in
// messages, as before migration 0007, 98 % of it: the purge freed nothing
// that was used again).
func TestPurgeBoundsTheFile(t *testing.T) {
	t.Parallel()
	const (
		days, retention = 10, 3 // rounds
		perDay          = 60    // webhooks a day
	)
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	ctx := context.Background()
	if err := s.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
		t.Fatal(err)
	}
	day := 24 * time.Hour
	pages := func() (total, free int64) {
		t.Helper()
		for q, dst := range map[string]*int64{"PRAGMA page_count": &total, "PRAGMA freelist_count": &free} {
			if err := s.rdb.QueryRowContext(ctx, q).Scan(dst); err != nil {
				t.Fatal(err)
			}
		}
		return total, free
	}
	var sizes []int64
	for d := range days {
		start := t0.Add(time.Duration(d) * day)
		// Concurrently, as an HTTP server's requests come, so that the
		// writes share commits and the test runs in seconds.
		parallel := func(n int, fn func(i int) error) {
			t.Helper()
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() { errs[i] = fn(i) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
		}
		parallel(perDay, func(i int) error {
			at := start.Add(time.Duration(i) * time.Second)
			in := testIngest("src", fmt.Sprint("k", d, "-", i), fmt.Sprint("scan-", d, "-", i), personalBody(d*perDay+i))
			in.Message.ID, in.Events[0].ID = hub.NewID("msg", at), hub.NewID("evt", at)
			in.Message.ReceivedAt, in.Observations[0].ReceivedAt = at, at
			in.Observations[0].MessageID = in.Message.ID
			in.Events[0].MessageID = in.Message.ID
			if _, err := s.Ingest(ctx, in); err != nil {
				return err
			}
			return s.RecordRejection(ctx, hub.Message{SourceID: "src", ReceivedAt: at, RemoteAddr: "198.51.100.7:4242",
				HTTPStatus: 401, Reason: "bad signature"})
		})
		now := start.Add(day - time.Hour)
		for {
			cs, err := s.ClaimDeliveries(ctx, now, 100, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) == 0 {
				break
			}
			parallel(len(cs), func(i int) error {
				return s.RecordAttempt(ctx, hub.AttemptRecord{DeliveryID: cs[i].Delivery.ID, Lease: cs[i].Lease,
					Attempt: hub.Attempt{At: now, StatusCode: 200, LatencyMS: 12,
						Response: `{"ok":true,"applicant":"` + strings.Repeat("Jane Doe ", 20) + `"}`},
					Status: hub.DeliverySucceeded})
			})
		}
		end := start.Add(day)
		res, err := s.Purge(ctx, hub.Purge{Before: end.Add(-retention * day), OTPBefore: end.Add(-day)})
		if err != nil {
			t.Fatal(err)
		}
		total, free := pages()
		sizes = append(sizes, total)
		t.Logf("day %2d: %5d pages (%4d free), purged %+v", d, total, free, res)
		if d >= retention+1 && free > (sizes[retention]/retention) {
			t.Errorf("day %d: %d free pages, more than a day's worth (%d): freed pages are not reused", d, free, sizes[retention]/retention)
		}
	}
	// Growth a day while nothing is old enough to purge, and once the
	// purges keep pace.
	before := (sizes[retention-1] - sizes[0]) / (retention - 1)
	after := (sizes[days-1] - sizes[retention+1]) / (days - 1 - retention - 1)
	t.Logf("growth a day: %d pages before the first purge, %d once purging (%.0f%%)", before, after, 100*float64(after)/float64(before))
	if after*10 > before*7 {
		t.Errorf("growth a day once purging = %d pages, want under 70%% of %d, the growth before", after, before)
	}
}

// personalBody returns an iDenfy-like result of about 2.5 KB, most of it
// personal data: random text, which compresses about as little as people's
// names and numbers do (a repeated letter would shrink to nothing when
// sealed).
func personalBody(i int) []byte {
	data := map[string]any{}
	rnd := rand.New(rand.NewPCG(uint64(i), 0))
	for _, k := range []string{"docFirstName", "docLastName", "docNumber", "docPersonalCode", "docExpiry", "docDob",
		"docNationality", "docIssuingCountry", "birthPlace", "address", "mothersMaidenName", "docSex"} {
		text := make([]byte, 150)
		for j := range text {
			text[j] = byte(rnd.Uint32())
		}
		data[k] = fmt.Sprintf("%s of applicant %d, %s", k, i, base64.StdEncoding.EncodeToString(text))
	}
	b, _ := json.Marshal(map[string]any{"scanRef": fmt.Sprint("scan-", i), "clientId": fmt.Sprint("user-", i),
		"final": true, "status": map[string]any{"overall": "APPROVED"}, "data": data})
	return b
}

// TestPurgeBodiesStoredBefore0007: a body stored in messages.body, as before
// migration 0007, is read and purged like one in message_bodies.
func TestPurgeBodiesStoredBefore0007(t *testing.T) {
	t.Parallel()
	s := openStore(t, filepath.Join(t.TempDir(), "verihook.db"), newKey(t))
	ctx := context.Background()
	in := testIngest("src", "k", "scan-1", []byte(`{"scanRef":"scan-1","data":{"docFirstName":"JANE"}}`))
	in.Message.Preview = nil
	if _, err := s.Ingest(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := s.write(ctx, "move body", func(tx *wtx) error {
		_, err := tx.exec(`UPDATE messages SET body = (SELECT body FROM message_bodies) WHERE id = ?`, in.Message.ID)
		if err == nil {
			_, err = tx.exec(`DELETE FROM message_bodies`)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Message(ctx, in.Message.ID); err != nil || string(m.Body) != string(in.Message.Body) {
		t.Fatalf("Message = %q, %v; want the body stored in messages", m.Body, err)
	}
	res, err := s.Purge(ctx, hub.Purge{Before: t0.Add(time.Second)})
	if err != nil || res.Bodies != 1 {
		t.Fatalf("Purge = %+v, %v; want 1 body", res, err)
	}
	m, err := s.Message(ctx, in.Message.ID)
	if err != nil || m.Body != nil || strings.Contains(string(m.Preview), "JANE") ||
		!strings.Contains(string(m.Preview), `"docFirstName":"[redacted]"`) {
		t.Errorf("after the purge: body %q, preview %s, %v; want none, and a preview rendered from the body", m.Body, m.Preview, err)
	}
}
