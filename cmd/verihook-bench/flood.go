package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider/idenfy"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// cmdFlood measures what unauthenticated traffic costs a verihook it starts
// (SPEC section 10, issue 10 items 3 and 4), in two parts, each on a fresh
// data dir:
//
//   - rejections: --requests requests that verihook refuses (half with a bad
//     signature at a configured source, half at unknown sources, one in a
//     hundred with a 4,000-byte source id), on --conns connections; it
//     reports how much the data dir and the log grew and how many audit
//     rows stand for how many rejections;
//   - slow bodies: --slow-conns connections at once, each sending a
//     --slow-body body to an unknown source, then the same to a configured
//     source with a bad signature (whose bodies are read, up to
//     max_inflight_bytes); it reports the server's resident memory idle,
//     at its peak and after the connections closed.
//
// Traffic goes to 127.0.0.1 only and is bounded by the flags and --timeout.
func cmdFlood(ctx context.Context, args []string) error {
	fs := newFlagSet("flood")
	bin := fs.String("bin", "", "verihook binary to start (default: go build ./cmd/verihook into a temp dir)")
	requests := fs.Int("requests", 100000, "rejected requests to send (at most 1,000,000)")
	conns := fs.Int("conns", 32, "connections for the rejections")
	slowConns := fs.Int("slow-conns", 300, "connections sending a body at once (at most 1,000)")
	slowBody := fs.Int64("slow-body", 1<<20, "bytes of body each of them sends (at most 16 MiB)")
	logLevel := fs.String("log-level", "info", "verihook's log_level (info is the default of verihook serve)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *requests < 1 || *requests > 1_000_000 || *conns < 1 || *slowConns < 1 || *slowConns > 1000 ||
		*slowBody < 1 || *slowBody > 16<<20 {
		return errors.New("--requests 1 to 1,000,000, --conns at least 1, --slow-conns 1 to 1,000, --slow-body 1 byte to 16 MiB")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	tmp, err := os.MkdirTemp("", "verihook-bench-flood-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *bin == "" {
		if *bin, err = buildVerihook(tmp); err != nil {
			return err
		}
	}
	so := serverOpts{bin: *bin, dataDir: filepath.Join(tmp, "rejections"), logLevel: *logLevel}
	if err := floodRejections(ctx, so, *requests, *conns); err != nil {
		return err
	}
	so.dataDir = filepath.Join(tmp, "bodies")
	return floodBodies(ctx, so, *slowConns, *slowBody)
}

// floodRejections sends n refused requests and reports what they cost.
func floodRejections(ctx context.Context, so serverOpts, n, conns int) error {
	t, err := startVerihook(ctx, so)
	if err != nil {
		return err
	}
	stop := sync.OnceValue(t.close)
	defer stop()
	settle(ctx)
	size0, lines0 := dirSize(so.dataDir), lineCount(t.log.String())

	var next atomic.Int64
	var mu sync.Mutex
	statuses := map[string]int{}
	client := newClient(conns)
	long := strings.Repeat("x", 4000)
	sig := strings.Repeat("00", 32)
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				url := t.url + "/ingest/idenfy-bench"
				switch {
				case i%100 == 99:
					url = t.url + "/ingest/" + long
				case i%2 == 1:
					url = fmt.Sprintf("%s/ingest/nosuch-%d", t.url, i)
				}
				body := fmt.Sprintf(`{"scanRef":"flood-%d","status":{"overall":"APPROVED"}}`, i)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
				req.Header.Set(idenfy.HeaderSignature, sig)
				req.Header.Set("Content-Type", "application/json")
				status := "error"
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.Status
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Counts are added to their rows a second after they are counted.
	settle(ctx)
	settle(ctx)
	size1, lines1 := dirSize(so.dataDir), lineCount(t.log.String())
	if err := stop(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("rejections: %w", ctx.Err())
	}
	rows, represented, err := countRejections(ctx, so.dataDir)
	if err != nil {
		return err
	}
	fmt.Printf("rejections: %d requests on %d connections in %.1fs (%.0f/s); answers: %s\n",
		n, conns, elapsed.Seconds(), float64(n)/elapsed.Seconds(), errorsString(statuses))
	fmt.Printf("  data dir %s -> %s: grew by %s; log %d -> %d lines: grew by %d lines (log_level %s)\n",
		kib(size0), kib(size1), kib(size1-size0), lines0, lines1, lines1-lines0, so.logLevel)
	fmt.Printf("  %d audit rows stand for %d rejections\n", rows, represented)
	return nil
}

// countRejections reads the audit rows of a stopped verihook's data dir and
// the rejections they stand for.
func countRejections(ctx context.Context, dataDir string) (rows int, represented int64, err error) {
	key, err := ensureKey(dataDir)
	if err != nil {
		return 0, 0, err
	}
	c, err := cipherFor(key)
	if err != nil {
		return 0, 0, err
	}
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "verihook.db"), c)
	if err != nil {
		return 0, 0, err
	}
	defer st.Close()
	f := hub.MessageFilter{Status: hub.MessageRejected, Page: hub.Page{Limit: hub.MaxPageLimit}}
	for {
		page, next, err := st.Messages(ctx, f)
		if err != nil {
			return 0, 0, err
		}
		for _, m := range page {
			rows++
			represented += max(m.Count, 1)
		}
		if next == "" {
			return rows, represented, nil
		}
		f.Page.Cursor = next
	}
}

// floodBodies opens conns connections at once, each sending a body of size
// bytes, first to an unknown source, then to a configured one with a bad
// signature, and reports the server's resident memory.
func floodBodies(ctx context.Context, so serverOpts, conns int, size int64) error {
	t, err := startVerihook(ctx, so)
	if err != nil {
		return err
	}
	defer t.close()
	settle(ctx)
	_, idle, _ := t.rss()
	fmt.Printf("bodies: %d connections at once, each sending %s; verihook idle RSS %s\n", conns, kib(size), mib(idle))
	for _, path := range []string{"/ingest/nosuch-source", "/ingest/idenfy-bench"} {
		t.resetRSS()
		start := time.Now()
		answers := sendBodies(ctx, strings.TrimPrefix(t.url, "http://"), path, conns, size)
		elapsed := time.Since(start)
		peak, _, hwm := t.rss()
		settle(ctx)
		settle(ctx)
		_, after, _ := t.rss()
		fmt.Printf("  POST %s: %.1fs; answers: %s\n", path, elapsed.Seconds(), errorsString(answers))
		fmt.Printf("    RSS peak %s (idle + %s), 2 s after they closed %s; VmHWM %s\n",
			mib(peak), mib(peak-idle), mib(after), mib(hwm))
	}
	return ctx.Err()
}

// sendBodies sends conns requests at once on their own connections, each
// with a body of size bytes (the answer may come before the body is sent),
// and counts the answers' statuses.
func sendBodies(ctx context.Context, addr, path string, conns int, size int64) map[string]int {
	var mu sync.Mutex
	answers := map[string]int{}
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = ' '
	}
	for range conns {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			answer := sendBody(ctx, addr, path, size, chunk, &ready, gate)
			mu.Lock()
			answers[answer]++
			mu.Unlock()
		}()
	}
	ready.Wait()
	close(gate)
	wg.Wait()
	return answers
}

func sendBody(ctx context.Context, addr, path string, size int64, chunk []byte, ready *sync.WaitGroup, gate <-chan struct{}) string {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	ready.Done()
	if err != nil {
		return "dial error"
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	<-gate
	// The body is sent while the answer is read: the server may answer (and
	// close) before it has read the body.
	go func() {
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s: %s\r\nContent-Length: %d\r\n\r\n",
			path, addr, idenfy.HeaderSignature, strings.Repeat("00", 32), size)
		for left := size; left > 0; {
			n := min(left, int64(len(chunk)))
			if _, err := conn.Write(chunk[:n]); err != nil {
				return
			}
			left -= n
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "no answer"
	}
	resp.Body.Close()
	return resp.Status
}

// settle waits a second, for the server to finish what it does in the
// background.
func settle(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
}

func lineCount(s string) int { return strings.Count(s, "\n") }

func kib(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/1024) }
