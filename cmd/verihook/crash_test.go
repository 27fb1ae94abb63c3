package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// buildBinary builds the verihook command once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "verihook-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "verihook")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// binary returns the built verihook command, or skips the test under -short.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped with -short")
	}
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// sourcesYAML declares the four test sources, one per provider.
func sourcesYAML() string {
	return fmt.Sprintf(`sources:
  - {id: identomat-main, provider: identomat, secrets: {callback_api_key: %s}}
  - {id: idenfy-main, provider: idenfy, secrets: {signing_key: %s}}
  - {id: kycaid-main, provider: kycaid, secrets: {api_token: %s}}
  - {id: fractal-main, provider: fractal, secrets: {webhook_secret: %s}}
`, testSecrets["identomat"], testSecrets["idenfy"], testSecrets["kycaid"], testSecrets["fractal"])
}

// writeConfig writes a config file into dir and returns its path.
func writeConfig(t *testing.T, dir, name, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// binToken creates a viewer token with the command, as an operator would.
func binToken(t *testing.T, bin, config string, env ...string) string {
	t.Helper()
	cmd := exec.Command(bin, "token", "create", "--role", "viewer", "--config", config)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// allEventIDs pages through every stored event.
func allEventIDs(t *testing.T, base, tok string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for cursor := ""; ; {
		var l struct {
			Data       []hub.Event `json:"data"`
			NextCursor string      `json:"next_cursor"`
		}
		getJSON(t, base+"/api/v1/events?limit=500&cursor="+cursor, tok, &l)
		for _, e := range l.Data {
			ids[e.ID] = true
		}
		if cursor = l.NextCursor; cursor == "" {
			return ids
		}
	}
}

// waitNoPending waits until no delivery is pending: nothing is stuck.
func waitNoPending(t *testing.T, base, tok string) {
	t.Helper()
	waitFor(t, "no delivery left pending", 30*time.Second, func() bool {
		var pending struct{ Data []hub.Delivery }
		getJSON(t, base+"/api/v1/deliveries?status=pending", tok, &pending)
		return len(pending.Data) == 0
	})
}

// process is a verihook serve child process.
type process struct {
	cmd  *exec.Cmd
	addr string
}

var addrLine = regexp.MustCompile(`msg="verihook serving" addr=(\S+)`)

// startProcess runs `verihook serve` with the config file and waits until it
// listens.
func startProcess(t *testing.T, bin, config string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", config)
	// Parallel tests' processes would collide on the default metrics port.
	cmd.Env = append(append(os.Environ(), "VERIHOOK_LOG_LEVEL=info", "VERIHOOK_METRICS_LISTEN=127.0.0.1:0"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := addrLine.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return &process{cmd: cmd, addr: a}
	case <-time.After(30 * time.Second):
		t.Fatal("verihook serve did not start within 30 s")
		return nil
	}
}

// crashCase is one webhook whose outcome is known in advance.
type crashCase struct {
	provider, event, ref string
	f                    provider.Fields
	want                 hub.Status // "" for events that make no verification
}

// signedCase is a crash case signed as its provider sends it.
type signedCase struct {
	c    crashCase
	body []byte
	h    http.Header
}

// signCases signs every case.
func signCases(t *testing.T, cases []crashCase) []signedCase {
	t.Helper()
	out := make([]signedCase, len(cases))
	for i, c := range cases {
		out[i] = signedCase{c: c}
		out[i].body, out[i].h = signed(t, c.provider, c.event, c.f)
	}
	return out
}

func crashCases(n int) []crashCase {
	yes := true
	var cs []crashCase
	for i := range n {
		ref := fmt.Sprintf("crash-%04d", i)
		var c crashCase
		switch i % 8 {
		case 0:
			c = crashCase{"identomat", "session-change", ref, provider.Fields{Status: "APPROVED"}, hub.StatusApproved}
		case 1:
			c = crashCase{"identomat", "one-time-password", ref, provider.Fields{}, ""}
		case 2:
			c = crashCase{"idenfy", "IDENTIFICATION_MANUAL_FINISHED", ref, provider.Fields{Status: "DENIED", Final: &yes}, hub.StatusRejected}
		case 3:
			c = crashCase{"idenfy", "IDENTIFICATION_AUTO_FINISHED", ref, provider.Fields{Status: "SUSPECTED", Final: &yes}, hub.StatusSuspected}
		case 4:
			c = crashCase{"kycaid", "VERIFICATION_COMPLETED", ref, provider.Fields{Status: "true", EventID: fmt.Sprintf("%036d", i)}, hub.StatusApproved}
		case 5:
			c = crashCase{"kycaid", "VERIFICATION_STATUS_CHANGED", ref, provider.Fields{Status: "pending", EventID: fmt.Sprintf("%036d", i)}, hub.StatusPending}
		case 6:
			c = crashCase{"fractal", "verification_rejected", ref, provider.Fields{Level: "basic"}, hub.StatusRejected}
		case 7:
			c = crashCase{"fractal", "credential_shared", ref, provider.Fields{}, ""}
		}
		c.f.Ref, c.f.Time = ref, time.Date(2026, 11, 1, 0, 0, i, 0, time.UTC)
		cs = append(cs, c)
	}
	return cs
}

// TestCrashLosesNothing sends a few hundred webhooks of all four providers
// concurrently to the real program, kills it with SIGKILL mid-burst, restarts
// it on the same data, and checks that every acknowledged message is there
// with the right verification status.
func TestCrashLosesNothing(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	dir := t.TempDir()
	config := writeConfig(t, dir, "verihook.yaml", "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "data")+"\n"+sourcesYAML())

	proc := startProcess(t, bin, config)
	cases := crashCases(600)
	type ack struct {
		c  crashCase
		id string
	}
	var (
		mu     sync.Mutex
		acked  []ack
		failed atomic.Int64
		wg     sync.WaitGroup
		next   atomic.Int64
	)
	reqs := signCases(t, cases)
	killAt := int64(len(cases) / 2)
	client := &http.Client{Timeout: 10 * time.Second}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(cases)) {
					return
				}
				if i == killAt {
					proc.cmd.Process.Kill() // no clean shutdown: SIGKILL
				}
				c := cases[i]
				req, _ := http.NewRequest(http.MethodPost, "http://"+proc.addr+"/ingest/"+c.provider+"-main", bytes.NewReader(reqs[i].body))
				req.Header = reqs[i].h
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				var a ingestAnswer
				decodeErr := jsonDecode(resp, &a)
				if resp.StatusCode == http.StatusOK && decodeErr == nil && a.MessageID != "" {
					mu.Lock()
					acked = append(acked, ack{c, a.MessageID})
					mu.Unlock()
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	proc.cmd.Wait()
	t.Logf("acknowledged %d, failed %d of %d before and after SIGKILL", len(acked), failed.Load(), len(cases))
	if len(acked) < 100 || failed.Load() == 0 {
		t.Fatalf("acknowledged %d and failed %d: the kill did not land mid-burst", len(acked), failed.Load())
	}

	proc = startProcess(t, bin, config)
	tok := binToken(t, bin, config)
	base := "http://" + proc.addr
	for _, a := range acked {
		var msg hub.Message
		if code := getJSON(t, base+"/api/v1/messages/"+a.id, tok, &msg); code != 200 || msg.Status != hub.MessageAccepted {
			t.Errorf("acknowledged message %s (%s %s) after restart: %d %+v", a.id, a.c.provider, a.c.event, code, msg)
			continue
		}
		if a.c.want == "" {
			if len(msg.Events) == 0 {
				t.Errorf("message %s lost its event", a.id)
			}
			continue
		}
		v := verificationOf(t, base, tok, a.c.provider+"-main", a.c.ref, a.c.f.Level)
		if v.Status != a.c.want || v.Version != 1 {
			t.Errorf("%s %s %s: status %s version %d, want %s version 1", a.c.provider, a.c.event, a.c.ref, v.Status, v.Version, a.c.want)
		}
	}
}

// TestSIGTERMShutsDownCleanly: serve stops on SIGTERM with exit code 0, and
// what it acknowledged is there on the next start.
func TestSIGTERMShutsDownCleanly(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	dir := t.TempDir()
	config := writeConfig(t, dir, "verihook.yaml", "listen: 127.0.0.1:0\ndata_dir: "+filepath.Join(dir, "data")+"\n"+sourcesYAML())
	proc := startProcess(t, bin, config)
	body, h := signed(t, "kycaid", "VERIFICATION_COMPLETED", provider.Fields{Ref: "kv-term"})
	var a ingestAnswer
	if code := postRaw(t, "http://"+proc.addr+"/ingest/kycaid-main", h, body, &a); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- proc.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM, want exit code 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15 s of SIGTERM")
	}
	proc = startProcess(t, bin, config)
	tok := binToken(t, bin, config)
	if v := verificationOf(t, "http://"+proc.addr, tok, "kycaid-main", "kv-term", ""); v.Status != hub.StatusApproved {
		t.Errorf("after a clean restart: %+v", v)
	}
}

// TestDeliveryCrashDeliversEverything kills the real program with SIGKILL in
// the middle of a burst of webhooks while it delivers to a slow receiver that
// sometimes fails, restarts it, and checks that every stored event reaches
// the receiver at least once: its count of distinct webhook-ids equals the
// number of events stored, and every acknowledged message's events are among
// them.
func TestDeliveryCrashDeliversEverything(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	secret := hub.NewEndpointSecret()
	rc := newReceiver(t, secret, 5*time.Millisecond)
	rnd := rand.New(rand.NewPCG(7, 7))
	rc.mu.Lock()
	rc.fail = func(string) bool { return rnd.IntN(10) == 0 } // called under rc.mu
	rc.mu.Unlock()

	dir := t.TempDir()
	config := writeConfig(t, dir, "verihook.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
allow_private_endpoints: true
delivery_timeout: 2s
delivery_lease: 4s
retry_schedule: [0s, 50ms, 100ms, 200ms, 300ms, 500ms, 500ms, 500ms, 500ms, 500ms, 1s, 1s]
endpoints:
  - {id: receiver, url: %s, secret: %s}
`, filepath.Join(dir, "data"), rc.srv.URL, secret)+sourcesYAML())

	cases := crashCases(2000)
	reqs := signCases(t, cases)
	proc := startProcess(t, bin, config)
	var (
		mu    sync.Mutex
		acked []string
		next  atomic.Int64
		wg    sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(reqs)) {
					return
				}
				if i == int64(len(reqs))/2 {
					proc.cmd.Process.Kill()
				}
				req, _ := http.NewRequest(http.MethodPost, "http://"+proc.addr+"/ingest/"+reqs[i].c.provider+"-main", bytes.NewReader(reqs[i].body))
				req.Header = reqs[i].h
				resp, err := client.Do(req)
				if err != nil {
					continue
				}
				var a ingestAnswer
				if jsonDecode(resp, &a) == nil && resp.StatusCode == 200 {
					mu.Lock()
					acked = append(acked, a.MessageID)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	proc.cmd.Wait()
	before := rc.distinct()
	t.Logf("acknowledged %d of %d; the receiver had %d distinct events at the kill", len(acked), len(reqs), before)
	if len(acked) < 500 || len(acked) == len(reqs) {
		t.Fatalf("acknowledged %d of %d: the kill did not land mid-burst", len(acked), len(reqs))
	}

	proc = startProcess(t, bin, config)
	tok := binToken(t, bin, config)
	base := "http://" + proc.addr
	stored := allEventIDs(t, base, tok)
	waitFor(t, "every stored event at the receiver", 60*time.Second, func() bool { return rc.distinct() >= len(stored) })
	rc.mu.Lock()
	for id := range rc.ids {
		if !stored[id] {
			t.Errorf("the receiver got %s, which is not stored", id)
		}
	}
	received := len(rc.ids)
	rc.mu.Unlock()
	if received != len(stored) {
		t.Errorf("the receiver has %d distinct webhook-ids, want %d (the events stored)", received, len(stored))
	}
	for _, id := range acked {
		var msg hub.Message
		getJSON(t, base+"/api/v1/messages/"+id, tok, &msg)
		if len(msg.Events) == 0 {
			t.Errorf("acknowledged message %s has no event", id)
		}
		rc.mu.Lock()
		for _, ev := range msg.Events {
			if rc.ids[ev] == 0 {
				t.Errorf("event %s of acknowledged message %s never reached the receiver", ev, id)
			}
		}
		rc.mu.Unlock()
	}
	// Deliveries sent before the kill but not yet recorded are sent again
	// when their lease ends; after that nothing may stay pending.
	waitNoPending(t, base, tok)
	t.Logf("stored %d events, the receiver saw %d distinct", len(stored), received)
}
