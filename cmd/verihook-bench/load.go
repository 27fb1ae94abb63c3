package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// loadOpts says how to drive a target.
type loadOpts struct {
	// base is the target's URL, e.g. http://127.0.0.1:8080; payloads go to
	// base/ingest/{source}.
	base string
	// conns is the number of connections (and of requests in flight).
	conns int
	// rate, when > 0, sends at a fixed rate (open loop); 0 sends flat out,
	// each connection sending its next request when the last is answered.
	rate     float64
	duration time.Duration
	// verihook checks that each answer is a fresh acceptance, not a
	// duplicate or a quarantine; off for the bare baseline.
	verihook bool
	// cycle reuses the payloads from the start when they run out, for a
	// target that does not deduplicate (the baseline); otherwise the run
	// ends when they run out.
	cycle bool
	// onStart, when set, is told when request i starts (its scheduled time
	// at a fixed rate): the end-to-end receiver measures from there.
	onStart func(i int, t time.Time)
}

// loadResult is what one drive measured.
type loadResult struct {
	Sent, OK   int
	Errors     map[string]int
	Elapsed    time.Duration
	Throughput float64 // acknowledged (OK) per second
	Latency    latency
	// Exhausted is set when the run stopped because the payloads ran out
	// before the duration.
	Exhausted bool
}

// newClient returns a client that keeps up to conns connections to one host.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only: never through a proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// drive sends payloads to the target, flat out or at a fixed rate, for
// opts.duration or until the payloads run out.
func drive(ctx context.Context, opts loadOpts, payloads []payload) loadResult {
	client := newClient(opts.conns)
	defer client.CloseIdleConnections()
	urls := map[string]string{}
	for _, s := range benchSources {
		urls[s.ID] = opts.base + "/ingest/" + s.ID
	}

	type worker struct {
		lat    []time.Duration
		errs   map[string]int
		sent   int
		ok     int
		lastAt time.Time
	}
	workers := make([]*worker, opts.conns)
	for i := range workers {
		workers[i] = &worker{errs: map[string]int{}}
	}
	send := func(w *worker, i int, from time.Time) {
		p := payloads[i%len(payloads)]
		w.sent++
		kind := post(ctx, client, urls[p.source], p, opts.verihook)
		now := time.Now()
		w.lastAt = now
		if kind != "" {
			w.errs[kind]++
			return
		}
		w.ok++
		w.lat = append(w.lat, now.Sub(from))
	}

	start := time.Now()
	deadline := start.Add(opts.duration)
	var wg sync.WaitGroup
	exhausted := false
	if opts.rate <= 0 {
		// Closed loop: each connection sends as soon as it has its answer.
		var next atomic.Int64
		var ran atomic.Bool
		for _, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && time.Now().Before(deadline) {
					i := int(next.Add(1) - 1)
					if i >= len(payloads) && !opts.cycle {
						ran.Store(true)
						return
					}
					t := time.Now()
					if opts.onStart != nil {
						opts.onStart(i, t)
					}
					send(w, i, t)
				}
			}()
		}
		wg.Wait()
		exhausted = ran.Load()
	} else {
		// Open loop: request i is due at start + i/rate whatever happened to
		// the others, and its latency counts from then, so that a stall
		// shows in the percentiles instead of silently delaying the next
		// sends (coordinated omission).
		type job struct {
			i  int
			at time.Time
		}
		n := int(opts.rate * opts.duration.Seconds())
		if n > len(payloads) && !opts.cycle {
			n, exhausted = len(payloads), true
		}
		jobs := make(chan job, n)
		for _, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					if opts.onStart != nil {
						opts.onStart(j.i, j.at)
					}
					send(w, j.i, j.at)
				}
			}()
		}
		interval := float64(time.Second) / opts.rate
		for i := 0; i < n && ctx.Err() == nil; i++ {
			at := start.Add(time.Duration(float64(i) * interval))
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			jobs <- job{i, at}
		}
		close(jobs)
		wg.Wait()
	}

	res := loadResult{Errors: map[string]int{}, Exhausted: exhausted}
	var all []time.Duration
	last := start
	for _, w := range workers {
		res.Sent += w.sent
		res.OK += w.ok
		for k, v := range w.errs {
			res.Errors[k] += v
		}
		all = append(all, w.lat...)
		if w.lastAt.After(last) {
			last = w.lastAt
		}
	}
	res.Elapsed = last.Sub(start)
	if res.Elapsed > 0 {
		res.Throughput = float64(res.OK) / res.Elapsed.Seconds()
	}
	res.Latency = summarize(all)
	return res
}

// post sends one payload and returns "" for an acknowledgement or the kind
// of failure.
func post(ctx context.Context, client *http.Client, url string, p payload, verihook bool) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(p.body))
	if err != nil {
		return "request"
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return errKind(err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case err != nil:
		return errKind(err)
	case resp.StatusCode != http.StatusOK:
		return "http_" + http.StatusText(resp.StatusCode)
	case !verihook:
		return ""
	case bytes.Contains(body, []byte(`"duplicate":true`)):
		return "duplicate"
	case bytes.Contains(body, []byte(`"quarantined"`)):
		return "quarantined"
	case !bytes.Contains(body, []byte(`"accepted"`)):
		return "unexpected_answer"
	}
	return ""
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "conn_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "transport"
}
