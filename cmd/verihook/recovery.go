package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/ingest"
	"github.com/verihook/verihook/internal/provider"
	"github.com/verihook/verihook/internal/reconcile"
)

// ReconcileConfig is a source's reconciliation block (README "Recovering
// missed callbacks"). Without it, a source whose secrets hold its provider's
// API credentials is reconciled with the defaults.
type ReconcileConfig struct {
	// Enabled false turns reconciliation of the source off.
	Enabled *bool `yaml:"enabled"`
	// APIURL replaces the provider's API address (a sandbox, or
	// `verihook simulate serve`).
	APIURL   string        `yaml:"api_url"`
	Deadline time.Duration `yaml:"deadline"`
	Interval time.Duration `yaml:"interval"`
	Gap      time.Duration `yaml:"gap"`
	MaxPolls int           `yaml:"max_polls"`
}

// validateReconcile checks the reconcile block of source s (field names it
// in messages): a block that does not turn reconciliation off requires a
// provider that can be polled and its API credentials in secrets.
func validateReconcile(field string, s SourceConfig, p provider.Provider, secrets map[string]string) error {
	rc := s.Reconcile
	if rc == nil || (rc.Enabled != nil && !*rc.Enabled) {
		return nil
	}
	field += ".reconcile"
	poller, ok := p.(provider.Poller)
	switch {
	case !ok && p.Setup().NoPolling != "":
		return fmt.Errorf("config: %s: %s; remove the block", field, p.Setup().NoPolling)
	case !ok:
		return fmt.Errorf("config: %s: provider %s has no status API verihook can poll", field, p.Name())
	}
	if err := poller.CheckPollSecrets(secrets); err != nil {
		return fmt.Errorf("config: %s: the API credentials are missing: %s", field, hub.ErrorMessage(err))
	}
	if rc.APIURL != "" {
		if u, err := url.Parse(rc.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: %s.api_url %q: want an http:// or https:// URL", field, rc.APIURL)
		}
	}
	switch {
	case rc.Deadline != 0 && rc.Deadline < time.Minute:
		return fmt.Errorf("config: %s.deadline %s: want at least 1m", field, rc.Deadline)
	case rc.Interval != 0 && rc.Interval < time.Second:
		return fmt.Errorf("config: %s.interval %s: want at least 1s", field, rc.Interval)
	case rc.Gap < 0:
		return fmt.Errorf("config: %s.gap %s: want 0 (the provider's) or more", field, rc.Gap)
	case rc.MaxPolls < 0:
		return fmt.Errorf("config: %s.max_polls %d: want 0 (the provider's) or more", field, rc.MaxPolls)
	}
	return nil
}

// reconcileSettings returns the settings of the sources with a reconcile
// block.
func (cfg Config) reconcileSettings() map[string]reconcile.Settings {
	out := map[string]reconcile.Settings{}
	for _, s := range cfg.Sources {
		if rc := s.Reconcile; rc != nil {
			out[s.ID] = reconcile.Settings{
				Disabled: rc.Enabled != nil && !*rc.Enabled, APIURL: rc.APIURL, Deadline: rc.Deadline,
				Interval: rc.Interval, Gap: rc.Gap, MaxPolls: rc.MaxPolls,
			}
		}
	}
	return out
}

// recovery is the reconcile worker and the ingest service behind the API's
// refresh, reprocess and stuck filter.
type recovery struct {
	*reconcile.Worker
	svc *ingest.Service
}

func (r recovery) Reprocess(ctx context.Context, id string) (hub.Reprocessed, error) {
	return r.svc.Reprocess(ctx, id)
}

func (r recovery) ReprocessAll(ctx context.Context, source string) ([]hub.Reprocessed, error) {
	return r.svc.ReprocessAll(ctx, source)
}

// backlog counts the stuck verifications and quarantined messages of every
// source, zeros included, so that an alert on the gauges sees a source
// recover.
func backlog(ctx context.Context, st hub.Store, stuck hub.Stuck) (hub.Backlog, error) {
	b, err := st.Backlog(ctx, stuck)
	if err != nil {
		return b, err
	}
	srcs, err := st.Sources(ctx)
	if err != nil {
		return b, err
	}
	for _, src := range srcs {
		b.Stuck[src.ID] += 0
		b.Quarantined[src.ID] += 0
	}
	return b, nil
}

// newReconciler returns the reconcile worker of cfg, recording answers with
// svc.
func newReconciler(cfg Config, svc *ingest.Service) *reconcile.Worker {
	return &reconcile.Worker{
		Store: svc.Store, Providers: svc.Providers, Logger: svc.Logger, Sources: cfg.reconcileSettings(), Now: svc.Now,
		Client: &http.Client{Timeout: 30 * time.Second},
		Record: func(ctx context.Context, src hub.Source, v hub.Verification, parsed hub.Parsed, sentAt time.Time) (bool, error) {
			res, err := svc.RecordPoll(ctx, src, v, parsed, sentAt)
			return len(res.Events) > 0, err
		},
	}
}

// openRecovery loads the configuration and opens the store for the reconcile
// and reprocess commands.
func openRecovery(ctx context.Context, e env, name, synopsis string, args []string, extra func(*flag.FlagSet)) (*ingest.Service, *reconcile.Worker, func() error, error) {
	fs := newFlagSet(e, name, synopsis)
	common := addCommonFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := parse(fs, args); err != nil {
		return nil, nil, nil, err
	}
	cfg, err := common.load(fs, e.getenv, registry())
	if err != nil {
		return nil, nil, nil, err
	}
	log := newLogger(e.stderr, cfg.LogLevel)
	st, err := openStore(ctx, cfg, e.getenv, log)
	if err != nil {
		return nil, nil, nil, err
	}
	svc := &ingest.Service{Store: st, Providers: registry(), Logger: log}
	return svc, newReconciler(cfg, svc), st.Close, nil
}

// runReconcile polls, now, the stuck verifications of one source.
func runReconcile(ctx context.Context, e env, args []string) error {
	var source *string
	var all *bool
	_, w, closeStore, err := openRecovery(ctx, e, "reconcile", "reconcile --source S [--all] [flags]", args, func(fs *flag.FlagSet) {
		source = fs.String("source", "", "the source whose stuck verifications to poll")
		all = fs.Bool("all", false, "poll every verification not final, not only those past the deadline")
	})
	if err != nil {
		return err
	}
	defer closeStore()
	if *source == "" {
		return errors.New("--source is required")
	}
	res, err := w.Source(ctx, *source, *all)
	if err != nil {
		return errors.New(hub.ErrorMessage(err))
	}
	changed, failed := 0, 0
	for _, r := range res {
		line := r.VerificationID + " unchanged"
		switch {
		case r.Error != "":
			line, failed = r.VerificationID+" failed: "+r.Error, failed+1
		case r.Changed:
			line, changed = r.VerificationID+" changed", changed+1
		}
		if r.GaveUp {
			line += " (given up: no more polls)"
		}
		fmt.Fprintln(e.stdout, line)
	}
	fmt.Fprintf(e.stdout, "polled %d, changed %d, failed %d\n", len(res), changed, failed)
	if failed > 0 {
		return fmt.Errorf("%d poll(s) failed", failed)
	}
	return nil
}

// runReprocess re-runs today's adapters over quarantined messages.
func runReprocess(ctx context.Context, e env, args []string) error {
	var source, message *string
	svc, _, closeStore, err := openRecovery(ctx, e, "reprocess", "reprocess [--source S | --message ID] [flags]", args, func(fs *flag.FlagSet) {
		source = fs.String("source", "", "only this source's quarantined messages")
		message = fs.String("message", "", "only this message")
	})
	if err != nil {
		return err
	}
	defer closeStore()
	var res []hub.Reprocessed
	if *message != "" {
		r, err := svc.Reprocess(ctx, *message)
		if err != nil {
			return errors.New(hub.ErrorMessage(err))
		}
		res = append(res, r)
	} else if res, err = svc.ReprocessAll(ctx, *source); err != nil {
		return err
	}
	accepted := 0
	for _, r := range res {
		if r.Status == hub.MessageAccepted {
			accepted++
			fmt.Fprintf(e.stdout, "%s accepted, %d event(s)\n", r.MessageID, r.Events)
		} else {
			fmt.Fprintf(e.stdout, "%s still quarantined: %s\n", r.MessageID, r.Reason)
		}
	}
	fmt.Fprintf(e.stdout, "reprocessed %d, accepted %d, still quarantined %d\n", len(res), accepted, len(res)-accepted)
	return nil
}
