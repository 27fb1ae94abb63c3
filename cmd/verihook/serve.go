package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/delivery"
	"github.com/verihook/verihook/internal/dispatch"
	"github.com/verihook/verihook/internal/httpapi"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/ingest"
	"github.com/verihook/verihook/internal/metrics"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/reconcile"
)

func runServe(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "serve", "serve [flags]")
	common := addCommonFlags(fs)
	fs.String("listen", "", "address to listen on (default 127.0.0.1:8080; env VERIHOOK_LISTEN)")
	fs.String("metrics-listen", "", "address of the Prometheus /metrics listener, empty for none (default 127.0.0.1:9464; env VERIHOOK_METRICS_LISTEN)")
	fs.Bool("allow-private-endpoints", false, "let endpoints point at loopback and private addresses (development; env VERIHOOK_ALLOW_PRIVATE_ENDPOINTS)")
	fs.Int64("max-body-bytes", 0, "largest ingest body accepted (default 1 MiB)")
	fs.String("log-level", "", "debug, info, warn or error (default info; env VERIHOOK_LOG_LEVEL)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := common.load(fs, e.getenv, registry())
	if err != nil {
		return err
	}
	m := &Main{Config: cfg, Getenv: e.getenv, LogOutput: e.stderr}
	if err := m.Run(ctx); err != nil {
		return err
	}
	err = m.Wait(ctx)
	if err != nil {
		m.Logger.Error("cannot serve: shutting down", "err", err)
	} else {
		m.Logger.Info("shutting down")
	}
	return errors.Join(err, m.Close())
}

// Main is the running program: the store, the ingest service and the HTTP
// server, wired. End-to-end tests start it on ":0" with a temp data dir.
type Main struct {
	Config Config
	// Getenv reads the environment (secrets written as ${VAR}, the key);
	// nil means no environment.
	Getenv func(string) string
	// LogOutput receives the log; nil discards it.
	LogOutput io.Writer
	Logger    *slog.Logger
	Registry  provider.Registry
	// ACMEClient, when set, is the HTTP client that speaks to the ACME
	// server (tests point it at their own).
	ACMEClient *http.Client
	// Now is the clock that stamps received messages; nil means time.Now
	// (tests move it to play retry windows without waiting).
	Now func() time.Time

	// Dispatcher sends the OTPs and session links of sources with dispatch.
	Dispatcher *dispatch.Worker

	Store  hub.Store
	Worker *delivery.Worker
	Ingest *ingest.Service
	// Reconciler polls providers about stuck verifications.
	Reconciler *reconcile.Worker
	servers    []*server  // the ingest listener, then the metrics one if any
	failed     chan error // the first listener that stopped serving
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	// resealed is closed when the background re-seal of a key rotation
	// has ended (at once when no rotation is under way).
	resealed chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// server is one of the program's HTTP listeners.
type server struct {
	name string // its configuration key, for messages
	ln   net.Listener
	srv  *http.Server
}

// Run opens the store, provisions the configured sources and starts serving
// in the background. Call Close to stop.
func (m *Main) Run(ctx context.Context) (err error) {
	if m.Getenv == nil {
		m.Getenv = func(string) string { return "" }
	}
	if m.Registry == nil {
		m.Registry = registry()
	}
	if m.LogOutput == nil {
		m.LogOutput = io.Discard
	}
	m.Logger = newLogger(m.LogOutput, m.Config.LogLevel)
	if err := m.Config.validate(m.Getenv, m.Registry); err != nil {
		return err
	}

	var cipher *hub.Cipher
	m.Store, cipher, err = openStoreCipher(ctx, m.Config, m.Getenv, m.Logger)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if err != nil {
			m.Store.Close()
		}
	}()
	if hint := rebuildHint(m.Store); hint != "" {
		m.Logger.Info(hint)
	}
	for _, sc := range m.Config.Sources {
		src, err := sc.source(m.Getenv)
		if err != nil {
			return err
		}
		if err := m.Store.UpsertSource(ctx, src); err != nil {
			return fmt.Errorf("provision source %s: %w", src.ID, err)
		}
	}
	allowPrivate := m.Config.AllowPrivateEndpoints
	checkURL := func(ctx context.Context, u string) error {
		return delivery.CheckURL(ctx, u, allowPrivate, net.DefaultResolver)
	}
	if err := provisionEndpoints(ctx, m.Store, m.Config, m.Getenv, checkURL, m.Logger); err != nil {
		return err
	}

	m.failed = make(chan error, 1)
	defer func() {
		if err != nil {
			for _, sv := range m.servers {
				sv.ln.Close()
			}
		}
	}()
	mets := metrics.New(m.Store.QueueStats)
	m.Worker = &delivery.Worker{
		Store:       m.Store,
		Client:      delivery.NewClient(allowPrivate, m.Config.DeliveryTimeout),
		Schedule:    m.Config.RetrySchedule,
		Concurrency: m.Config.DeliveryConcurrency,
		Lease:       m.Config.DeliveryLease,
		Logger:      m.Logger,
		OnAttempt:   mets.ObserveAttempt,
	}
	if m.Dispatcher, err = m.newDispatcher(ctx, mets); err != nil {
		return err
	}
	m.Ingest = &ingest.Service{Store: m.Store, Providers: m.Registry, Logger: m.Logger, Wake: m.Worker.Wake,
		MissingSecret: mets.ObserveMissingSecret, Now: m.Now, Dispatch: m.dispatchFor, WakeDispatch: m.Dispatcher.Wake}
	m.Reconciler = newReconciler(m.Config, m.Ingest)
	mets.WatchBacklog(func(ctx context.Context) (hub.Backlog, error) {
		return backlog(ctx, m.Store, m.Reconciler.Stuck(time.Now()))
	})
	api := &httpapi.Server{
		Store: m.Store, Receiver: m.Ingest, Logger: m.Logger,
		MaxBody: m.Config.MaxBodyBytes, MaxInflight: m.Config.MaxInflightBytes,
		CheckURL: checkURL, Wake: m.Worker.Wake, ObserveIngest: mets.ObserveIngest,
		EventsWithoutSecret: m.Registry.EventsWithoutSecret,
		CheckSecrets:        m.Registry.CheckSecrets, SendTest: m.Worker.SendTest, SourceChanged: m.Ingest.Forget,
		Providers: m.Registry.Names(),
		Recovery:  recovery{Worker: m.Reconciler, svc: m.Ingest},
	}
	api.TrustedProxies, _ = httpapi.ParseTrustedProxies(m.Config.TrustedProxies) // validated
	if err := m.listen("listen", m.Config.Listen, api.Handler()); err != nil {
		return err
	}
	if m.Config.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", mets.Handler())
		if err := m.listen("metrics_listen", m.Config.MetricsListen, mux); err != nil {
			return err
		}
	}
	if err := m.startTLS(api.Handler()); err != nil {
		return err
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	// With PostgreSQL, a delivery created on any instance wakes every
	// instance's worker through LISTEN/NOTIFY.
	if l, ok := m.Store.(interface {
		ListenDeliveries(context.Context, func()) error
	}); ok {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			l.ListenDeliveries(bg, func() { m.Worker.Wake(); m.Dispatcher.Wake() })
		}()
	}
	m.wg.Go(func() {
		if err := m.Worker.Run(bg); err != nil && bg.Err() == nil {
			m.Logger.Error("delivery worker", "err", err)
		}
	})
	m.wg.Go(func() {
		if err := m.Dispatcher.Run(bg); err != nil && bg.Err() == nil {
			m.Logger.Error("dispatch worker", "err", err)
		}
	})
	for _, sv := range m.servers {
		m.wg.Go(func() {
			// Serve returns only when the server is shut down or its
			// listener fails; the second ends the program (see Wait).
			if err := sv.srv.Serve(sv.ln); !errors.Is(err, http.ErrServerClosed) {
				select {
				case m.failed <- fmt.Errorf("%s %s: %w", sv.name, sv.ln.Addr(), err):
				default: // another listener failed first
				}
			}
		})
	}
	m.wg.Go(func() { m.purgeLoop(bg) })
	m.wg.Go(func() { m.sampleLoop(bg) })
	m.wg.Go(func() { m.Reconciler.Run(bg) })
	m.resealed = make(chan struct{})
	if keys := cipher.KeyIDs(); len(keys) > 1 {
		m.wg.Go(func() { m.reseal(bg, keys) })
	} else {
		close(m.resealed)
	}
	if len(m.Config.Sources) == 0 {
		m.Logger.Warn("no sources are configured, so every callback will get 404: run verihook init to write a config, then verihook serve --config verihook.yaml (see verihook --help)")
	}
	m.Logger.Info("verihook serving", "addr", m.Addr(), "metrics", m.MetricsAddr(), "version", version, "data_dir", m.Config.DataDir, "sources", len(m.Config.Sources))
	return nil
}

// listen opens the listener that the configuration key name sets to addr,
// so that a port already taken stops start-up with a message naming it.
func (m *Main) listen(name, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", name, addr, err)
	}
	m.servers = append(m.servers, &server{name: name, ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
		MaxHeaderBytes:    64 << 10, // not 1 MiB: a connection's headers are held in memory
	}})
	return nil
}

// newDispatcher readies the dispatch of every source configured with it:
// its SMTP host and gateway URL pass the SSRF guard unless private
// endpoints are allowed, and its connections go through the guard's
// dialer. The worker runs whether or not a source has dispatch, so that
// dispatches left by an earlier configuration end (failed) rather than wait.
func (m *Main) newDispatcher(ctx context.Context, mets *metrics.Metrics) (*dispatch.Worker, error) {
	allowPrivate := m.Config.AllowPrivateEndpoints
	nw := dispatch.Network{
		Dial:      delivery.NewDialer(allowPrivate, dispatch.DefaultTimeout).DialContext,
		DialLocal: (&net.Dialer{Timeout: dispatch.DefaultTimeout}).DialContext, // tls none: loopback only, by validation
		Client:    delivery.NewClient(allowPrivate, 5*time.Minute),             // each attempt's context sets its own timeout
	}
	sources := map[string]*dispatch.Source{}
	for i, sc := range m.Config.Sources {
		if sc.Dispatch == nil {
			continue
		}
		field := fmt.Sprintf("config: sources[%d].dispatch", i)
		if !allowPrivate {
			err := sc.Dispatch.CheckHosts(func(u string) error { return delivery.CheckURL(ctx, u, false, net.DefaultResolver) })
			if err != nil {
				return nil, fmt.Errorf("%s.%w", field, err)
			}
		}
		src, err := dispatch.NewSource(*sc.Dispatch, nw, time.Now)
		if err != nil {
			return nil, fmt.Errorf("%s.%w", field, err)
		}
		sources[sc.ID] = src
	}
	return &dispatch.Worker{
		Store: m.Store, Sources: sources, Lease: m.Config.DispatchLease, Logger: m.Logger, Now: m.Now,
		OnOutcome: mets.ObserveDispatch, OnEnded: m.Worker.Wake,
		// The code, link and recipient of a final dispatch are of no more
		// use: the event that carried them keeps its redacted form only,
		// and the message that asked for it its preview only.
		Purge: func(ctx context.Context, eventIDs []string) error {
			p, errs := hub.Purge{Events: eventIDs}, []error(nil)
			for _, id := range eventIDs {
				ev, err := m.Store.Event(ctx, id)
				if err != nil {
					errs = append(errs, err) // its event is purged all the same
					continue
				}
				if ev.MessageID != "" {
					p.Messages = append(p.Messages, ev.MessageID)
				}
			}
			_, err := m.Store.Purge(ctx, p)
			return errors.Join(append(errs, err)...)
		},
	}, nil
}

// dispatchFor is the ingest service's Dispatch: the dispatch of an OTP or
// session-link event of a source with dispatch configured.
func (m *Main) dispatchFor(ev hub.Event) (hub.Dispatch, bool) {
	src := m.Dispatcher.Sources[ev.Source]
	if src == nil {
		return hub.Dispatch{}, false
	}
	return hub.DispatchFor(ev, src.OTPTTL())
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.servers[0].ln.Addr().String() }

// MetricsAddr is the address of the metrics listener, "" when there is none.
func (m *Main) MetricsAddr() string { return m.addrOf("metrics_listen") }

// addrOf is the address of the listener the configuration key name sets,
// "" when there is none.
func (m *Main) addrOf(name string) string {
	for _, sv := range m.servers {
		if sv.name == name {
			return sv.ln.Addr().String()
		}
	}
	return ""
}

// Wait blocks until ctx ends (nil) or the program can no longer serve: one
// of its listeners failed (its error). Either way, call Close next.
func (m *Main) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.failed:
		return err
	}
}

// Close stops the program within Config.ShutdownTimeout, as a whole: the
// listeners stop accepting and let the requests in flight finish while the
// delivery worker stops claiming and finishes its attempts in flight, all
// within three quarters of it; then the store closes, within the rest. What
// is not done in time is cut short (connections closed, the store closed
// under the worker, whose unrecorded attempts are sent again once their
// lease ends), and the error says what. It is safe to call more than once.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Main) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	// The store keeps a quarter for itself: closing commits what is queued
	// and checkpoints SQLite's WAL, and should not go without because a
	// request or an attempt took all the time.
	drain, cancelDrain := context.WithTimeout(ctx, m.Config.ShutdownTimeout*3/4)
	defer cancelDrain()
	if m.cancel != nil {
		m.cancel()
	}
	errs := make([]error, len(m.servers))
	var shut sync.WaitGroup
	for i, sv := range m.servers {
		shut.Go(func() {
			if err := sv.srv.Shutdown(drain); err != nil {
				sv.srv.Close()
				errs[i] = fmt.Errorf("%s: requests in flight cut short: %w", sv.name, err)
			}
		})
	}
	shut.Wait()
	if m.Ingest != nil {
		errs = append(errs, m.Ingest.FlushRejections(drain))
	}
	late := func(what string) error {
		return fmt.Errorf("%s in time (shutdown_timeout %s)", what, m.Config.ShutdownTimeout)
	}
	errs = append(errs, within(drain, func() error { m.wg.Wait(); return nil }, late("background work (deliveries, purge) did not stop")))
	if m.Store != nil {
		errs = append(errs, within(ctx, m.Store.Close, late("the store did not close")))
	}
	return errors.Join(errs...)
}

// within runs fn and returns its error, or timeout if ctx ends first (fn
// then goes on in the background).
func within(ctx context.Context, fn func() error, timeout error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return timeout
	}
}

// purgeLoop purges personal data past retention (see purge), at start-up
// and hourly.
func (m *Main) purgeLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		m.purge(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleLoop samples the outbox for the overview's charts
// (hub.SampleQueue) at start-up and every 30 seconds, so that no minute
// goes without a sample; the store keeps the first of each minute, whichever
// instance took it.
func (m *Main) sampleLoop(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if err := hub.SampleQueue(ctx, m.Store, time.Now().UTC()); err != nil && ctx.Err() == nil {
			m.Logger.Error("sample the delivery queue", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purge purges, as of now, what is older than retention, the data of OTP
// and session-link events older than otp_retention and the overview's
// counters older than httpapi.CountersKept, and logs what it did: counts
// only.
func (m *Main) purge(ctx context.Context, now time.Time) {
	res, err := m.Store.Purge(ctx, hub.Purge{
		Before:    now.Add(-m.Config.Retention),
		OTPBefore: now.Add(-m.Config.OTPRetention),
		// The overview's counters, which would otherwise grow forever.
		CountersBefore: now.Add(-httpapi.CountersKept),
	})
	if err != nil && ctx.Err() == nil {
		m.Logger.Error("purge personal data", "err", err)
	}
	if res.Any() {
		m.Logger.Info("purged personal data past retention", "bodies", res.Bodies, "events", res.Events,
			"attempts", res.Attempts, "rejections", res.Rejections, "counters", res.Counters)
	}
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
