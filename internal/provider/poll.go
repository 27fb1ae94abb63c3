package provider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Poller is implemented by providers whose status API can be asked about one
// verification, so that a callback that never arrived can be recovered
// (reconciliation). Fractal does not implement it: its API answers only with
// each user's own OAuth token, which verihook never holds.
type Poller interface {
	// CheckPollSecrets reports, as an EINVALID *hub.Error naming the secret,
	// whether secrets hold the API credentials Poll needs.
	CheckPollSecrets(secrets map[string]string) error
	// Poll asks the status API about r.Verification and returns what the
	// answer says, as Parse does for a callback: EventName names the API,
	// Body holds only the fields it read (no personal data), and
	// Observations the status (their ReceivedAt, Source and MessageID are
	// left to the caller). Errors: see APIError.
	Poll(ctx context.Context, r PollRequest) (hub.Parsed, error)
	// EmulateStatus returns a ServeMux pattern and a handler that answer as
	// the status API would, for the offline emulator: it checks the
	// credentials in secrets as the provider does and renders the answer
	// from the last observation lookup reports for a reference (ok false:
	// the provider's "not found").
	EmulateStatus(secrets map[string]string, lookup func(ref string) (hub.Observation, bool)) (pattern string, h http.Handler)
	// PollLimits says how sparingly the provider wants its API asked: at
	// most one poll per gap per source, and at most maxPolls polls of one
	// verification before it is given up. They are defaults a source's
	// configuration may lower (or, at the operator's risk, raise).
	PollLimits() (gap time.Duration, maxPolls int)
}

// PollRequest is one question to a provider's status API.
type PollRequest struct {
	Client *http.Client
	// BaseURL replaces the provider's own API address (a sandbox, the
	// emulator); "" means the provider's.
	BaseURL      string
	Secrets      map[string]string
	Verification hub.Verification
}

// URL returns the base URL to use: r.BaseURL, else def, without a trailing
// slash.
func (r PollRequest) URL(def string) string {
	return strings.TrimRight(Or(r.BaseURL, def), "/")
}

// APIError is what a status API's refusal amounts to. Its hub.Error code is
// what callers branch on: EUNAVAILABLE (a network error, a timeout, a 5xx or
// a 429: try again later, after RetryAfter when the provider said),
// EUNAUTHORIZED (401, 403: the credentials are wrong), ENOTFOUND (404: the
// provider does not know the reference) and EINVALID (another 4xx). Its
// message names the status code, never the body, which may hold personal
// data.
type APIError struct {
	Code       string
	StatusCode int
	// RetryAfter is the provider's Retry-After, 0 when none was sent.
	RetryAfter time.Duration
	msg        string
}

// Error implements the error interface.
func (e *APIError) Error() string { return e.Unwrap().Error() }

// Unwrap returns the *hub.Error, so that hub.ErrorCode sees the code.
func (e *APIError) Unwrap() error { return &hub.Error{Code: e.Code, Message: e.msg} }

// maxAnswer bounds a status API answer that is read.
const maxAnswer = 4 << 20

// Do sends an API request with c (http.DefaultClient when nil) and returns
// the body of a 2xx answer, or an *APIError.
func Do(c *http.Client, req *http.Request) ([]byte, error) {
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		// The error names the URL, which holds a reference, never a secret.
		return nil, &APIError{Code: hub.EUNAVAILABLE, msg: "request failed: " + short(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, &APIError{Code: hub.EUNAVAILABLE, StatusCode: resp.StatusCode, msg: "reading the answer failed"}
	}
	e := &APIError{StatusCode: resp.StatusCode, msg: fmt.Sprintf("the API answered %d", resp.StatusCode)}
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		if len(body) > maxAnswer {
			return nil, &APIError{Code: hub.EUNRECOGNIZED, StatusCode: s, msg: "the answer is over 4 MiB"}
		}
		return body, nil
	case s == http.StatusTooManyRequests || s >= 500:
		e.Code, e.RetryAfter = hub.EUNAVAILABLE, retryAfter(resp.Header.Get("Retry-After"))
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Code = hub.EUNAUTHORIZED
	case s == http.StatusNotFound:
		e.Code = hub.ENOTFOUND
	default:
		e.Code = hub.EINVALID
	}
	return nil, e
}

// short clips an error's text for a log or an API answer.
func short(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date (taken
// relative to the clock of the machine, as HTTP dates are).
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// WriteJSON answers an emulated API request with status and body.
func WriteJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
