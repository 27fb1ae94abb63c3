package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// faultsOpts are the fault campaign's flags.
type faultsOpts struct {
	seed       uint64
	webhooks   int
	rate       float64
	killEvery  time.Duration
	pgRestarts int
	converge   time.Duration
	stuckAfter time.Duration
	tmpfsMiB   int
	bin, dir   string
}

// The delivery settings of the instances under faults: short, so that a
// run converges in seconds (8 attempts over 10 s; a killed worker's leases
// end after 3 s).
const faultsDeliveryConfig = `allow_private_endpoints: true
delivery_timeout: 1s
delivery_lease: 3s
retry_schedule: [0s, 200ms, 500ms, 1s, 1s, 2s, 2s, 3s]
shutdown_timeout: 5s
`

// faultsLease is delivery_lease above: a pending delivery due longer ago
// than this (and an attempt) is stuck.
const faultsLease = 3 * time.Second

func cmdFaults(ctx context.Context, args []string) error {
	fs := newFlagSet("faults")
	var o faultsOpts
	seed := fs.Uint64("seed", 0, "random seed of the traffic and the fault schedule (default: drawn, and printed)")
	stores := fs.String("stores", "both", "postgres (three instances), sqlite (one), or both side by side")
	duration := fs.Duration("duration", 0, "send for this long at --rate: --webhooks becomes rate×duration")
	fs.IntVar(&o.webhooks, "webhooks", 10000, "webhooks per store (duplicates and out-of-order ones included)")
	fs.Float64Var(&o.rate, "rate", 50, "webhooks per second per store")
	fs.DurationVar(&o.killEvery, "kill-every", 3*time.Second, "SIGKILL a random instance this often (and start it again)")
	fs.IntVar(&o.pgRestarts, "pg-restarts", 2, "restarts of PostgreSQL during the sending")
	fs.DurationVar(&o.converge, "converge", 3*time.Minute, "after the faults, how long the last webhooks and deliveries may take")
	fs.DurationVar(&o.stuckAfter, "stuck-after", 2*time.Minute, "a due delivery waiting longer than this, at any time, is stuck")
	fs.IntVar(&o.tmpfsMiB, "tmpfs-mib", 256, "size of the tmpfs SQLite's data dir is on (filled and freed during the run)")
	fs.StringVar(&o.bin, "bin", "", "verihook binary (default: go build ./cmd/verihook into the work dir)")
	fs.StringVar(&o.dir, "dir", "", "work dir (default: a temp dir); removed at the end")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *duration > 0 {
		o.webhooks = int(o.rate * duration.Seconds())
	}
	if o.webhooks < 1 || o.rate <= 0 || o.killEvery <= 0 {
		return errors.New("--webhooks, --rate and --kill-every must be positive")
	}
	var which []string
	switch *stores {
	case "both":
		which = []string{"postgres", "sqlite"}
	case "postgres", "sqlite":
		which = []string{*stores}
	default:
		return fmt.Errorf("--stores %q: want postgres, sqlite or both", *stores)
	}
	o.seed = *seed
	if o.seed == 0 {
		o.seed = mrand.Uint64()
	}
	fmt.Printf("verihook-bench faults: seed %d (replay with --seed %d); %d webhooks per store at %.0f/s, a kill every %s, %d PostgreSQL restarts\n",
		o.seed, o.seed, o.webhooks, o.rate, o.killEvery, o.pgRestarts)

	if o.dir == "" {
		d, err := os.MkdirTemp("", "verihook-faults-")
		if err != nil {
			return err
		}
		o.dir = d
	} else if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(o.dir)
	// PostgreSQL runs as another user, who must reach its directory.
	if err := os.Chmod(o.dir, 0o711); err != nil {
		return err
	}
	if o.bin == "" {
		var err error
		if o.bin, err = buildVerihook(o.dir); err != nil {
			return err
		}
	}

	results := make([]*campaign, len(which))
	var wg sync.WaitGroup
	for i, store := range which {
		c := &campaign{store: store, o: o, seed: o.seed + uint64(i)}
		results[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(ctx); err != nil {
				c.violate("campaign", err.Error())
			}
		}()
	}
	wg.Wait()
	failed := false
	for _, c := range results {
		c.report(os.Stdout)
		failed = failed || len(c.violations) > 0
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if failed {
		return fmt.Errorf("violations found; replay with --seed %d", o.seed)
	}
	fmt.Println("faults: no violation")
	return nil
}

// campaign is the fault run against one store.
type campaign struct {
	store string // postgres or sqlite
	o     faultsOpts
	seed  uint64
	dir   string
	start time.Time

	pg        *pgCluster
	proxies   []*proxy
	instances []*instance
	endpoints []*flakyEndpoint
	token     string
	sender    *sender
	journeys  []journey
	diskDir   string // the tmpfs, when mounted

	mu         sync.Mutex
	faults     map[string]int
	skipped    []string
	figures    []string
	violations map[string][]string
	order      []string
}

// violate records a violation of kind.
func (c *campaign) violate(kind, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.violations == nil {
		c.violations = map[string][]string{}
	}
	if _, ok := c.violations[kind]; !ok {
		c.order = append(c.order, kind)
	}
	c.violations[kind] = append(c.violations[kind], what)
}

func (c *campaign) fault(kind string) {
	c.mu.Lock()
	c.faults[kind]++
	c.mu.Unlock()
}

// printMu keeps the two campaigns' lines whole.
var printMu sync.Mutex

func (c *campaign) logf(format string, args ...any) {
	printMu.Lock()
	defer printMu.Unlock()
	fmt.Printf("[%s %6.1fs] %s\n", c.store, time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
}

func (c *campaign) figure(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.figures = append(c.figures, fmt.Sprintf(format, args...))
}

func (c *campaign) run(ctx context.Context) (err error) {
	c.start = time.Now()
	c.faults = map[string]int{}
	c.dir = filepath.Join(c.o.dir, c.store)
	if err := os.MkdirAll(c.dir, 0o711); err != nil {
		return err
	}
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	rnd := mrand.New(mrand.NewPCG(c.seed, 0xfa17))

	// Endpoints: one takes everything, one is ordered, one takes two
	// sources' verification and OTP events.
	timeout := time.Second
	all, err := newFlakyEndpoint("all", rnd.Uint64(), 35, timeout)
	if err != nil {
		return err
	}
	ordered, err := newFlakyEndpoint("ordered", rnd.Uint64(), 30, timeout)
	if err != nil {
		return err
	}
	ordered.ordered, ordered.types = true, []string{"verification.*"}
	some, err := newFlakyEndpoint("some", rnd.Uint64(), 20, timeout)
	if err != nil {
		return err
	}
	some.types, some.sources = []string{"verification.*", "otp.*"}, []string{benchSources[0].ID, benchSources[2].ID}
	c.endpoints = []*flakyEndpoint{all, ordered, some}
	cleanups = append(cleanups, func() {
		for _, e := range c.endpoints {
			e.close()
		}
	})
	extra := faultsDeliveryConfig + "endpoints:\n"
	for _, e := range c.endpoints {
		extra += e.yaml()
	}

	keyRaw := make([]byte, hub.KeySize)
	rand.Read(keyRaw)
	env := []string{"VERIHOOK_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(keyRaw)}
	for _, kv := range os.Environ() {
		// The instances read their configuration file only.
		if !strings.HasPrefix(kv, "VERIHOOK_") {
			env = append(env, kv)
		}
	}

	n := 1
	if c.store == "postgres" {
		n = 3
		if c.pg, err = startPG(filepath.Join(c.dir, "pg")); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		cleanups = append(cleanups, func() {
			if err := c.pg.stop(); err != nil {
				fmt.Fprintln(os.Stderr, "stop postgres:", err)
			}
		})
		c.logf("PostgreSQL cluster on 127.0.0.1:%d (initdb in the work dir)", c.pg.port)
	} else {
		c.diskDir = filepath.Join(c.dir, "disk")
		if err := os.MkdirAll(c.diskDir, 0o700); err != nil {
			return err
		}
		if err := mountTmpfs(c.diskDir, c.o.tmpfsMiB); err != nil {
			c.skipped = append(c.skipped, "disk full: no tmpfs ("+err.Error()+")")
			c.diskDir = ""
		} else {
			dir := c.diskDir
			cleanups = append(cleanups, func() { unmount(dir) })
			c.logf("SQLite's data dir on a %d MiB tmpfs", c.o.tmpfsMiB)
		}
	}
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		so := serverOpts{dataDir: filepath.Join(c.dir, fmt.Sprintf("data-%d", i)), extra: extra}
		if c.diskDir != "" {
			so.dataDir = filepath.Join(c.diskDir, "data")
		}
		if c.pg != nil {
			px, err := newProxy(fmt.Sprintf("127.0.0.1:%d", c.pg.port))
			if err != nil {
				return err
			}
			c.proxies = append(c.proxies, px)
			cleanups = append(cleanups, px.close)
			so.database = c.pg.url(px.port())
		}
		if err := os.MkdirAll(so.dataDir, 0o700); err != nil {
			return err
		}
		in := &instance{name: fmt.Sprintf("%s-%d", c.store, i), bin: c.o.bin, addr: addr, env: env,
			cfg: filepath.Join(c.dir, fmt.Sprintf("verihook-%d.yaml", i)), log: &ringBuffer{max: 64 << 10}}
		if err := writeConfig(in.cfg, addr, so); err != nil {
			return err
		}
		c.instances = append(c.instances, in)
	}
	cleanups = append(cleanups, func() {
		for _, in := range c.instances {
			in.stop()
		}
	})
	for _, in := range c.instances {
		if err := in.start(ctx); err != nil {
			return fmt.Errorf("start %s: %w\n%s", in.name, err, tail(in.log.String(), 2000))
		}
	}
	if c.token, err = c.adminToken(); err != nil {
		return err
	}
	c.logf("%d instance(s) ready; endpoints all (35%% failing), ordered (30%%), some (20%%)", n)

	if c.journeys, err = planJourneys(rnd, fmt.Sprintf("%x", c.seed)[:8], c.o.webhooks); err != nil {
		return err
	}
	urls := make([]string, n)
	for i, in := range c.instances {
		urls[i] = in.url()
	}
	c.sender = newSender(urls, c.o.rate, rnd.Uint64())
	sendFor := time.Duration(float64(c.o.webhooks) / c.o.rate * float64(time.Second))
	sendCtx, stopSending := context.WithTimeout(ctx, sendFor+c.o.converge)
	defer stopSending()
	sent := make(chan struct{})
	go func() {
		c.sender.run(sendCtx, c.journeys)
		close(sent)
	}()

	watchCtx, stopWatching := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		c.watchQueue(watchCtx)
		close(watched)
	}()
	defer func() { stopWatching(); <-watched }()
	c.chaos(ctx, rnd, sendFor)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	c.logf("faults over; waiting for the last webhooks")
	select {
	case <-sent:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.logf("every webhook sent; waiting for the deliveries to settle")
	if err := c.settle(ctx); err != nil {
		return err
	}
	stopWatching()
	<-watched
	return c.check(ctx)
}

// adminToken creates an admin token with `verihook token create`.
func (c *campaign) adminToken() (string, error) {
	in := c.instances[0]
	cmd := exec.Command(in.bin, "token", "create", "--role", "admin", "--name", "faults", "--config", in.cfg)
	cmd.Env = in.env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("token create: %w", err)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) == 0 {
		return "", errors.New("token create printed nothing")
	}
	return lines[len(lines)-1], nil
}

// chaos runs the fault schedule, drawn from rnd, for d: kills, and on
// PostgreSQL restarts and cut connections, on SQLite a full disk. It
// returns once every fault is undone and every instance is ready again.
func (c *campaign) chaos(ctx context.Context, rnd *mrand.Rand, d time.Duration) {
	type fault struct {
		at, hold time.Duration
		kind     string
		victim   int
	}
	var plan []fault
	jitter := func(every time.Duration) time.Duration {
		return every*8/10 + time.Duration(rnd.Int64N(int64(every*4/10)+1))
	}
	for at := jitter(c.o.killEvery); at < d; at += jitter(c.o.killEvery) {
		plan = append(plan, fault{at: at, kind: "kill", victim: rnd.IntN(len(c.instances))})
	}
	if c.pg != nil {
		for k := range c.o.pgRestarts {
			plan = append(plan, fault{at: d * time.Duration(k+1) / time.Duration(c.o.pgRestarts+1), kind: "pg-restart", victim: k})
		}
		every := max(4*time.Second, d/8)
		for at := jitter(every); at < d; at += jitter(every) {
			plan = append(plan, fault{at: at, kind: "cut", victim: rnd.IntN(len(c.proxies)),
				hold: time.Second + time.Duration(rnd.Int64N(int64(2*time.Second)))})
		}
	}
	if c.diskDir != "" {
		every := max(8*time.Second, d/5)
		for at := jitter(every); at < d; at += jitter(every) {
			plan = append(plan, fault{at: at, kind: "disk-full", hold: 2*time.Second + time.Duration(rnd.Int64N(int64(2*time.Second)))})
		}
	}
	sort.Slice(plan, func(i, j int) bool { return plan[i].at < plan[j].at })

	var wg sync.WaitGroup
	begin := time.Now()
	for _, f := range plan {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-time.After(time.Until(begin.Add(f.at))):
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch f.kind {
			case "kill":
				in := c.instances[f.victim]
				if !in.isUp() {
					c.fault("kill skipped (instance still starting)")
					return
				}
				in.kill()
				c.fault("SIGKILL")
				time.Sleep(200 * time.Millisecond)
				if err := in.start(ctx); err != nil && ctx.Err() == nil {
					c.violate("instance did not start again", fmt.Sprintf("%s: %v\n%s", in.name, err, tail(in.log.String(), 2000)))
				}
			case "pg-restart":
				mode := []string{"fast", "immediate"}[f.victim%2]
				c.logf("PostgreSQL restart (%s)", mode)
				if err := c.pg.restart(mode); err != nil {
					c.violate("PostgreSQL did not restart", err.Error())
				}
				c.fault("PostgreSQL restart")
			case "cut":
				c.proxies[f.victim].setCut(true)
				c.fault("connection to PostgreSQL cut")
				time.Sleep(f.hold)
				c.proxies[f.victim].setCut(false)
			case "disk-full":
				free, err := fillDisk(c.diskDir)
				if err != nil {
					c.violate("disk fill", err.Error())
				}
				c.fault("disk full")
				time.Sleep(f.hold)
				free()
			}
		}()
	}
	wg.Wait()
	c.logf("fault schedule done: %s", c.faultSummary())
}

func (c *campaign) faultSummary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for k, v := range c.faults {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// api GETs path with the admin token from the first instance that
// answers.
func (c *campaign) api(ctx context.Context, path string, into any) error {
	var resp *http.Response
	for _, in := range c.instances {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.url()+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		if resp, err = c.sender.client.Do(req); err == nil {
			break
		} else if in == c.instances[len(c.instances)-1] {
			return err
		}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, tail(string(raw), 300))
	}
	return json.Unmarshal(raw, into)
}

// list reads every page of an API list into a slice of T.
func list[T any](ctx context.Context, c *campaign, path string) ([]T, error) {
	var out []T
	cursor := ""
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for {
		var page struct {
			Data       []T    `json:"data"`
			NextCursor string `json:"next_cursor"`
		}
		p := path + sep + "limit=500"
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := c.api(ctx, p, &page); err != nil {
			return nil, err
		}
		out = append(out, page.Data...)
		if page.NextCursor == "" {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

// watchQueue samples, every 2 s until ctx ends, how long the oldest due
// delivery has waited (GET /api/v1/stats); a wait longer than --stuck-after
// is a stuck delivery, while the faults go on too.
func (c *campaign) watchQueue(ctx context.Context) {
	var longest time.Duration
	var worst time.Time
	defer func() {
		c.figure("longest wait of a due delivery, sampled every 2 s: %s", longest.Round(100*time.Millisecond))
		if longest > c.o.stuckAfter {
			c.violate("stuck delivery", fmt.Sprintf("a delivery due since %s waited %s", worst.Format(time.RFC3339Nano), longest.Round(time.Second)))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		var st struct {
			Queue struct {
				OldestDue time.Time `json:"oldest_due"`
			} `json:"queue"`
		}
		if err := c.api(ctx, "/api/v1/stats", &st); err != nil || st.Queue.OldestDue.IsZero() {
			continue
		}
		if wait := time.Since(st.Queue.OldestDue); wait > longest {
			longest, worst = wait, st.Queue.OldestDue
		}
	}
}

// settle waits until no delivery is pending, or --converge passes.
func (c *campaign) settle(ctx context.Context) error {
	deadline := time.Now().Add(c.o.converge)
	for {
		var page struct {
			Data []hub.Delivery `json:"data"`
		}
		err := c.api(ctx, "/api/v1/deliveries?status=pending&limit=1", &page)
		if err == nil && len(page.Data) == 0 {
			c.logf("no delivery pending")
			return nil
		}
		if time.Now().After(deadline) {
			c.logf("deliveries still pending after %s", c.o.converge)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// check reads what the store holds through the API and compares it with
// what the harness sent and the endpoints received.
func (c *campaign) check(ctx context.Context) error {
	s := c.sender
	s.mu.Lock()
	defer s.mu.Unlock()

	// Every acknowledged message is stored.
	msgs, err := list[hub.Message](ctx, c, "/api/v1/messages")
	if err != nil {
		return err
	}
	stored := map[string]hub.MessageStatus{}
	for _, m := range msgs {
		stored[m.ID] = m.Status
	}
	for id, src := range s.acked {
		if st, ok := stored[id]; !ok {
			c.violate("acknowledged but not stored", fmt.Sprintf("%s %s", src, id))
		} else if st != hub.MessageAccepted {
			c.violate("acknowledged but not accepted", fmt.Sprintf("%s %s: %s", src, id, st))
		}
	}
	c.figure("webhooks sent %d (%d tries again after a failed one), acknowledged messages %d, stored messages %d",
		s.sent, s.retries, len(s.acked), len(msgs))
	if extra := len(msgs) - len(s.acked); extra > 0 {
		// A message stored whose answer was lost, and whose retry came
		// after the dedup key stopped holding (an OTP request 30 s later).
		c.figure("stored but never acknowledged: %d", extra)
	}
	c.figure("ingest failures seen by the provider side: %s", countsString(s.failures))
	for _, r := range s.refused {
		c.violate("refused", r)
	}
	if s.unacked > 0 {
		c.violate("never acknowledged", fmt.Sprintf("%d webhooks within --converge after the faults", s.unacked))
	}
	c.figure("deliberate duplicates sent %d, answered \"duplicate\": true %d", s.dupsSent, s.dupsAnswered)
	for _, d := range s.dupsStored {
		c.violate("duplicate stored as a new message", d)
	}

	// Every verification at its true final status.
	vs, err := list[hub.Verification](ctx, c, "/api/v1/verifications")
	if err != nil {
		return err
	}
	status := map[hub.VerificationKey]hub.Status{}
	for _, v := range vs {
		status[hub.VerificationKey{Source: v.Source, ProviderRef: v.ProviderRef, Level: v.Level}] = v.Status
	}
	checked := 0
	for _, j := range c.journeys {
		for k, want := range j.want {
			if s.incomplete[k] {
				continue
			}
			checked++
			if got, ok := status[k]; !ok {
				c.violate("verification missing", fmt.Sprintf("%s %s %s", k.Source, k.ProviderRef, k.Level))
			} else if got != want {
				c.violate("wrong final status", fmt.Sprintf("%s %s %s: %s, want %s", k.Source, k.ProviderRef, k.Level, got, want))
			}
		}
	}
	c.figure("verifications checked %d (stored %d; %d left out: a webhook of theirs never acknowledged)", checked, len(vs), len(s.incomplete))

	// Every event delivered to each subscribed endpoint, or dead-lettered
	// with a reason; nothing stuck.
	events, err := list[hub.Event](ctx, c, "/api/v1/events")
	if err != nil {
		return err
	}
	dels, err := list[hub.Delivery](ctx, c, "/api/v1/deliveries")
	if err != nil {
		return err
	}
	// Each verification has one verification.updated event per version:
	// 1, 2, … its version, none missing, none twice.
	versions := map[string][]int{}
	for _, ev := range events {
		var d deliveredEvent
		if ev.Type != "verification.updated" || json.Unmarshal(ev.Data, &d.Data) != nil || d.Data.Verification == nil {
			continue
		}
		versions[d.Data.Verification.ID] = append(versions[d.Data.Verification.ID], d.Data.Verification.Version)
	}
	for _, v := range vs {
		got := versions[v.ID]
		slices.Sort(got)
		want := make([]int, v.Version)
		for i := range want {
			want[i] = i + 1
		}
		if !slices.Equal(got, want) {
			c.violate("events do not match the verification's versions", fmt.Sprintf("%s (%s %s, version %d): events of versions %v", v.ID, v.Source, v.ProviderRef, v.Version, got))
		}
	}

	type epEvent struct{ endpoint, event string }
	byPair := map[epEvent]hub.Delivery{}
	now := time.Now()
	stuck := 0
	for _, d := range dels {
		byPair[epEvent{d.EndpointID, d.EventID}] = d
		if d.Status == hub.DeliveryPending && d.NextAttemptAt.Before(now.Add(-faultsLease-2*time.Second)) {
			stuck++
			c.violate("stuck delivery", fmt.Sprintf("%s to %s: due %s, %d attempts, last error %q",
				d.ID, d.EndpointID, d.NextAttemptAt.Format(time.RFC3339Nano), d.Attempts, d.LastError))
		}
	}
	known := map[string]bool{}
	delivered, dead, dups := 0, 0, 0
	for _, e := range c.endpoints {
		e.mu.Lock()
		for _, ev := range events {
			known[ev.ID] = true
			if !e.subscribed(ev.Type, ev.Source) {
				continue
			}
			if e.ok[ev.ID] > 0 {
				delivered++
				continue
			}
			d, ok := byPair[epEvent{e.id, ev.ID}]
			switch {
			case !ok:
				c.violate("event without a delivery", fmt.Sprintf("%s %s to %s", ev.Type, ev.ID, e.id))
			case d.Status == hub.DeliveryFailed && (d.LastError != "" || d.LastStatusCode != 0):
				dead++
			default:
				c.violate("event not delivered", fmt.Sprintf("%s %s to %s: delivery %s %s, %d attempts, last %d %q",
					ev.Type, ev.ID, e.id, d.ID, d.Status, d.Attempts, d.LastStatusCode, d.LastError))
			}
		}
		for _, d := range dels {
			if d.EndpointID == e.id && d.Status == hub.DeliverySucceeded && e.ok[d.EventID] == 0 {
				c.violate("succeeded without a 2xx from the endpoint", fmt.Sprintf("%s: %s to %s", d.ID, d.EventID, e.id))
			}
		}
		for id, n := range e.ok {
			dups += n - 1
			if !known[id] {
				c.violate("endpoint received an event the API does not list", fmt.Sprintf("%s at %s", id, e.id))
			}
		}
		if e.badSig > 0 {
			c.violate("bad signature", fmt.Sprintf("%d deliveries to %s", e.badSig, e.id))
		}
		for _, m := range e.misfit {
			c.violate("delivery the endpoint is not subscribed to", e.id+": "+m)
		}
		// The ordered endpoint: each verification's versions arrive in
		// order (a version again, on a retry, but never an older one).
		if e.ordered {
			for vid, vers := range e.arrivals {
				if !slices.IsSorted(vers) {
					c.violate("out of order at the ordered endpoint", fmt.Sprintf("%s: versions %v", vid, vers))
				}
			}
		}
		c.figure("endpoint %-8s answers %s", e.id, countsString(e.answers))
		e.mu.Unlock()
	}
	c.figure("events %d, deliveries %d: delivered %d, dead letters with a reason %d, stuck %d; duplicates delivered %d",
		len(events), len(dels), delivered, dead, stuck, dups)
	for _, in := range c.instances {
		c.figure("instance %s: %d starts, %d kills", in.name, in.starts, in.kills)
	}
	return nil
}

func countsString(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// report prints the campaign's figures and violations (the first ten of
// each kind).
func (c *campaign) report(w io.Writer) {
	fmt.Fprintf(w, "\n== %s: %s\n", c.store, time.Since(c.start).Round(time.Second))
	fmt.Fprintf(w, "  faults: %s\n", c.faultSummary())
	for _, s := range c.skipped {
		fmt.Fprintf(w, "  skipped: %s\n", s)
	}
	for _, f := range c.figures {
		fmt.Fprintf(w, "  %s\n", f)
	}
	if len(c.violations) == 0 {
		fmt.Fprintf(w, "  violations: none\n")
		return
	}
	for _, kind := range c.order {
		vs := c.violations[kind]
		fmt.Fprintf(w, "  VIOLATION %s: %d\n", kind, len(vs))
		for _, v := range vs[:min(len(vs), 10)] {
			fmt.Fprintf(w, "    %s\n", v)
		}
	}
}
