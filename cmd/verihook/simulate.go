package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/verihook/verihook/internal/hub"
	"github.com/verihook/verihook/internal/provider"
)

// fieldFlags are simulate's field flags, also the keys of a scenario step.
type fieldFlags struct {
	Event     string `yaml:"event"`
	Ref       string `yaml:"ref"`
	Applicant string `yaml:"applicant"`
	Status    string `yaml:"status"`
	Final     string `yaml:"final"`
	Level     string `yaml:"level"`
	Kind      string `yaml:"kind"`
	Time      string `yaml:"time"`
	Recipient string `yaml:"recipient"`
	Text      string `yaml:"text"`
	Link      string `yaml:"link"`
	EventID   string `yaml:"event_id"`
	Reason    string `yaml:"reason"`
	Attempts  string `yaml:"attempts_left"`
}

// scenario is a --scenario file: steps sent in order.
type scenario struct {
	Provider string `yaml:"provider"`
	To       string `yaml:"to"`
	Secret   string `yaml:"secret"`
	Steps    []step `yaml:"steps"`
}

type step struct {
	fieldFlags `yaml:",inline"`
	// Copies sends the same signed bytes this many times (default 1):
	// duplicates as a provider's retry would make them.
	Copies int `yaml:"copies"`
	// Resend sends again the exact request of an earlier step (1-based).
	Resend int `yaml:"resend"`
	// Headers are set on the built request before it is signed; an empty
	// value removes the header (an iDenfy webhook without Idenfy-Event-Type).
	Headers map[string]string `yaml:"headers"`
	// Expect is the answer the step must get: accepted, quarantined,
	// duplicate, or an HTTP status code such as 401. Without it any 2xx passes.
	Expect string `yaml:"expect"`
}

// answered says whether an answer (HTTP status and body) is what the step
// expects.
func (st step) answered(status int, body string) bool {
	switch st.Expect {
	case "":
		return status >= 200 && status <= 299
	case "accepted", "quarantined", "duplicate":
		var a struct {
			Status    string `json:"status"`
			Duplicate bool   `json:"duplicate"`
		}
		if status != http.StatusOK || json.Unmarshal([]byte(body), &a) != nil {
			return false
		}
		if st.Expect == "duplicate" {
			return a.Duplicate
		}
		return !a.Duplicate && a.Status == st.Expect
	default:
		return st.Expect == strconv.Itoa(status)
	}
}

func (f fieldFlags) fields(now time.Time) (provider.Fields, error) {
	out := provider.Fields{
		Ref: f.Ref, ApplicantRef: f.Applicant, Status: f.Status, Level: f.Level,
		Kind: hub.Kind(f.Kind), Recipient: f.Recipient, Text: f.Text, Link: f.Link, EventID: f.EventID,
	}
	if f.Final != "" {
		b, err := strconv.ParseBool(f.Final)
		if err != nil {
			return out, fmt.Errorf("final %q: want true or false", f.Final)
		}
		out.Final = &b
	}
	switch f.Time {
	case "", "now":
		out.Time = now
	default:
		t, err := time.Parse(time.RFC3339, f.Time)
		if err != nil {
			return out, fmt.Errorf("time %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z, or now", f.Time)
		}
		out.Time = t.UTC()
	}
	if f.Reason != "" {
		out.Reasons = strings.Split(f.Reason, ",")
	}
	if f.Attempts != "" {
		n, err := strconv.Atoi(f.Attempts)
		if err != nil || n < 0 {
			return out, fmt.Errorf("attempts_left %q: want a number, 0 or more", f.Attempts)
		}
		out.AttemptsLeft = &n
	}
	if out.EventID == "" {
		var b [18]byte
		rand.Read(b[:])
		out.EventID = hex.EncodeToString(b[:]) // KYCAID's 36-hex request_id: each callback its own
	}
	return out, nil
}

// simSecrets gives every secret name the providers read the one --secret
// value: each provider takes the names it needs.
func simSecrets(secret string) map[string]string {
	return map[string]string{
		"callback_api_key": secret, "signing_key": secret, "api_token": secret, "webhook_secret": secret,
		// The API credentials that simulate serve checks.
		"company_key": secret, "api_key": secret, "api_secret": secret,
	}
}

func runSimulate(ctx context.Context, e env, args []string) error {
	if len(args) > 0 && args[0] == "serve" {
		return runSimulateServe(ctx, e, args[1:])
	}
	fs := newFlagSet(e, "simulate", "simulate PROVIDER [EVENT] --to URL --secret S [flags]\n       verihook simulate PROVIDER --list\n       verihook simulate [PROVIDER] --scenario FILE --to URL --secret S")
	var ff fieldFlags
	to := fs.String("to", "", "URL to POST to, e.g. http://127.0.0.1:8080/ingest/idenfy-main")
	secret := fs.String("secret", "", "the source's secret (callback API key, signing key, API token or webhook secret)")
	list := fs.Bool("list", false, "list the provider's events")
	scenarioFile := fs.String("scenario", "", "YAML file of steps to play in order (see README)")
	fs.StringVar(&ff.Ref, "ref", "", "provider reference: Identomat sessionId, iDenfy scanRef, KYCAID verification_id (null: none yet), Fractal user_id")
	fs.StringVar(&ff.Applicant, "applicant", "", "the company's user id (iDenfy clientId, KYCAID external_applicant_id)")
	fs.StringVar(&ff.Status, "status", "", "the provider's own status value (APPROVED, DENIED, SUSPECTED, true, false, pending …)")
	fs.StringVar(&ff.Final, "final", "", "iDenfy final flag: true or false")
	fs.StringVar(&ff.Level, "level", "", "Fractal level or add-on (basic, plus, liveness …)")
	fs.StringVar(&ff.Kind, "kind", "", "kyb for an Identomat KYB session")
	fs.StringVar(&ff.Time, "time", "now", "the provider's timestamp, RFC 3339")
	fs.StringVar(&ff.Recipient, "recipient", "", "phone number or email address of OTP and link events")
	fs.StringVar(&ff.Text, "text", "", "message text of OTP and link events")
	fs.StringVar(&ff.Link, "link", "", "session link")
	fs.StringVar(&ff.EventID, "event-id", "", "the provider's event id (KYCAID request_id; random if empty)")
	fs.StringVar(&ff.Reason, "reason", "", "comma-separated reasons (decline reasons, fraud tags, Fractal note)")
	fs.StringVar(&ff.Attempts, "attempts-left", "", "attempts the applicant has left (KYCAID verification_attempts_left; empty: null)")
	// Let flags follow the positional arguments: simulate idenfy EVENT --to …
	var pos []string
	for len(args) > 0 {
		if err := parse(fs, args); err != nil {
			return err
		}
		args = fs.Args()
		if len(args) > 0 {
			pos, args = append(pos, args[0]), args[1:]
		}
	}
	reg := registry()

	var sc scenario
	if *scenarioFile != "" {
		raw, err := os.ReadFile(*scenarioFile)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&sc); err != nil {
			return fmt.Errorf("scenario %s: %w", *scenarioFile, err)
		}
	}
	if len(pos) > 0 {
		sc.Provider = pos[0]
	}
	if sc.Provider == "" {
		fs.Usage()
		return errUsage
	}
	p, err := reg.Get(sc.Provider)
	if err != nil {
		return errors.New(hub.ErrorMessage(err))
	}
	if *list {
		for _, ev := range p.Events() {
			fmt.Fprintln(e.stdout, ev)
		}
		return nil
	}
	if *scenarioFile == "" {
		if len(pos) < 2 {
			return fmt.Errorf("name an event (verihook simulate %s --list shows them)", p.Name())
		}
		ff.Event = pos[1]
		sc.Steps = []step{{fieldFlags: ff}}
	}
	sc.To, sc.Secret = or(*to, sc.To), or(*secret, sc.Secret)
	if sc.To == "" || sc.Secret == "" {
		return errors.New("--to and --secret are required")
	}
	return play(ctx, e, p, sc)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

type request struct {
	h    http.Header
	body []byte
}

// play sends the steps in order and prints each answer; it fails if any
// answer is not what its step expects (by default, 2xx).
func play(ctx context.Context, e env, p provider.Provider, sc scenario) error {
	client := &http.Client{Timeout: 30 * time.Second}
	sent := make([]request, len(sc.Steps))
	failed := 0
	for i, st := range sc.Steps {
		var req request
		if st.Resend > 0 {
			if st.Resend > i {
				return fmt.Errorf("step %d: resend %d names no earlier step", i+1, st.Resend)
			}
			req = sent[st.Resend-1]
		} else {
			f, err := st.fields(time.Now().UTC())
			if err != nil {
				return fmt.Errorf("step %d: %w", i+1, err)
			}
			body, h, err := p.Build(st.Event, f)
			if err != nil {
				return fmt.Errorf("step %d: %s", i+1, hub.ErrorMessage(err))
			}
			if h == nil {
				h = http.Header{}
			}
			for k, v := range st.Headers {
				if v == "" {
					h.Del(k)
				} else {
					h.Set(k, v)
				}
			}
			if body, err = p.Sign(simSecrets(sc.Secret), h, body); err != nil {
				return fmt.Errorf("step %d: sign: %w", i+1, err)
			}
			req = request{h: h, body: body}
		}
		sent[i] = req
		for range max(st.Copies, 1) {
			status, answer, err := post(ctx, client, sc.To, req)
			if err != nil {
				return fmt.Errorf("step %d: %w", i+1, err)
			}
			fmt.Fprintf(e.stdout, "%s %s -> %d %s\n", p.Name(), or(st.Event, fmt.Sprintf("(resend of step %d)", st.Resend)), status, answer)
			if !st.answered(status, answer) {
				if st.Expect != "" {
					fmt.Fprintf(e.stdout, "  step %d expected %s\n", i+1, st.Expect)
				}
				failed++
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d request(s) were not answered as expected", failed)
	}
	return nil
}

func post(ctx context.Context, client *http.Client, url string, r request) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(r.body))
	if err != nil {
		return 0, "", err
	}
	for k, v := range r.h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "verihook-simulate/"+version)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(answer)), nil
}
