package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/hub"
)

// testDatabase creates a fresh PostgreSQL database for one test and returns
// its URL. It needs VERIHOOK_TEST_DATABASE_URL; without it the test is
// skipped, except under CI, where that is a failure.
func testDatabase(t *testing.T) string {
	t.Helper()
	base := os.Getenv("VERIHOOK_TEST_DATABASE_URL")
	if base == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("VERIHOOK_TEST_DATABASE_URL is not set under CI: the PostgreSQL tests cannot be skipped")
		}
		t.Skip("set VERIHOOK_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run the PostgreSQL tests")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", "VERIHOOK_TEST_DATABASE_URL", err)
	}
	defer admin.Close(ctx)
	var b [6]byte
	rand.Read(b[:])
	name := "vh_test_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), base); err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// TestMultiInstance runs three real `verihook serve` processes on one
// PostgreSQL database, sprays webhooks across them, kills one with SIGKILL
// mid-run (its share goes to the others, as a load balancer and the
// providers' retries would send it), and checks that every acknowledged
// message is stored once, every verification has the right status, and
// every event reached the endpoint at least once with no delivery stuck.
func TestMultiInstance(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	dbURL := testDatabase(t)
	secret := hub.NewEndpointSecret()
	rc := newReceiver(t, secret, 2*time.Millisecond)
	key := make([]byte, hub.KeySize)
	rand.Read(key)
	env := "VERIHOOK_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(key)

	dir := t.TempDir()
	var procs [3]*process
	for i := range procs {
		config := writeConfig(t, dir, fmt.Sprintf("verihook-%d.yaml", i), fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
database: %s
allow_private_endpoints: true
delivery_timeout: 2s
delivery_lease: 4s
retry_schedule: [0s, 50ms, 100ms, 200ms, 500ms, 1s]
endpoints:
  - {id: receiver, url: %s, secret: %s}
`, filepath.Join(dir, fmt.Sprint("data", i)), dbURL, rc.srv.URL, secret)+sourcesYAML())
		procs[i] = startProcess(t, bin, config, env) // the three start at once on a fresh database
	}

	cases := crashCases(1500)
	reqs := signCases(t, cases)
	var (
		mu     sync.Mutex
		acked  = map[int]string{} // case -> message id
		dead   atomic.Bool
		next   atomic.Int64
		wg     sync.WaitGroup
		client = &http.Client{Timeout: 10 * time.Second}
	)
	send := func(i, instance int) bool {
		req, _ := http.NewRequest(http.MethodPost, "http://"+procs[instance].addr+"/ingest/"+reqs[i].c.provider+"-main", bytes.NewReader(reqs[i].body))
		req.Header = reqs[i].h.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		var a ingestAnswer
		if jsonDecode(resp, &a) != nil || resp.StatusCode != 200 {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := acked[i]; ok && prev != a.MessageID {
			t.Errorf("case %d acknowledged as %s and as %s", i, prev, a.MessageID)
		}
		acked[i] = a.MessageID
		return true
	}
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return
				}
				if i == len(reqs)/2 && dead.CompareAndSwap(false, true) {
					procs[1].cmd.Process.Kill()
				}
				// Round robin; a failed request goes to the next instance,
				// as a balancer or the provider's retry would send it.
				for try := range 3 {
					if send(i, (i+try)%3) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	procs[1].cmd.Wait()
	if len(acked) != len(reqs) {
		t.Fatalf("acknowledged %d of %d though two instances stayed up", len(acked), len(reqs))
	}

	tok := binToken(t, bin, filepath.Join(dir, "verihook-0.yaml"), env)
	base := "http://" + procs[2].addr

	// Every acknowledged message is stored once.
	var stored int
	for cursor := ""; ; {
		var l messageList
		getJSON(t, base+"/api/v1/messages?status=accepted&limit=500&cursor="+cursor, tok, &l)
		stored += len(l.Data)
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if stored != len(reqs) {
		t.Errorf("%d accepted messages stored for %d distinct webhooks", stored, len(reqs))
	}
	for i, id := range acked {
		c := reqs[i].c
		var msg hub.Message
		if code := getJSON(t, base+"/api/v1/messages/"+id, tok, &msg); code != 200 {
			t.Errorf("message %s: %d", id, code)
			continue
		}
		if c.want != "" {
			if v := verificationOf(t, base, tok, c.provider+"-main", c.ref, c.f.Level); v.Status != c.want || v.Version != 1 {
				t.Errorf("%s %s: status %s version %d, want %s 1", c.provider, c.ref, v.Status, v.Version, c.want)
			}
		}
	}

	// Every event reached the endpoint, and nothing is stuck.
	events := allEventIDs(t, base, tok)
	if len(events) != len(reqs) {
		t.Errorf("%d events stored, want one per webhook: %d", len(events), len(reqs))
	}
	waitFor(t, "every event at the endpoint", 60*time.Second, func() bool { return rc.distinct() >= len(events) })
	waitNoPending(t, base, tok)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for id := range rc.ids {
		if !events[id] {
			t.Errorf("the endpoint got %s, which is not stored", id)
		}
	}
	t.Logf("%d webhooks over 3 instances (one killed): %d stored, %d events, %d distinct at the endpoint", len(reqs), stored, len(events), len(rc.ids))
}
