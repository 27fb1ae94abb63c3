package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// target is a server under load: verihook or the bare baseline, as a child
// process (whose memory the harness samples) or in the harness's own process.
type target struct {
	name string
	url  string
	cmd  *exec.Cmd // nil in-process
	// ready is how long the child took from start to answering /readyz.
	ready time.Duration
	log   *logBuffer
	stop  func() error

	rssMu    sync.Mutex
	rssPeak  int64
	rssLast  int64
	rssDone  chan struct{}
	rssEnded chan struct{}
}

// serverOpts says how to start verihook.
type serverOpts struct {
	bin      string
	dataDir  string
	database string
	// endpointURL and endpointSecret, when set, configure one endpoint that
	// receives every event.
	endpointURL, endpointSecret string
	readyTimeout                time.Duration
	// ceiling: start the ceiling (ceiling-serve) instead of verihook.
	ceiling bool
	// dispatch, when set, is the YAML value of the Identomat source's
	// dispatch key (a flow mapping), for the dispatch command.
	dispatch string
	// extra is YAML appended to the configuration (the fault campaign's
	// endpoints and delivery settings).
	extra string
	// logLevel is verihook's log_level; "" means warn.
	logLevel string
}

// buildVerihook builds cmd/verihook into dir and returns the binary's path.
func buildVerihook(dir string) (string, error) {
	bin := filepath.Join(dir, "verihook")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/verihook/verihook/cmd/verihook")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/verihook: %w", err)
	}
	return bin, nil
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ensureKey returns the data dir's encryption key (base64), creating the key
// file verihook itself would create (verihook.key, mode 0600) if there is
// none, so that `seed` and `serve` seal and open with the same key.
func ensureKey(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, "verihook.key")
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, hub.KeySize)
		rand.Read(key)
		raw = []byte(base64.StdEncoding.EncodeToString(key) + "\n")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(raw)), nil
}

// cipherFor returns the cipher of a base64 key.
func cipherFor(key string) (*hub.Cipher, error) {
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return nil, err
	}
	return hub.NewCipher(b)
}

// writeConfig writes the YAML configuration of a verihook under load.
func writeConfig(path, listen string, o serverOpts) error {
	var b strings.Builder
	// No metrics listener: instances under load side by side would take
	// the same default port.
	level := o.logLevel
	if level == "" {
		level = "warn"
	}
	fmt.Fprintf(&b, "listen: %s\nmetrics_listen: \"\"\ndata_dir: %s\nlog_level: %s\n", listen, o.dataDir, level)
	if o.database != "" {
		fmt.Fprintf(&b, "database: %q\n", o.database)
	}
	b.WriteString("sources:\n")
	for _, s := range benchSources {
		fmt.Fprintf(&b, "  - id: %s\n    provider: %s\n    secrets:\n", s.ID, s.Provider.Name())
		for k, v := range s.Secrets {
			fmt.Fprintf(&b, "      %s: %q\n", k, v)
		}
		if o.dispatch != "" && s.Provider.Name() == "identomat" {
			fmt.Fprintf(&b, "    dispatch: %s\n", o.dispatch)
		}
	}
	if o.endpointURL != "" || o.dispatch != "" {
		b.WriteString("allow_private_endpoints: true\n")
	}
	if o.endpointURL != "" {
		fmt.Fprintf(&b, "endpoints:\n  - id: bench-receiver\n    url: %s\n    secret: %q\n",
			o.endpointURL, o.endpointSecret)
	}
	b.WriteString(o.extra)
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// startVerihook starts `verihook serve` as a child process and waits until
// it answers /readyz.
func startVerihook(ctx context.Context, o serverOpts) (*target, error) {
	key, err := ensureKey(o.dataDir)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(filepath.Dir(filepath.Clean(o.dataDir)), filepath.Base(o.dataDir)+"-bench.yaml")
	if err := writeConfig(cfgPath, addr, o); err != nil {
		return nil, err
	}
	cmd := exec.Command(o.bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "VERIHOOK_ENCRYPTION_KEY="+key)
	t := &target{name: "verihook", url: "http://" + addr, log: &logBuffer{}}
	cmd.Stdout, cmd.Stderr = t.log, t.log
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start verihook: %w", err)
	}
	t.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.stop = func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			return errors.New("verihook did not stop within 30s of SIGTERM; killed")
		}
	}
	timeout := o.readyTimeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	if err := waitReady(ctx, t.url+"/readyz", timeout, exited); err != nil {
		t.stop()
		return nil, fmt.Errorf("%w\nverihook's log:\n%s", err, tail(t.log.String(), 2000))
	}
	t.ready = time.Since(begin)
	t.sampleRSS()
	return t, nil
}

// startBaseline starts the bare net/http server (this program's
// baseline-serve command) as a child process.
func startBaseline(ctx context.Context) (*target, error) {
	return startSelf(ctx, "baseline", "baseline-serve")
}

// startCeiling starts verihook without its store's writes (this program's
// ceiling-serve command) as a child process.
func startCeiling(ctx context.Context, o serverOpts) (*target, error) {
	return startSelf(ctx, "ceiling", "ceiling-serve", "--data-dir", o.dataDir)
}

// startSelf starts this program's server command as a child process that
// listens on a free port and prints its address.
func startSelf(ctx context.Context, name, command string, args ...string) (*target, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{command, "--listen", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	t := &target{name: name, log: &logBuffer{}}
	cmd.Stderr = t.log
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s: %w: %s", name, err, t.log.String())
	}
	go io.Copy(io.Discard, out)
	t.cmd = cmd
	t.url = "http://" + strings.TrimSpace(line)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.stop = func() error {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return nil
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			return fmt.Errorf("%s did not stop", name)
		}
	}
	if err := waitReady(ctx, t.url+"/readyz", time.Minute, exited); err != nil {
		t.stop()
		return nil, err
	}
	t.ready = time.Since(begin)
	t.sampleRSS()
	return t, nil
}

// runBaselineServer is the baseline: a bare net/http server, with the same
// timeouts as verihook's, that reads the body and answers 200.
func runBaselineServer(args []string) error {
	fs := newFlagSet("baseline-serve")
	listen := fs.String("listen", "127.0.0.1:0", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	answer := []byte(`{"status":"accepted"}`)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 1<<20))
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	go func() {
		sig := make(chan os.Signal, 1)
		notifySignals(sig)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// waitReady polls url until it answers 200, the child exits or timeout ends.
func waitReady(ctx context.Context, url string, timeout time.Duration, exited <-chan error) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("the server exited before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %s", url, timeout)
}

// sampleRSS starts sampling the child's resident memory every 100 ms.
func (t *target) sampleRSS() {
	t.rssDone, t.rssEnded = make(chan struct{}), make(chan struct{})
	pid := t.cmd.Process.Pid
	go func() {
		defer close(t.rssEnded)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := procStatus(pid, "VmRSS"); err == nil {
				t.rssMu.Lock()
				t.rssLast = rss
				t.rssPeak = max(t.rssPeak, rss)
				t.rssMu.Unlock()
			}
			select {
			case <-t.rssDone:
				return
			case <-tick.C:
			}
		}
	}()
}

// resetRSS forgets the peak so far (start-up and payload preparation).
func (t *target) resetRSS() {
	if t.cmd == nil {
		return
	}
	t.rssMu.Lock()
	t.rssPeak = t.rssLast
	t.rssMu.Unlock()
}

// rss returns the sampled peak and last resident set sizes, and the
// kernel's high-water mark (VmHWM) since the child started.
func (t *target) rss() (peak, last, hwm int64) {
	if t.cmd == nil {
		return 0, 0, 0
	}
	if cur, err := procStatus(t.cmd.Process.Pid, "VmRSS"); err == nil {
		t.rssMu.Lock()
		t.rssLast = cur
		t.rssPeak = max(t.rssPeak, cur)
		t.rssMu.Unlock()
	}
	hwm, _ = procStatus(t.cmd.Process.Pid, "VmHWM")
	t.rssMu.Lock()
	defer t.rssMu.Unlock()
	return t.rssPeak, t.rssLast, hwm
}

func (t *target) close() error {
	if t.rssDone != nil {
		close(t.rssDone)
		<-t.rssEnded
	}
	if t.stop == nil {
		return nil
	}
	return t.stop()
}

// writeBytes is how many bytes the child has caused to be written to
// storage so far (write_bytes of /proc/PID/io), or -1 when unknown.
func (t *target) writeBytes() int64 {
	if t.cmd == nil {
		return -1
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", t.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// cpuTime returns the CPU time (user and system) the started server has
// used, or -1.
func (t *target) cpuTime() time.Duration {
	if t.cmd == nil {
		return -1
	}
	return procCPU(t.cmd.Process.Pid)
}

// procCPU returns the CPU time (user and system) process pid has used, from
// /proc/PID/stat (in clock ticks, 100 a second), or -1.
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name, in parentheses, may hold spaces: fields count from
	// after it. utime and stime are fields 14 and 15 of the line.
	i := strings.LastIndexByte(string(raw), ')')
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(u+s) * 10 * time.Millisecond
}

// dbCommits returns how many transactions database has committed
// (pg_stat_database, which a backend updates at the latest when it exits),
// or -1.
func dbCommits(database string) int64 {
	u, err := url.Parse(database)
	if database == "" || err != nil {
		return -1
	}
	out, err := psql(u, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(out, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// backendCPU returns the CPU time used so far by each PostgreSQL backend
// connected to database (the server must run on this machine), by pid.
func backendCPU(database string) map[int]time.Duration {
	u, err := url.Parse(database)
	if database == "" || err != nil {
		return nil
	}
	out, err := psql(u, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	if err != nil {
		return nil
	}
	cpu := map[int]time.Duration{}
	for _, line := range strings.Fields(out) {
		if pid, err := strconv.Atoi(line); err == nil {
			if d := procCPU(pid); d >= 0 {
				cpu[pid] = d
			}
		}
	}
	return cpu
}

// procStatus reads a size field (kB) of /proc/PID/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// dirSize is the total size of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// logBuffer holds a child's output, which the harness may read while the
// child writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// freshDatabase creates a new PostgreSQL database next to the one admin
// names (psql, on the URL's server) and returns its URL and a function that
// drops it.
func freshDatabase(admin string) (string, func(), error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("--database %q: want a postgres:// URL", admin)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "localhost" && h != "::1" && h != "" {
		return "", nil, fmt.Errorf("--database: the harness only talks to loopback, not %s", h)
	}
	name := "verihook_bench_" + newRunID()
	if _, err := psql(u, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	fresh := *u
	fresh.Path = "/" + name
	drop := func() {
		if _, err := psql(u, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			fmt.Fprintln(os.Stderr, "drop database:", err)
		}
	}
	return fresh.String(), drop, nil
}

// psql runs one SQL command on the database u names and returns its
// unaligned output.
func psql(u *url.URL, sql string) (string, error) {
	// psql (libpq) refuses pgx's own parameters, such as pool_max_conns.
	libpq := *u
	q := libpq.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	libpq.RawQuery = q.Encode()
	out, err := exec.Command("psql", libpq.String(), "-v", "ON_ERROR_STOP=1", "-qAtc", sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql %q: %w: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// walStats reads the PostgreSQL server's WAL counters (pg_stat_wal,
// PostgreSQL 14 and later): how many times it wrote WAL buffers to disk, how
// many times it flushed them (fsync) and how many bytes of WAL it generated.
// They count the whole server, so other clients' work shows in them too. ok
// is false when they cannot be read.
func walStats(database string) (w walCounters, ok bool) {
	u, err := url.Parse(database)
	if database == "" || err != nil {
		return w, false
	}
	out, err := psql(u, "SELECT wal_write, wal_sync, wal_bytes FROM pg_stat_wal")
	if err != nil {
		return w, false
	}
	_, err = fmt.Sscanf(out, "%d|%d|%d", &w.writes, &w.syncs, &w.bytes)
	return w, err == nil
}

// walCounters are the counters walStats reads.
type walCounters struct{ writes, syncs, bytes int64 }

// storedBytes reads what the messages of database take: the size of every
// table of its current schema with their indexes and TOAST
// (pg_total_relation_size), and the sealed bodies and sealed event data
// they hold, the part that cannot shrink. ok is false when they cannot be
// read or no message is stored.
func storedBytes(database string) (messages, total, sealed int64, ok bool) {
	u, err := url.Parse(database)
	if database == "" || err != nil {
		return 0, 0, 0, false
	}
	out, err := psql(u, `SELECT (SELECT count(*) FROM messages),
		(SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
			WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'),
		(SELECT coalesce(sum(octet_length(body)), 0) FROM messages)
			+ (SELECT coalesce(sum(octet_length(data)), 0) FROM events)`)
	if err != nil {
		return 0, 0, 0, false
	}
	_, err = fmt.Sscanf(out, "%d|%d|%d", &messages, &total, &sealed)
	return messages, total, sealed, err == nil && messages > 0
}
