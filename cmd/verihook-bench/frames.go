package main

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/ingest"
	"github.com/verihook/verihook/internal/store/sqlite"
)

// cmdFrames counts what webhooks write to SQLite's write-ahead log, B-tree by
// B-tree: what a commit writes is each page it changed, whole, so these
// counts say which table or index costs what (BENCHMARKS.md, "Where a
// webhook's log frames go").
//
// It stores --warm webhooks through ingest.Service on a new database in a
// temporary directory, with one endpoint, and delivers them (claims and
// successful attempts, nothing sent); reopens the store, so that the log
// starts empty; and holds a read transaction open on a connection of its
// own, so that no checkpoint copies the log and it never starts over. Then
// it stores --count webhooks more, reads the page number of every frame
// the log holds, and names each page's B-tree with dbstat. With
// --concurrency 1 each webhook is ingested alone, in one commit with the
// previous one's attempt, then claimed in a commit of its own: a webhook's
// whole path at a rate like 100/s. With more, that many goroutines ingest
// flat out and nothing is delivered.
func cmdFrames(ctx context.Context, args []string) error {
	fs := newFlagSet("frames")
	warm := fs.Int("warm", 2000, "webhooks stored and delivered first")
	count := fs.Int("count", 200, "webhooks measured")
	concurrency := fs.Int("concurrency", 1, "1: one webhook at a time with its delivery; more: that many ingests at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *warm < 0 || *count < 1 || *concurrency < 1 {
		return errors.New("frames: want --warm >= 0, --count >= 1, --concurrency >= 1")
	}
	dir, err := os.MkdirTemp("", "verihook-frames-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f, err := countFrames(ctx, dir, *warm, *count, *concurrency)
	if err != nil {
		return err
	}
	f.print(os.Stdout)
	return nil
}

// frameCount is what countFrames found.
type frameCount struct {
	pageSize  int
	webhooks  int
	frames    int
	distinct  int            // pages, each copied once by a checkpoint
	perBTree  map[string]int // frames by table or index
	unmatched int            // frames of pages no B-tree holds now (freed)
}

func (f frameCount) print(w io.Writer) {
	per := func(n int) float64 { return float64(n) / float64(f.webhooks) }
	fmt.Fprintf(w, "%d-byte pages, %d webhooks: %.2f frames a webhook (%.1f KiB), %.2f distinct pages\n",
		f.pageSize, f.webhooks, per(f.frames), per(f.frames)*float64(f.pageSize+walFrameHeader)/1024, per(f.distinct))
	names := make([]string, 0, len(f.perBTree))
	for name := range f.perBTree {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(f.perBTree[b], f.perBTree[a]), cmp.Compare(a, b))
	})
	for _, name := range names {
		fmt.Fprintf(w, "  %-36s %6.2f\n", name, per(f.perBTree[name]))
	}
	if f.unmatched > 0 {
		fmt.Fprintf(w, "  %-36s %6.2f\n", "(pages freed since)", per(f.unmatched))
	}
}

// The write-ahead log's layout (sqlite.org/fileformat.html): a 32-byte
// header, the page size at offset 8, then frames of a 24-byte header, the
// page number first, and the page.
const (
	walHeader      = 32
	walFrameHeader = 24
)

func countFrames(ctx context.Context, dir string, warm, count, concurrency int) (frameCount, error) {
	key, err := ensureKey(dir)
	if err != nil {
		return frameCount{}, err
	}
	c, err := cipherFor(key)
	if err != nil {
		return frameCount{}, err
	}
	path := filepath.Join(dir, "verihook.db")
	runID := newRunID()
	var (
		mu   sync.Mutex // next, from the goroutines of a flat-out run
		next int
	)
	receive := func(svc *ingest.Service) error {
		mu.Lock()
		p, err := makePayload(runID, next)
		next++
		mu.Unlock()
		if err != nil {
			return err
		}
		_, err = svc.Receive(ctx, hub.Callback{SourceID: p.source, RemoteAddr: "127.0.0.1", Header: p.header, Body: p.body})
		return err
	}

	st, svc, err := openFrames(ctx, path, c)
	if err != nil {
		return frameCount{}, err
	}
	err = func() error {
		if err := provision(ctx, st, serverOpts{endpointURL: "http://127.0.0.1:9/frames", endpointSecret: hub.NewEndpointSecret()}); err != nil {
			return err
		}
		for range warm {
			if err := receive(svc); err != nil {
				return err
			}
		}
		return deliverDue(ctx, st)
	}()
	if err := errors.Join(err, st.Close()); err != nil {
		return frameCount{}, err
	}

	// Reopened, the store starts a new log; a snapshot taken once the log
	// has a commit in it keeps every later frame there.
	if st, svc, err = openFrames(ctx, path, c); err != nil {
		return frameCount{}, err
	}
	defer st.Close()
	if err := receive(svc); err != nil {
		return frameCount{}, err
	}
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		return frameCount{}, err
	}
	defer db.Close()
	pin, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return frameCount{}, err
	}
	defer pin.Rollback()
	var n int
	if err := pin.QueryRow(`SELECT count(*) FROM sources`).Scan(&n); err != nil {
		return frameCount{}, err
	}
	if err := deliverDue(ctx, st); err != nil { // the pinning webhook's delivery
		return frameCount{}, err
	}
	log, err := os.ReadFile(path + "-wal")
	if err != nil {
		return frameCount{}, err
	}
	first := len(log) // the frames before it are the pinning webhook's

	if concurrency == 1 {
		var claims []hub.Claim
		for range count {
			var recorded sync.WaitGroup
			var recordErr error
			recorded.Go(func() { recordErr = recordAll(ctx, st, claims) })
			err := receive(svc)
			recorded.Wait()
			if err := errors.Join(err, recordErr); err != nil {
				return frameCount{}, err
			}
			if claims, err = st.ClaimDeliveries(ctx, time.Now().Add(time.Hour), 100, time.Minute); err != nil {
				return frameCount{}, err
			}
		}
	} else {
		var left atomic.Int64
		left.Store(int64(count))
		errs := make([]error, concurrency)
		var wg sync.WaitGroup
		for i := range concurrency {
			wg.Go(func() {
				for left.Add(-1) >= 0 && errs[i] == nil {
					errs[i] = receive(svc)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return frameCount{}, err
		}
	}

	if log, err = os.ReadFile(path + "-wal"); err != nil {
		return frameCount{}, err
	}
	if len(log) < walHeader {
		return frameCount{}, errors.New("frames: the log is empty")
	}
	f := frameCount{pageSize: int(binary.BigEndian.Uint32(log[8:])), webhooks: count, perBTree: map[string]int{}}
	if err := pin.Rollback(); err != nil {
		return frameCount{}, err
	}
	names := map[uint32]string{}
	rows, err := db.QueryContext(ctx, `SELECT name, pageno FROM dbstat`)
	if err != nil {
		return frameCount{}, err
	}
	for rows.Next() {
		var name string
		var page uint32
		if err := rows.Scan(&name, &page); err != nil {
			rows.Close()
			return frameCount{}, err
		}
		names[page] = name
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return frameCount{}, err
	}
	seen := map[uint32]bool{}
	size := walFrameHeader + f.pageSize
	for off := max(first, walHeader); off+size <= len(log); off += size {
		page := binary.BigEndian.Uint32(log[off:])
		f.frames++
		if !seen[page] {
			seen[page] = true
			f.distinct++
		}
		if name, ok := names[page]; ok {
			f.perBTree[name]++
		} else {
			f.unmatched++
		}
	}
	return f, nil
}

// openFrames opens the SQLite store at path and an ingest.Service on it.
func openFrames(ctx context.Context, path string, c *hub.Cipher) (*sqlite.Store, *ingest.Service, error) {
	st, err := sqlite.Open(ctx, path, c)
	if err != nil {
		return nil, nil, err
	}
	return st, &ingest.Service{Store: st, Providers: registry(), Logger: slog.New(slog.DiscardHandler)}, nil
}

// deliverDue claims every delivery due and records a successful attempt
// of each.
func deliverDue(ctx context.Context, st *sqlite.Store) error {
	for {
		claims, err := st.ClaimDeliveries(ctx, time.Now().Add(time.Hour), 100, time.Minute)
		if err != nil || len(claims) == 0 {
			return err
		}
		if err := recordAll(ctx, st, claims); err != nil {
			return err
		}
	}
}

// recordAll records a successful attempt of every claim at once, so that
// they share commits, as a delivery worker's do.
func recordAll(ctx context.Context, st *sqlite.Store, claims []hub.Claim) error {
	errs := make([]error, len(claims))
	var wg sync.WaitGroup
	for i, c := range claims {
		wg.Go(func() {
			errs[i] = st.RecordAttempt(ctx, hub.AttemptRecord{DeliveryID: c.Delivery.ID, Lease: c.Lease,
				Attempt: hub.Attempt{At: time.Now(), StatusCode: 200, LatencyMS: 3}, Status: hub.DeliverySucceeded})
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
