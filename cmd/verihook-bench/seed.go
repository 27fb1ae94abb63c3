package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/ingest"
	"github.com/verihook/verihook/internal/store/postgres"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// cmdSeed fills a data dir with stored messages for the scale tests.
//
// --via store (the default) runs each webhook through the same code the
// server runs for POST /ingest/{source} minus HTTP: signed payloads from the
// provider packages, ingest.Service.Receive (verify, parse, normalize, seal,
// dedupe) and the store's durable Ingest (SQLite in the data dir, or
// PostgreSQL at --database, sealed with the data dir's key, which run and
// startup then pass to verihook), from many goroutines at once. --via http
// starts verihook on the data dir (or --database) and POSTs them, flat out.
func cmdSeed(ctx context.Context, args []string) error {
	fs := newFlagSet("seed")
	dataDir := fs.String("data-dir", "", "data dir to fill (created; its verihook.key is created if missing)")
	database := fs.String("database", "", "postgres:// URL of the database to fill (default: SQLite in the data dir)")
	count := fs.Int("count", 1000000, "messages to store")
	workers := fs.Int("workers", 64, "concurrent ingests (connections with --via http)")
	via := fs.String("via", "store", "store: ingest.Service on the store, in this process; http: through a started verihook")
	bin := fs.String("bin", "", "with --via http: verihook binary (default: go build ./cmd/verihook)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" {
		return errors.New("seed: --data-dir is required")
	}
	switch *via {
	case "store":
		return seedStore(ctx, *dataDir, *database, *count, *workers)
	case "http":
		return seedHTTP(ctx, *dataDir, *database, *bin, *count, *workers)
	}
	return fmt.Errorf("seed: --via %q: want store or http", *via)
}

func seedStore(ctx context.Context, dataDir, database string, count, workers int) error {
	key, err := ensureKey(dataDir)
	if err != nil {
		return err
	}
	c, err := cipherFor(key)
	if err != nil {
		return err
	}
	var st interface {
		hub.Store
		Close() error
	}
	kind := "the SQLite store"
	if database != "" {
		kind = "the PostgreSQL store"
		st, err = postgres.Open(ctx, database, c, postgres.WithMaxConns(int32(workers)))
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(dataDir, "verihook.db"), c)
	}
	if err != nil {
		return err
	}
	if err := provision(ctx, st, serverOpts{}); err != nil {
		st.Close()
		return err
	}
	svc := &ingest.Service{Store: st, Providers: registry(), Logger: slog.New(slog.DiscardHandler)}
	runID := newRunID()
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		errMu      sync.Mutex
		firstErr   error
	)
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	start := time.Now()
	stopProgress := progress(start, &done, count)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				p, err := makePayload(runID, i)
				if err != nil {
					fail(err)
					return
				}
				res, err := svc.Receive(ctx, hub.Callback{SourceID: p.source, RemoteAddr: "127.0.0.1", Header: p.header, Body: p.body})
				if err != nil {
					fail(fmt.Errorf("ingest %s: %w", p.ref, err))
					return
				}
				if res.Duplicate || res.Status != hub.MessageAccepted {
					fail(fmt.Errorf("ingest %s: status %s, duplicate %v", p.ref, res.Status, res.Duplicate))
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	stopProgress()
	elapsed := time.Since(start)
	closeStart := time.Now()
	if err := st.Close(); err != nil {
		return err
	}
	fmt.Printf("seeded %d messages in %s (%.0f/s) through ingest.Service and %s; close %s; data dir %s\n",
		done.Load(), elapsed.Round(time.Second), float64(done.Load())/elapsed.Seconds(), kind,
		time.Since(closeStart).Round(time.Millisecond), mib(dirSize(dataDir)))
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func seedHTTP(ctx context.Context, dataDir, database, bin string, count, conns int) error {
	tmp, err := os.MkdirTemp("", "verihook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		if bin, err = buildVerihook(tmp); err != nil {
			return err
		}
	}
	t, err := startVerihook(ctx, serverOpts{bin: bin, dataDir: dataDir, database: database})
	if err != nil {
		return err
	}
	defer t.close()
	runID := newRunID()
	start := time.Now()
	var done atomic.Int64
	stopProgress := progress(start, &done, count)
	defer stopProgress()
	const chunk = 100000
	errs := map[string]int{}
	for first := 0; first < count && ctx.Err() == nil; first += chunk {
		payloads, err := makePayloads(runID, first, min(chunk, count-first))
		if err != nil {
			return err
		}
		res := drive(ctx, loadOpts{base: t.url, conns: conns, duration: 24 * time.Hour, verihook: true}, payloads)
		done.Add(int64(res.OK))
		for k, v := range res.Errors {
			errs[k] += v
		}
	}
	elapsed := time.Since(start)
	fmt.Printf("seeded %d messages in %s (%.0f/s) over HTTP; errors: %s\n",
		done.Load(), elapsed.Round(time.Second), float64(done.Load())/elapsed.Seconds(), errorsString(errs))
	return ctx.Err()
}

// progress prints the count every 10 seconds until stopped.
func progress(start time.Time, done *atomic.Int64, total int) (stop func()) {
	quit := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				n := done.Load()
				el := time.Since(start)
				fmt.Printf("  %d/%d in %s (%.0f/s)\n", n, total, el.Round(time.Second), float64(n)/el.Seconds())
			}
		}
	}()
	return func() { once.Do(func() { close(quit) }) }
}

func cmdStartup(ctx context.Context, args []string) error {
	fs := newFlagSet("startup")
	dataDir := fs.String("data-dir", "", "data dir to start on")
	database := fs.String("database", "", "postgres:// URL passed to verihook")
	bin := fs.String("bin", "", "verihook binary (default: go build ./cmd/verihook)")
	repeat := fs.Int("repeat", 3, "starts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" {
		return errors.New("startup: --data-dir is required")
	}
	tmp, err := os.MkdirTemp("", "verihook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *bin == "" {
		if *bin, err = buildVerihook(tmp); err != nil {
			return err
		}
	}
	fmt.Printf("startup on %s (%s)\n", *dataDir, mib(dirSize(*dataDir)))
	var xs []float64
	for i := range *repeat {
		t, err := startVerihook(ctx, serverOpts{bin: *bin, dataDir: *dataDir, database: *database})
		if err != nil {
			return err
		}
		_, rss, _ := t.rss()
		if err := t.close(); err != nil {
			return err
		}
		fmt.Printf("  start %d: ready %s after exec; RSS when ready %s\n", i+1, t.ready.Round(time.Millisecond), mib(rss))
		xs = append(xs, float64(t.ready)/1e6)
	}
	fmt.Printf("  time to /readyz: %s\n", spreadOf(xs).format("ms", 0))
	return nil
}
