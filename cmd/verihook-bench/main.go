// Command verihook-bench is verihook's load harness. It generates unique,
// correctly signed webhooks for every provider with the provider packages'
// own Build and Sign, drives a verihook (a child `verihook serve` it builds
// and starts, or --target) flat out with N connections or at a fixed rate,
// and reports throughput, acknowledgement latency percentiles, errors by
// kind, the server's resident memory and, with --endpoint, end-to-end
// latency from the provider's POST to the event's arrival at an endpoint. In
// the same run it drives a bare net/http baseline with the same load and
// payloads and reports verihook's throughput as a share of it; --ceiling
// drives verihook's ingest path without the store's writes instead, the most
// any store could leave of the baseline.
//
//	go run ./cmd/verihook-bench run --conns 64 --duration 20s
//	go run ./cmd/verihook-bench run --rate 1000 --duration 20s
//	go run ./cmd/verihook-bench run --rate 500 --duration 20s --endpoint
//	go run ./cmd/verihook-bench run --ceiling --conns 64 --duration 10s --repeat 5
//	go run ./cmd/verihook-bench seed --data-dir ./benchdata/1m --count 1000000
//	go run ./cmd/verihook-bench run --data-dir ./benchdata/1m --conns 64 --duration 20s
//	go run ./cmd/verihook-bench startup --data-dir ./benchdata/1m
//	go run ./cmd/verihook-bench dashboard --data-dir ./benchdata/1m
//	go run ./cmd/verihook-bench dispatch --rate 50 --duration 20s
//	go run ./cmd/verihook-bench faults --duration 60s --rate 20
//	go run ./cmd/verihook-bench flood --requests 100000 --slow-conns 300
//	go run ./cmd/verihook-bench frames --concurrency 64 --count 8000
//
// Traffic goes to 127.0.0.1 only. See BENCHMARKS.md for the figures.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

const usage = `verihook-bench: load harness for verihook (loopback only)

Commands:
  run             drive a verihook (started here, or --target) and the bare baseline; report
  seed            fill a data dir with N stored messages, for the scale tests
  dispatch        latency from Identomat's OTP callback to an SMTP server accepting the e-mail
  startup         time from process start to /readyz on a data dir
  faults          a fault campaign: instances killed, PostgreSQL restarted and cut off, a full disk,
                  failing endpoints; checks that nothing is lost, stuck or wrong
  dashboard       the latency of every dashboard page on a data dir
  flood           what refused requests cost: data dir and log growth, memory under slow bodies
  frames          what webhooks write to SQLite's write-ahead log, B-tree by B-tree
  config          print the YAML config a --target verihook needs (the harness's sources and secrets)
  baseline-serve  the bare net/http baseline server (started by run)
  ceiling-serve   verihook's ingest path without the store's writes (started by run --ceiling)

Run "verihook-bench COMMAND --help" for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "run":
		err = cmdRun(ctx, args)
	case "seed":
		err = cmdSeed(ctx, args)
	case "dispatch":
		err = cmdDispatch(ctx, args)
	case "startup":
		err = cmdStartup(ctx, args)
	case "faults":
		err = cmdFaults(ctx, args)
	case "dashboard":
		err = cmdDashboard(ctx, args)
	case "flood":
		err = cmdFlood(ctx, args)
	case "frames":
		err = cmdFrames(ctx, args)
	case "config":
		err = cmdConfig(args)
	case "baseline-serve":
		err = runBaselineServer(args)
	case "ceiling-serve":
		err = runCeilingServer(ctx, args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "verihook-bench:", err)
		os.Exit(1)
	}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return fs
}

func notifySignals(c chan<- os.Signal) { signal.Notify(c, os.Interrupt, syscall.SIGTERM) }

// runRecord is one repetition of run, for --json.
type runRecord struct {
	Baseline     *loadResult `json:"baseline,omitempty"`
	BaselineRSS  int64       `json:"baseline_rss_peak,omitempty"`
	Verihook     loadResult  `json:"verihook"`
	Ratio        float64     `json:"ratio,omitempty"`
	RSSPeak      int64       `json:"rss_peak,omitempty"`
	RSSFinal     int64       `json:"rss_final,omitempty"`
	RSSHWM       int64       `json:"rss_hwm,omitempty"`
	Ready        string      `json:"ready,omitempty"`
	EndToEnd     *e2eResult  `json:"end_to_end,omitempty"`
	DataDirBytes int64       `json:"data_dir_bytes,omitempty"`
	// WrittenPerOK is the bytes the server wrote to storage during the
	// load, per acknowledged webhook.
	WrittenPerOK float64 `json:"written_per_ok,omitempty"`
	// WALSyncsPerOK and WALWritesPerOK are the PostgreSQL server's WAL
	// flushes and writes during the load (pg_stat_wal, the whole server's),
	// per acknowledged webhook.
	WALSyncsPerOK  float64 `json:"wal_syncs_per_ok,omitempty"`
	WALWritesPerOK float64 `json:"wal_writes_per_ok,omitempty"`
	// WALBytesPerOK is the WAL the PostgreSQL server generated during the
	// load (pg_stat_wal.wal_bytes, the whole server's), per acknowledged
	// webhook.
	WALBytesPerOK float64 `json:"wal_bytes_per_ok,omitempty"`
	// StoredPerMessage is the size of verihook's tables, indexes and TOAST
	// in its PostgreSQL database after the run, per stored message, and
	// SealedPerMessage that of the sealed bodies and event data they hold.
	StoredPerMessage float64 `json:"stored_per_message,omitempty"`
	SealedPerMessage float64 `json:"sealed_per_message,omitempty"`
	// CPUPerOK is the CPU time the started server used during the load, and
	// DBCPUPerOK that of the PostgreSQL backends serving its database, per
	// acknowledged webhook (on a shared machine, steadier than throughput).
	CPUPerOK   time.Duration `json:"cpu_per_ok,omitempty"`
	DBCPUPerOK time.Duration `json:"db_cpu_per_ok,omitempty"`
	// CommitsPerOK is how many transactions its database committed from
	// the start of the load until verihook stopped, per acknowledged
	// webhook: the most WAL flushes verihook can have caused.
	CommitsPerOK float64 `json:"commits_per_ok,omitempty"`
}

func cmdRun(ctx context.Context, args []string) error {
	fs := newFlagSet("run")
	targetURL := fs.String("target", "", "drive this running verihook (configured with `verihook-bench config`) instead of starting one")
	bin := fs.String("bin", "", "verihook binary to start (default: go build ./cmd/verihook into a temp dir)")
	dataDir := fs.String("data-dir", "", "data dir of the started verihook, kept (default: a fresh temp dir per repetition, removed)")
	database := fs.String("database", "", "postgres:// URL passed to the started verihook (default: embedded SQLite)")
	freshDB := fs.Bool("fresh-database", false, "with --database: create a new database on that server per repetition (psql) and drop it after")
	conns := fs.Int("conns", 64, "connections (requests in flight at most)")
	rate := fs.Float64("rate", 0, "requests per second, open loop; 0: flat out")
	duration := fs.Duration("duration", 20*time.Second, "how long to send")
	requests := fs.Int("requests", 0, "payloads prepared, the most sent (default: rate×duration, or 200000 flat out)")
	baseline := fs.Bool("baseline", true, "also drive the bare net/http baseline with the same load and payloads")
	endpoint := fs.Bool("endpoint", false, "configure an endpoint on a receiver here and measure end-to-end latency")
	verifySig := fs.Bool("verify-signatures", false, "with --endpoint: the receiver verifies each delivery's Standard Webhooks signature")
	drain := fs.Duration("drain", 30*time.Second, "with --endpoint: how long to wait for the last deliveries")
	repeat := fs.Int("repeat", 1, "repetitions; the summary gives the median and the range")
	inprocess := fs.Bool("inprocess", false, "run verihook inside the harness (for --cpuprofile) instead of as a child process")
	cpuprofile := fs.String("cpuprofile", "", "with --inprocess: write a CPU profile of the verihook runs to this file")
	ceiling := fs.Bool("ceiling", false, "drive verihook with its store's writes left out (HTTP, verify, parse and normalize only): the most any store could leave")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" && !*inprocess {
		return errors.New("--cpuprofile needs --inprocess (the child process has no profiler)")
	}
	if *ceiling && (*targetURL != "" || *database != "" || *endpoint) {
		return errors.New("--ceiling starts its own SQLite-backed server; it does not go with --target, --database or --endpoint")
	}
	if *targetURL != "" {
		if u := strings.TrimPrefix(*targetURL, "http://"); !strings.HasPrefix(u, "127.0.0.1:") && !strings.HasPrefix(u, "localhost:") {
			return errors.New("--target: the harness only drives http://127.0.0.1:PORT")
		}
		if *endpoint {
			return errors.New("--endpoint needs a verihook started by the harness (it configures the endpoint)")
		}
	}
	if *conns < 1 || *repeat < 1 {
		return errors.New("--conns and --repeat must be at least 1")
	}
	n := *requests
	if n == 0 {
		n = 200000
		if *rate > 0 {
			n = int(*rate * duration.Seconds())
		}
	}

	tmp, err := os.MkdirTemp("", "verihook-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if *targetURL == "" && !*inprocess && !*ceiling && *bin == "" {
		if *bin, err = buildVerihook(tmp); err != nil {
			return err
		}
	}
	var recv *receiver
	if *endpoint {
		recv = newReceiver(*verifySig)
		if err := recv.start(); err != nil {
			return err
		}
		defer recv.close()
	}
	mode := fmt.Sprintf("flat out, %d connections", *conns)
	if *rate > 0 {
		mode = fmt.Sprintf("%.0f/s open loop, up to %d in flight", *rate, *conns)
	}
	fmt.Printf("verihook-bench run: %s, %s per run, %d repetition(s)\n", mode, *duration, *repeat)

	var prof *os.File
	if *cpuprofile != "" {
		if prof, err = os.Create(*cpuprofile); err != nil {
			return err
		}
		defer prof.Close()
	}

	label := "verihook"
	if *ceiling {
		label = "ceiling"
	}
	var records []runRecord
	for r := range *repeat {
		payloads, err := makePayloads(newRunID(), 0, n)
		if err != nil {
			return err
		}
		if r == 0 {
			fmt.Printf("payloads:%s\n", mixSummary(payloads))
		}
		fmt.Printf("run %d/%d\n", r+1, *repeat)
		var rec runRecord
		lo := loadOpts{conns: *conns, rate: *rate, duration: *duration}

		if *baseline {
			bt, err := startBaseline(ctx)
			if err != nil {
				return fmt.Errorf("baseline: %w", err)
			}
			lo.base, lo.verihook, lo.cycle = bt.url, false, true
			res := drive(ctx, lo, payloads)
			peak, _, _ := bt.rss()
			bt.close()
			rec.Baseline, rec.BaselineRSS = &res, peak
			fmt.Printf("  baseline  %s; RSS peak %s\n", res.line(), mib(peak))
			time.Sleep(time.Second)
		}

		dir := *dataDir
		if dir == "" {
			dir = filepath.Join(tmp, fmt.Sprintf("data-%d", r))
		}
		db := *database
		drop := func() {}
		if db != "" && *freshDB {
			if db, drop, err = freshDatabase(db); err != nil {
				return err
			}
		}
		so := serverOpts{bin: *bin, dataDir: dir, database: db, ceiling: *ceiling}
		if recv != nil {
			so.endpointURL, so.endpointSecret = recv.url, recv.secret
			recv.reset(payloads)
			lo.onStart = recv.started
		}
		var t *target
		switch {
		case *targetURL != "":
			t = &target{name: "verihook (target)", url: strings.TrimSuffix(*targetURL, "/")}
		case *inprocess:
			t, err = startInProcess(ctx, so)
		case *ceiling:
			t, err = startCeiling(ctx, so)
		default:
			t, err = startVerihook(ctx, so)
		}
		if err != nil {
			drop()
			return err
		}
		if t.ready > 0 {
			rec.Ready = t.ready.String()
		}
		t.resetRSS()
		if prof != nil {
			pprof.StartCPUProfile(prof)
		}
		lo.base, lo.verihook, lo.cycle = t.url, true, false
		w0 := t.writeBytes()
		wal0, walOK := walStats(db)
		cpu0, db0, commits0 := t.cpuTime(), backendCPU(db), dbCommits(db)
		res := drive(ctx, lo, payloads)
		if cpu1 := t.cpuTime(); cpu0 >= 0 && cpu1 >= cpu0 && res.OK > 0 {
			rec.CPUPerOK = (cpu1 - cpu0) / time.Duration(res.OK)
		}
		if db1 := backendCPU(db); len(db1) > 0 && res.OK > 0 {
			var used time.Duration
			for pid, d := range db1 {
				used += d - db0[pid] // a backend started during the load counts from 0
			}
			rec.DBCPUPerOK = used / time.Duration(res.OK)
		}
		rec.Verihook = res
		if w1 := t.writeBytes(); w0 >= 0 && w1 >= w0 && res.OK > 0 {
			rec.WrittenPerOK = float64(w1-w0) / float64(res.OK)
		}
		if wal1, ok := walStats(db); walOK && ok && res.OK > 0 {
			rec.WALWritesPerOK = float64(wal1.writes-wal0.writes) / float64(res.OK)
			rec.WALSyncsPerOK = float64(wal1.syncs-wal0.syncs) / float64(res.OK)
			rec.WALBytesPerOK = float64(wal1.bytes-wal0.bytes) / float64(res.OK)
		}
		if recv != nil {
			recv.wait(res.OK, *drain)
			e := recv.result(res.OK)
			rec.EndToEnd = &e
		}
		if prof != nil {
			pprof.StopCPUProfile()
		}
		rec.RSSPeak, rec.RSSFinal, rec.RSSHWM = t.rss()
		if err := t.close(); err != nil {
			fmt.Fprintf(os.Stderr, "stop verihook: %v\n%s\n", err, tail(t.log.String(), 2000))
		}
		if commits1 := dbCommits(db); commits0 >= 0 && commits1 >= commits0 && res.OK > 0 {
			rec.CommitsPerOK = float64(commits1-commits0) / float64(res.OK)
		}
		if n, total, sealed, ok := storedBytes(db); ok {
			rec.StoredPerMessage, rec.SealedPerMessage = float64(total)/float64(n), float64(sealed)/float64(n)
		}
		drop()
		if *dataDir != "" || db == "" {
			rec.DataDirBytes = dirSize(dir)
		}
		if *dataDir == "" {
			os.RemoveAll(dir)
		}
		if rec.Baseline != nil && rec.Baseline.Throughput > 0 {
			rec.Ratio = res.Throughput / rec.Baseline.Throughput
		}
		fmt.Printf("  %-9s %s\n", label, res.line())
		if t.cmd != nil {
			fmt.Printf("            RSS peak %s, at the end %s (VmHWM %s); ready %s after start\n",
				mib(rec.RSSPeak), mib(rec.RSSFinal), mib(rec.RSSHWM), t.ready.Round(time.Millisecond))
			if db == "" {
				fmt.Printf("            wrote %.1f KiB to storage per webhook (write_bytes of /proc/PID/io)\n", rec.WrittenPerOK/1024)
			}
		}
		if rec.CPUPerOK > 0 {
			fmt.Printf("            CPU per webhook: verihook %s", rec.CPUPerOK.Round(time.Microsecond))
			if rec.DBCPUPerOK > 0 {
				fmt.Printf(", its PostgreSQL backends %s", rec.DBCPUPerOK.Round(time.Microsecond))
			}
			fmt.Println()
		}
		if rec.CommitsPerOK > 0 {
			fmt.Printf("            PostgreSQL commits %.3f per webhook (pg_stat_database of its database)\n", rec.CommitsPerOK)
		}
		if rec.WALSyncsPerOK > 0 {
			fmt.Printf("            PostgreSQL WAL flushes %.3f, writes %.3f, %.1f KiB per webhook (pg_stat_wal, the whole server's)\n",
				rec.WALSyncsPerOK, rec.WALWritesPerOK, rec.WALBytesPerOK/1024)
		}
		if rec.StoredPerMessage > 0 {
			fmt.Printf("            stored %.0f B per message (tables, indexes, TOAST), %.2f × its sealed body and event data (%.0f B)\n",
				rec.StoredPerMessage, rec.StoredPerMessage/rec.SealedPerMessage, rec.SealedPerMessage)
		}
		if rec.Ratio > 0 {
			fmt.Printf("            throughput %.1f%% of the baseline's\n", rec.Ratio*100)
		}
		if e := rec.EndToEnd; e != nil {
			fmt.Printf("  end-to-end received %d/%d (duplicates %d, unmatched %d, bad signatures %d); %s\n",
				e.Received, e.Expected, e.Duplicates, e.Unknown, e.BadSig, e.Latency)
		}
		records = append(records, rec)
		if r+1 < *repeat {
			time.Sleep(time.Second)
		}
	}
	printSummary(records, label)
	if *jsonOut != "" {
		raw, _ := json.MarshalIndent(records, "", "  ")
		if err := os.WriteFile(*jsonOut, raw, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// line is a one-line report of a drive.
func (r loadResult) line() string {
	s := fmt.Sprintf("%d sent, %d ok in %.1fs: %.0f/s; %s; errors: %s",
		r.Sent, r.OK, r.Elapsed.Seconds(), r.Throughput, r.Latency, errorsString(r.Errors))
	if r.Exhausted {
		s += " (payloads ran out before the duration)"
	}
	return s
}

// printSummary prints the median and range of each figure over the runs;
// label names the server driven (verihook or the ceiling).
func printSummary(rs []runRecord, label string) {
	if len(rs) < 2 {
		return
	}
	pick := func(f func(runRecord) float64) spread {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, f(r))
		}
		return spreadOf(xs)
	}
	msOf := func(d time.Duration) float64 { return float64(d) / 1e6 }
	fmt.Printf("summary of %d runs: median (min–max)\n", len(rs))
	if rs[0].Baseline != nil {
		fmt.Printf("  baseline throughput   %s\n", pick(func(r runRecord) float64 { return r.Baseline.Throughput }).format("/s", 0))
		fmt.Printf("  baseline p99          %s\n", pick(func(r runRecord) float64 { return msOf(r.Baseline.Latency.P99) }).format("ms", 2))
	}
	fmt.Printf("  %-8s throughput   %s\n", label, pick(func(r runRecord) float64 { return r.Verihook.Throughput }).format("/s", 0))
	if rs[0].Ratio > 0 {
		fmt.Printf("  ratio to baseline     %s\n", pick(func(r runRecord) float64 { return r.Ratio * 100 }).format("%", 1))
	}
	fmt.Printf("  %-8s p50          %s\n", label, pick(func(r runRecord) float64 { return msOf(r.Verihook.Latency.P50) }).format("ms", 2))
	fmt.Printf("  %-8s p90          %s\n", label, pick(func(r runRecord) float64 { return msOf(r.Verihook.Latency.P90) }).format("ms", 2))
	fmt.Printf("  %-8s p99          %s\n", label, pick(func(r runRecord) float64 { return msOf(r.Verihook.Latency.P99) }).format("ms", 2))
	fmt.Printf("  %-8s max          %s\n", label, pick(func(r runRecord) float64 { return msOf(r.Verihook.Latency.Max) }).format("ms", 2))
	fmt.Printf("  %-8s errors       %s\n", label, pick(func(r runRecord) float64 { return float64(r.Verihook.Sent - r.Verihook.OK) }).format("", 0))
	if rs[0].CPUPerOK > 0 {
		fmt.Printf("  CPU/webhook           %s\n", pick(func(r runRecord) float64 { return float64(r.CPUPerOK) / 1e3 }).format("µs", 0))
	}
	if rs[0].DBCPUPerOK > 0 {
		fmt.Printf("  PostgreSQL CPU/webhook %s\n", pick(func(r runRecord) float64 { return float64(r.DBCPUPerOK) / 1e3 }).format("µs", 0))
	}
	if rs[0].CommitsPerOK > 0 {
		fmt.Printf("  commits/webhook       %s\n", pick(func(r runRecord) float64 { return r.CommitsPerOK }).format("", 3))
	}
	if rs[0].WALSyncsPerOK > 0 {
		fmt.Printf("  WAL flushes/webhook   %s\n", pick(func(r runRecord) float64 { return r.WALSyncsPerOK }).format("", 3))
		fmt.Printf("  WAL/webhook           %s\n", pick(func(r runRecord) float64 { return r.WALBytesPerOK / 1024 }).format(" KiB", 1))
	}
	if rs[0].StoredPerMessage > 0 {
		fmt.Printf("  stored/message        %s\n", pick(func(r runRecord) float64 { return r.StoredPerMessage }).format(" B", 0))
		fmt.Printf("  stored/sealed         %s\n", pick(func(r runRecord) float64 { return r.StoredPerMessage / r.SealedPerMessage }).format("", 2))
	}
	if rs[0].RSSPeak > 0 {
		fmt.Printf("  %-8s RSS peak     %s\n", label, pick(func(r runRecord) float64 { return float64(r.RSSPeak) / (1 << 20) }).format(" MiB", 1))
	}
	if rs[0].EndToEnd != nil {
		fmt.Printf("  end-to-end p50        %s\n", pick(func(r runRecord) float64 { return msOf(r.EndToEnd.Latency.P50) }).format("ms", 2))
		fmt.Printf("  end-to-end p99        %s\n", pick(func(r runRecord) float64 { return msOf(r.EndToEnd.Latency.P99) }).format("ms", 2))
		fmt.Printf("  end-to-end max        %s\n", pick(func(r runRecord) float64 { return msOf(r.EndToEnd.Latency.Max) }).format("ms", 2))
		fmt.Printf("  events missing        %s\n", pick(func(r runRecord) float64 { return float64(r.EndToEnd.Expected - r.EndToEnd.Received) }).format("", 0))
	}
}

func cmdConfig(args []string) error {
	fs := newFlagSet("config")
	listen := fs.String("listen", "127.0.0.1:8080", "listen address to write")
	dataDir := fs.String("data-dir", "./verihook-data", "data dir to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := filepath.Join(os.TempDir(), "verihook-bench-config-"+newRunID()+".yaml")
	defer os.Remove(path)
	if err := writeConfig(path, *listen, serverOpts{dataDir: *dataDir}); err != nil {
		return err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(raw)
	return err
}
