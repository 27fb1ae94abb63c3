package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/verihook/verihook/internal/delivery"
	"github.com/verihook/verihook/internal/dispatch"
	"github.com/verihook/verihook/internal/httpapi"
	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// Config is verihook's configuration: defaults, then the YAML file, then
// VERIHOOK_* environment variables, then flags, each overriding the last.
type Config struct {
	Listen                string        `yaml:"listen"`
	DataDir               string        `yaml:"data_dir"`
	Database              string        `yaml:"database"`
	AllowPrivateEndpoints bool          `yaml:"allow_private_endpoints"`
	MaxBodyBytes          int64         `yaml:"max_body_bytes"`
	Retention             time.Duration `yaml:"retention"`
	OTPRetention          time.Duration `yaml:"otp_retention"` // OTP codes and session links: sooner than Retention
	LogLevel              string        `yaml:"log_level"`
	// DeliveryTimeout bounds one delivery attempt.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout"`
	// DeliveryLease is how long a worker holds a claimed delivery; a
	// crashed instance's deliveries are sent again once it ends.
	DeliveryLease time.Duration `yaml:"delivery_lease"`
	// RetrySchedule is the wait before each delivery attempt.
	RetrySchedule []time.Duration `yaml:"retry_schedule"`
	// MetricsListen is where Prometheus /metrics is served: a listener of
	// its own, never the public ingest one; empty: no metrics.
	MetricsListen string `yaml:"metrics_listen"`
	// ShutdownTimeout bounds the whole shutdown: draining the listeners,
	// stopping the delivery worker and closing the store.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// DeliveryConcurrency is how many attempts run at once.
	DeliveryConcurrency int              `yaml:"delivery_concurrency"`
	Sources             []SourceConfig   `yaml:"sources"`
	Endpoints           []EndpointConfig `yaml:"endpoints"`

	// DispatchLease is how long a worker holds a claimed OTP or link
	// dispatch; a crashed instance's dispatches are sent once it ends.
	DispatchLease time.Duration `yaml:"dispatch_lease"`
	// MaxInflightBytes bounds the bytes of the ingest bodies held at once.
	MaxInflightBytes int64 `yaml:"max_inflight_bytes"`

	// TrustedProxies are the CIDRs of the proxies whose X-Forwarded-For
	// and X-Real-IP are believed (audit rows show the provider's address).
	TrustedProxies []string  `yaml:"trusted_proxies"`
	TLS            TLSConfig `yaml:",inline"` // tls.go
}

// SourceConfig declares a source, provisioned at start-up.
type SourceConfig struct {
	ID       string         `yaml:"id"`
	Provider string         `yaml:"provider"`
	Secrets  map[string]any `yaml:"secrets"`
	// Dispatch, when set, sends the source's OTPs and session links
	// (SPEC section 7).
	Dispatch *dispatch.Config `yaml:"dispatch"`
	// Reconcile tunes the polling of the provider's status API.
	Reconcile *ReconcileConfig `yaml:"reconcile"`
}

// EndpointConfig declares an endpoint (SPEC section 6).
type EndpointConfig struct {
	ID         string   `yaml:"id"`
	URL        string   `yaml:"url"`
	Secret     string   `yaml:"secret"`
	EventTypes []string `yaml:"event_types"`
	Sources    []string `yaml:"sources"`
	Enabled    *bool    `yaml:"enabled"`
	Ordered    bool     `yaml:"ordered"`
	RateLimit  float64  `yaml:"rate_limit"`
}

// DefaultConfig returns the configuration of `verihook serve` with nothing set.
func DefaultConfig() Config {
	return Config{
		Listen:       "127.0.0.1:8080",
		DataDir:      "./verihook-data",
		MaxBodyBytes: 1 << 20,
		Retention:    30 * 24 * time.Hour,
		OTPRetention: 24 * time.Hour,
		LogLevel:     "info",

		DeliveryTimeout:     15 * time.Second,
		DeliveryLease:       time.Minute,
		RetrySchedule:       slices.Clone(delivery.DefaultSchedule),
		DeliveryConcurrency: 16,
		MetricsListen:       "127.0.0.1:9464",
		// Longer than delivery_timeout, so that an attempt in flight
		// normally ends and is recorded before the store closes.
		ShutdownTimeout:  20 * time.Second,
		DispatchLease:    dispatch.DefaultLease,
		MaxInflightBytes: 64 << 20,
	}
}

// commonFlags are the flags of every subcommand that touches the database.
type commonFlags struct {
	config, dataDir, database *string
}

func addCommonFlags(fs *flag.FlagSet) commonFlags {
	return commonFlags{
		config:   fs.String("config", "", "YAML configuration file (env VERIHOOK_CONFIG)"),
		dataDir:  fs.String("data-dir", "", "directory of the embedded database and key file (default ./verihook-data; env VERIHOOK_DATA_DIR)"),
		database: fs.String("database", "", "empty for the embedded SQLite database, or postgres://… (env VERIHOOK_DATABASE_URL)"),
	}
}

// load builds the configuration from the file, the environment and the flags
// that were set, and validates it.
func (c commonFlags) load(fs *flag.FlagSet, getenv func(string) string, registry provider.Registry) (Config, error) {
	cfg, err := c.read(fs, getenv)
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.validate(getenv, registry)
}

// read builds the configuration as load does, without validating it.
func (c commonFlags) read(fs *flag.FlagSet, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	path := *c.config
	if path == "" {
		path = getenv("VERIHOOK_CONFIG")
	}
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	envStr := map[string]*string{
		"VERIHOOK_LISTEN": &cfg.Listen, "VERIHOOK_METRICS_LISTEN": &cfg.MetricsListen, "VERIHOOK_DATA_DIR": &cfg.DataDir,
		"VERIHOOK_DATABASE_URL": &cfg.Database, "VERIHOOK_LOG_LEVEL": &cfg.LogLevel,
	}
	for name, dst := range envStr {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	if v := getenv("VERIHOOK_ALLOW_PRIVATE_ENDPOINTS"); v != "" {
		cfg.AllowPrivateEndpoints = v == "1" || strings.EqualFold(v, "true") || strings.EqualFold(v, "yes")
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = f.Value.String()
		case "database":
			cfg.Database = f.Value.String()
		case "listen":
			cfg.Listen = f.Value.String()
		case "metrics-listen":
			cfg.MetricsListen = f.Value.String()
		case "allow-private-endpoints":
			cfg.AllowPrivateEndpoints = f.Value.String() == "true"
		case "max-body-bytes":
			fmt.Sscan(f.Value.String(), &cfg.MaxBodyBytes)
		case "log-level":
			cfg.LogLevel = f.Value.String()
		}
	})
	return cfg, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// validate checks every field, expanding ${ENV} in secrets, and names the
// first bad one.
func (cfg *Config) validate(getenv func(string) string, registry provider.Registry) error {
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return fmt.Errorf("config: listen %q: want host:port, e.g. 127.0.0.1:8080", cfg.Listen)
	}
	if cfg.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(cfg.MetricsListen); err != nil {
			return fmt.Errorf("config: metrics_listen %q: want host:port, e.g. 127.0.0.1:9464, or empty for no metrics", cfg.MetricsListen)
		} else if cfg.MetricsListen == cfg.Listen && port != "0" {
			return fmt.Errorf("config: metrics_listen %q: want an address of its own: metrics are never served on the ingest listener", cfg.MetricsListen)
		}
	}
	if cfg.DataDir == "" {
		return errors.New("config: data_dir must not be empty")
	}
	if cfg.Database != "" && !strings.HasPrefix(cfg.Database, "postgres://") && !strings.HasPrefix(cfg.Database, "postgresql://") {
		return errors.New("config: database: want empty (embedded SQLite) or a postgres:// URL")
	}
	if cfg.MaxBodyBytes < 1024 {
		return fmt.Errorf("config: max_body_bytes %d: want at least 1024", cfg.MaxBodyBytes)
	}
	if cfg.MaxInflightBytes < cfg.MaxBodyBytes {
		return fmt.Errorf("config: max_inflight_bytes %d: want at least max_body_bytes (%d)", cfg.MaxInflightBytes, cfg.MaxBodyBytes)
	}
	if cfg.Retention < time.Hour {
		return fmt.Errorf("config: retention %s: want at least 1h", cfg.Retention)
	}
	if cfg.OTPRetention < time.Hour || cfg.OTPRetention > cfg.Retention {
		return fmt.Errorf("config: otp_retention %s: want at least 1h and at most retention (%s)", cfg.OTPRetention, cfg.Retention)
	}
	switch cfg.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log_level %q: want debug, info, warn or error", cfg.LogLevel)
	}
	if cfg.DeliveryTimeout < 100*time.Millisecond || cfg.DeliveryTimeout > 5*time.Minute {
		return fmt.Errorf("config: delivery_timeout %s: want 100ms to 5m", cfg.DeliveryTimeout)
	}
	if cfg.DeliveryLease < 2*cfg.DeliveryTimeout {
		return fmt.Errorf("config: delivery_lease %s: want at least twice delivery_timeout (%s)", cfg.DeliveryLease, cfg.DeliveryTimeout)
	}
	if len(cfg.RetrySchedule) == 0 || len(cfg.RetrySchedule) > 100 {
		return errors.New("config: retry_schedule: want 1 to 100 waits, e.g. [0s, 5s, 5m, 30m, 2h, 5h, 10h, 10h]")
	}
	for i, d := range cfg.RetrySchedule {
		if d < 0 {
			return fmt.Errorf("config: retry_schedule[%d] %s: want 0 or more", i, d)
		}
	}
	if cfg.DeliveryConcurrency < 1 || cfg.DeliveryConcurrency > 1024 {
		return fmt.Errorf("config: delivery_concurrency %d: want 1 to 1024", cfg.DeliveryConcurrency)
	}
	if cfg.ShutdownTimeout < time.Second || cfg.ShutdownTimeout > 10*time.Minute {
		return fmt.Errorf("config: shutdown_timeout %s: want 1s to 10m", cfg.ShutdownTimeout)
	}
	if cfg.DispatchLease < time.Second || cfg.DispatchLease > time.Hour {
		return fmt.Errorf("config: dispatch_lease %s: want 1s to 1h", cfg.DispatchLease)
	}
	if _, err := httpapi.ParseTrustedProxies(cfg.TrustedProxies); err != nil {
		return fmt.Errorf("config: trusted_proxies: %w", err)
	}
	if err := cfg.TLS.validate(cfg.Listen); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, s := range cfg.Sources {
		field := fmt.Sprintf("sources[%d]", i)
		if !idPattern.MatchString(s.ID) {
			return fmt.Errorf("config: %s.id %q: want 1-64 letters, digits, - or _, starting with a letter or digit", field, s.ID)
		}
		if seen[s.ID] {
			return fmt.Errorf("config: %s.id %q: declared twice", field, s.ID)
		}
		seen[s.ID] = true
		p, err := registry.Get(s.Provider)
		if err != nil {
			return fmt.Errorf("config: %s.provider: %s", field, hub.ErrorMessage(err))
		}
		secrets, err := flattenSecrets(s.Secrets, getenv)
		if err != nil {
			return fmt.Errorf("config: %s.secrets.%w", field, err)
		}
		if err := p.CheckSecrets(secrets); err != nil {
			return fmt.Errorf("config: %s.secrets: %s", field, hub.ErrorMessage(err))
		}
		if d := s.Dispatch; d != nil {
			if err := d.Expand(func(v string) (string, error) { return expand(v, getenv) }); err != nil {
				return fmt.Errorf("config: %s.dispatch.%w", field, err)
			}
			if err := d.Validate(); err != nil {
				return fmt.Errorf("config: %s.dispatch.%w", field, err)
			}
			// A send still running when its lease ends may be made twice.
			if t := d.MaxTimeout(); 2*t > cfg.DispatchLease {
				return fmt.Errorf("config: %s.dispatch: a timeout of %s wants a dispatch_lease of at least %s, not %s", field, t, 2*t, cfg.DispatchLease)
			}
		}
		if err := validateReconcile(field, s, p, secrets); err != nil {
			return err
		}
	}
	seen = map[string]bool{}
	for i, e := range cfg.Endpoints {
		field := fmt.Sprintf("endpoints[%d]", i)
		if !idPattern.MatchString(e.ID) {
			return fmt.Errorf("config: %s.id %q: want 1-64 letters, digits, - or _", field, e.ID)
		}
		if seen[e.ID] {
			return fmt.Errorf("config: %s.id %q: declared twice", field, e.ID)
		}
		seen[e.ID] = true
		if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: %s.url %q: want an http:// or https:// URL", field, e.URL)
		}
		if secret, err := expand(e.Secret, getenv); err != nil {
			return fmt.Errorf("config: %s.secret: %w", field, err)
		} else if secret != "" && !hub.ValidEndpointSecret(secret) {
			return fmt.Errorf("config: %s.secret: want whsec_ and base64 of 24 to 64 bytes, or leave it out to have one generated", field)
		}
		for _, t := range e.EventTypes {
			if !hub.ValidEventTypeFilter(t) {
				return fmt.Errorf("config: %s.event_types: %q is not an event type or a prefix like verification.*", field, t)
			}
		}
		if e.RateLimit < 0 {
			return fmt.Errorf("config: %s.rate_limit: want 0 (no limit) or more per second", field)
		}
	}
	return nil
}

// expand reads a value written as ${ENV_VAR} from the environment; other
// values are returned as they are.
func expand(v string, getenv func(string) string) (string, error) {
	ref := envRef.FindStringSubmatch(v)
	if ref == nil {
		return v, nil
	}
	if val := getenv(ref[1]); val != "" {
		return val, nil
	}
	return "", fmt.Errorf("environment variable %s is not set", ref[1])
}

// source returns the hub.Source a SourceConfig declares (already validated).
func (s SourceConfig) source(getenv func(string) string) (hub.Source, error) {
	secrets, err := flattenSecrets(s.Secrets, getenv)
	return hub.Source{ID: s.ID, Provider: strings.ToLower(s.Provider), Secrets: secrets, Managed: hub.ManagedConfig}, err
}

var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// flattenSecrets turns the secrets map of a source into flat names
// (webhook_secrets: {a: x} becomes webhook_secrets.a) and expands values
// written as ${ENV_VAR}. Errors start with the secret's name.
func flattenSecrets(in map[string]any, getenv func(string) string) (map[string]string, error) {
	out := map[string]string{}
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := prefix + k
			switch v := m[k].(type) {
			case map[string]any:
				if err := walk(name+".", v); err != nil {
					return err
				}
			case string:
				val, err := expand(v, getenv)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				out[name] = val
			default:
				return fmt.Errorf("%s: want a string", name)
			}
		}
		return nil
	}
	return out, walk("", in)
}
