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
	"github.com/verihook/verihook/internal/httpapi"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/ingest"
	"github.com/verihook/verihook/internal/metrics"
	"github.com/verihook/verihook/internal/provider"
)

func runServe(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "serve", "serve [flags]")
	common := addCommonFlags(fs)
	fs.String("listen", "", "address to listen on (default 127.0.0.1:8080; env VERIHOOK_LISTEN)")
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
	<-ctx.Done()
	m.Logger.Info("shutting down")
	return m.Close()
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

	Store  hub.Store
	Worker *delivery.Worker
	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
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

	m.Store, err = openStore(ctx, m.Config, m.Getenv, m.Logger)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer func() {
		if err != nil {
			m.Store.Close()
		}
	}()
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
	svc := &ingest.Service{Store: m.Store, Providers: m.Registry, Logger: m.Logger, Wake: m.Worker.Wake,
		MissingSecret: mets.ObserveMissingSecret}
	api := &httpapi.Server{
		Store: m.Store, Receiver: ingest.Receiver{Service: svc}, Logger: m.Logger, MaxBody: m.Config.MaxBodyBytes,
		CheckURL: checkURL, Wake: m.Worker.Wake, ObserveIngest: mets.ObserveIngest, Metrics: mets.Handler(),
		EventsWithoutSecret: m.Registry.EventsWithoutSecret,
	}
	m.ln, err = net.Listen("tcp", m.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.srv = &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
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
			l.ListenDeliveries(bg, m.Worker.Wake)
		}()
	}
	m.wg.Add(3)
	go func() {
		defer m.wg.Done()
		if err := m.Worker.Run(bg); err != nil && bg.Err() == nil {
			m.Logger.Error("delivery worker", "err", err)
		}
	}()
	go func() {
		defer m.wg.Done()
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("http server", "err", err)
		}
	}()
	go func() {
		defer m.wg.Done()
		m.purgeLoop(bg)
	}()
	if len(m.Config.Sources) == 0 {
		m.Logger.Warn("no sources are configured, so every callback will get 404: declare them in a config file (--config; see verihook --help and README.md)")
	}
	m.Logger.Info("verihook serving", "addr", m.Addr(), "version", version, "data_dir", m.Config.DataDir, "sources", len(m.Config.Sources))
	return nil
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Close stops accepting requests, lets those in flight finish (up to 10 s),
// stops the delivery worker after its attempts in flight, and closes the
// store.
func (m *Main) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if m.srv != nil {
		errs = append(errs, m.srv.Shutdown(ctx))
	}
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	if m.Store != nil {
		errs = append(errs, m.Store.Close())
	}
	return errors.Join(errs...)
}

// purgeLoop deletes raw payloads older than the retention period, hourly.
func (m *Main) purgeLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := m.Store.PurgeBodies(ctx, time.Now().Add(-m.Config.Retention))
		if err != nil && ctx.Err() == nil {
			m.Logger.Error("purge payloads", "err", err)
		} else if n > 0 {
			m.Logger.Info("purged payloads past retention", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
