package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pgCluster is a private PostgreSQL cluster the fault campaign creates with
// initdb in its own directory, on its own port, so that it can restart it
// without touching any other server.
type pgCluster struct {
	bindir, data, log string
	port              int
	cred              *syscall.Credential // the postgres user's, when the harness runs as root
}

// startPG creates and starts a cluster under dir.
func startPG(dir string) (*pgCluster, error) {
	initdb, err := findInitdb()
	if err != nil {
		return nil, err
	}
	pg := &pgCluster{bindir: filepath.Dir(initdb), data: filepath.Join(dir, "data"), log: filepath.Join(dir, "postgres.log")}
	sock := filepath.Join(dir, "sock")
	if err := os.MkdirAll(sock, 0o700); err != nil {
		return nil, err
	}
	// PostgreSQL refuses to run as root: run it as the postgres user, owner
	// of its directory.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, p := range []string{dir, sock} {
			if err := os.Chown(p, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	if err := pg.run("initdb", "-D", pg.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	pg.port, _ = strconv.Atoi(port)
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=32MB", pg.port, sock)
	if err := pg.ctl("start", "-o", opts, "-l", pg.log); err != nil {
		return nil, err
	}
	return pg, nil
}

// findInitdb finds initdb on PATH or in Debian's versioned directories,
// the newest first.
func findInitdb() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return p, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(found) == 0 {
		return "", errors.New("no initdb on PATH or under /usr/lib/postgresql/*/bin")
	}
	sort.Slice(found, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(found[j]))))
		return vi > vj
	})
	return found[0], nil
}

// run runs one of the cluster's programs as the cluster's user. Its
// output goes to a file, not a pipe: the server pg_ctl starts keeps the
// descriptors it inherits, and a pipe would never end.
func (pg *pgCluster) run(prog string, args ...string) error {
	out, err := os.CreateTemp(filepath.Dir(pg.data), prog+"-*.out")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(filepath.Join(pg.bindir, prog), args...)
	cmd.Dir = filepath.Dir(pg.data)
	cmd.Stdout, cmd.Stderr = out, out
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	if err := cmd.Run(); err != nil {
		raw, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%s %s: %w: %s", prog, strings.Join(args, " "), err, tail(string(raw), 1000))
	}
	return nil
}

func (pg *pgCluster) ctl(action string, args ...string) error {
	return pg.run("pg_ctl", append([]string{action, "-D", pg.data, "-w", "-t", "120"}, args...)...)
}

// restart stops the server (fast: connections are ended; immediate: as
// a crash, recovered from the WAL at start) and starts it again.
func (pg *pgCluster) restart(mode string) error { return pg.ctl("restart", "-m", mode) }

// stop ends the server at once; the cluster is thrown away after.
func (pg *pgCluster) stop() error { return pg.ctl("stop", "-m", "immediate") }

func (pg *pgCluster) url(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// proxy is a TCP proxy between one verihook instance and PostgreSQL that
// can cut the connection: while cut, it ends every open connection and
// every new one at once.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

func newProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	return p, nil
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *proxy) pipe(c net.Conn) {
	p.mu.Lock()
	cut := p.cut
	p.mu.Unlock()
	if cut {
		c.Close()
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// setCut cuts (true) or restores (false) the connection.
func (p *proxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}

func (p *proxy) close() { p.setCut(true); p.ln.Close() }

// mountTmpfs mounts a tmpfs of size MiB on dir, so that the campaign can
// fill SQLite's disk; it says why when it cannot (not root, no mount).
func mountTmpfs(dir string, mib int) error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", mib), "tmpfs", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount -t tmpfs: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func unmount(dir string) {
	if err := exec.Command("umount", dir).Run(); err != nil {
		exec.Command("umount", "-l", dir).Run()
	}
}

// fillDisk writes a file in dir until the file system is full, and
// returns the function that removes it.
func fillDisk(dir string) (free func(), err error) {
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		return func() {}, err
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for _, n := range []int{1 << 20, 4096} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
	return func() { os.Remove(path) }, nil
}

// instance is one `verihook serve` child process that the campaign
// SIGKILLs and starts again on the same address and configuration.
type instance struct {
	name, bin, cfg, addr string
	env                  []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *ringBuffer
	kills  int
	starts int
	// up is true from ready to the next kill: the one the chaos may kill.
	up bool
}

func (in *instance) url() string { return "http://" + in.addr }

func (in *instance) isUp() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.up
}

// start starts the process and waits until it answers /readyz, starting it
// again when it exits first (its database may be down): until ctx ends.
func (in *instance) start(ctx context.Context) error {
	for {
		in.mu.Lock()
		cmd := exec.Command(in.bin, "serve", "--config", in.cfg)
		cmd.Env = in.env
		cmd.Stdout, cmd.Stderr = in.log, in.log
		// The instance dies with the harness, whatever ends it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			in.mu.Unlock()
			return err
		}
		exited := make(chan struct{})
		in.cmd, in.exited = cmd, exited
		in.starts++
		in.mu.Unlock()
		go func() { cmd.Wait(); close(exited) }()
		if waitReadyOrExit(ctx, in.url()+"/readyz", exited) {
			in.mu.Lock()
			in.up = true
			in.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		select {
		case <-exited:
		default:
			// Not ready in time: start it afresh.
			cmd.Process.Kill()
			<-exited
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitReadyOrExit polls url until it answers 200 (true), the process
// exits, a minute passes or ctx ends.
func waitReadyOrExit(ctx context.Context, url string, exited <-chan struct{}) bool {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-exited:
			return false
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// kill SIGKILLs the process and waits for it to end.
func (in *instance) kill() {
	in.mu.Lock()
	cmd, exited := in.cmd, in.exited
	in.kills++
	in.up = false
	in.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop ends the process with SIGTERM, or SIGKILL after 20 s.
func (in *instance) stop() {
	in.mu.Lock()
	cmd, exited := in.cmd, in.exited
	in.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// ringBuffer keeps the last bytes of a log.
type ringBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (r *ringBuffer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if len(r.buf) > r.max {
		r.buf = append(r.buf[:0], r.buf[len(r.buf)-r.max:]...)
	}
	return len(p), nil
}

func (r *ringBuffer) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.buf)
}
