package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/verihook/verihook/internal/delivery"
	"github.com/verihook/verihook/internal/httpapi"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/ingest"
	"github.com/verihook/verihook/internal/metrics"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// startInProcess runs verihook's ingest path inside the harness, wired as
// cmd/verihook's serve wires it (SQLite store, ingest service, HTTP API,
// delivery worker, metrics), so that --cpuprofile sees the server's work. It
// is for profiling: the figures of record come from the child process,
// which does not share a runtime with the load generator.
func startInProcess(ctx context.Context, o serverOpts) (*target, error) {
	begin := time.Now()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	stop, err := serveInProcess(ctx, ln, o)
	if err != nil {
		ln.Close()
		return nil, err
	}
	name := "verihook (in-process)"
	if o.ceiling {
		name = "ceiling (in-process)"
	}
	return &target{name: name, url: "http://" + ln.Addr().String(), ready: time.Since(begin), stop: stop}, nil
}

// serveInProcess serves verihook on ln, wired as serve wires it, until the
// returned stop is called. With o.ceiling the store's Ingest does not
// write (see unstored).
func serveInProcess(ctx context.Context, ln net.Listener, o serverOpts) (stop func() error, err error) {
	if o.database != "" {
		return nil, errors.New("--inprocess and --ceiling support the embedded SQLite store only")
	}
	key, err := ensureKey(o.dataDir)
	if err != nil {
		return nil, err
	}
	c, err := cipherFor(key)
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, filepath.Join(o.dataDir, "verihook.db"), c)
	if err != nil {
		return nil, err
	}
	if err := provision(ctx, db, o); err != nil {
		db.Close()
		return nil, err
	}
	var st hub.Store = db
	if o.ceiling {
		st = unstored{db}
	}
	logger := slog.New(slog.DiscardHandler)
	mets := metrics.New(db.QueueStats)
	worker := &delivery.Worker{
		Store: st, Client: delivery.NewClient(true, 15*time.Second), Concurrency: 16,
		Lease: time.Minute, Logger: logger, OnAttempt: mets.ObserveAttempt,
	}
	svc := &ingest.Service{Store: st, Providers: registry(), Logger: logger, Wake: worker.Wake}
	api := &httpapi.Server{
		Store: st, Receiver: svc, Logger: logger, MaxBody: httpapi.DefaultMaxBody,
		CheckURL: func(context.Context, string) error { return nil }, Wake: worker.Wake,
		ObserveIngest: mets.ObserveIngest,
	}
	srv := &http.Server{
		Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); worker.Run(bg) }()
	go func() { defer wg.Done(); srv.Serve(ln) }()
	return func() error {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		err := srv.Shutdown(sctx)
		cancel()
		wg.Wait()
		return errors.Join(err, db.Close())
	}, nil
}

// unstored is the ceiling's store: Ingest answers as if it had stored the
// message, and writes nothing. Everything before it still runs: HTTP,
// source lookup, signature check, parsing, normalization and the dedup key.
// What it leaves out is the store's own work: sealing, the verification's
// update, the events and the durable commit.
type unstored struct{ hub.Store }

func (unstored) Ingest(_ context.Context, in hub.Ingest) (hub.IngestResult, error) {
	return hub.IngestResult{MessageID: in.Message.ID}, nil
}

// runCeilingServer is the ceiling: verihook's ingest path without its
// store's writes (see unstored), in a process of its own like the verihook
// and baseline it is compared with.
func runCeilingServer(ctx context.Context, args []string) error {
	fs := newFlagSet("ceiling-serve")
	listen := fs.String("listen", "127.0.0.1:0", "address")
	dataDir := fs.String("data-dir", "", "data dir (its SQLite database holds the sources)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" {
		return errors.New("--data-dir is required")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	stop, err := serveInProcess(ctx, ln, serverOpts{dataDir: *dataDir, ceiling: true})
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	<-ctx.Done()
	return stop()
}

// provision creates the harness's sources and, when asked, its endpoint, as
// serve does from the configuration file.
func provision(ctx context.Context, st hub.Store, o serverOpts) error {
	for _, s := range benchSources {
		if err := st.UpsertSource(ctx, hub.Source{ID: s.ID, Provider: s.Provider.Name(), Secrets: s.Secrets}); err != nil {
			return fmt.Errorf("source %s: %w", s.ID, err)
		}
	}
	if o.endpointURL == "" {
		return nil
	}
	now := time.Now().UTC()
	e := hub.Endpoint{
		ID: "bench-receiver", URL: o.endpointURL, Secret: o.endpointSecret, Enabled: true,
		EventTypes: []string{}, Sources: []string{}, CreatedAt: now, UpdatedAt: now,
	}
	if err := st.CreateEndpoint(ctx, e); err != nil && hub.ErrorCode(err) != hub.ECONFLICT {
		return fmt.Errorf("endpoint: %w", err)
	} else if err != nil {
		_, err = hub.EditEndpoint(ctx, st, e.ID, func(stored *hub.Endpoint) error {
			e.Version = stored.Version
			*stored = e
			return nil
		})
		return err
	}
	return nil
}
