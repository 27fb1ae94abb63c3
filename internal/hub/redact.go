package hub

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
)

// ownPreviewKeys are the JSON keys of verihook's own events (SPEC section 4)
// whose values previews show: structure, ids, statuses, timestamps. Every
// other value (recipient, text, link, email and whatever a provider sends)
// is replaced by "[redacted]", unless the provider of a message names its
// key (RegisterPreviewKeys). An allowlist, so that a field added tomorrow is
// hidden until someone looks at it.
var ownPreviewKeys = keySet(
	"id", "type", "created_at", "updated_at", "source", "provider", "provider_ref", "applicant_ref",
	"kind", "level", "status", "final", "version", "reasons", "attempts_left", "provider_time",
	"previous_status", "provider_event", "channel", "session_ref", "room_id", "room_status",
	"composition_status", "video_file_status", "video_file_id", "idos_human_id", "credential_id",
	"shared_at", "threshold", "outcome", "verdict", "occurred_at", "method", "succeeded",
	"fail_reason", "risk_tags",
)

// providerPreviewKeys holds, by provider name, the keys of the provider's
// payloads that previews of its messages show besides ownPreviewKeys.
var providerPreviewKeys sync.Map // string -> map[string]bool

// RegisterPreviewKeys says which JSON keys of provider's payloads (in any
// case) previews of its messages show besides verihook's own: ids, statuses
// and timestamps, never personal data. provider.NewRegistry registers each
// provider's Provider.PreviewKeys, so that what a provider sends is known
// in its own package. A later call for the same provider replaces the keys.
func RegisterPreviewKeys(provider string, keys ...string) {
	providerPreviewKeys.Store(provider, keySet(keys...))
}

func keySet(keys ...string) map[string]bool {
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[strings.ToLower(k)] = true
	}
	return set
}

// Redacted is what a hidden value is replaced with in previews.
const Redacted = "[redacted]"

// Preview returns a redacted rendering of a JSON body, safe to show in the API
// and dashboard: the same structure, with every value under a key not known to
// be harmless (a key of verihook's own events) replaced by "[redacted]". A
// value under no key at all (a body that is a bare string or a list of
// strings) is hidden too. A body that is not JSON is described, not shown.
func Preview(body []byte) json.RawMessage {
	return PreviewOf("", body)
}

// PreviewOf is Preview for a message of provider: the keys its package
// registered (RegisterPreviewKeys) are shown too.
func PreviewOf(provider string, body []byte) json.RawMessage {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		b, _ := json.Marshal(fmt.Sprintf("[%d bytes, not JSON]", len(body)))
		return b
	}
	var theirs map[string]bool
	if keys, ok := providerPreviewKeys.Load(provider); ok {
		theirs = keys.(map[string]bool)
	}
	out, _ := json.Marshal(redact(v, false, theirs))
	return out
}

// RedactURL returns rawURL as it may be shown without its credentials: no
// user info, every query value (and a query part without a key) replaced by
// "[redacted]", no fragment. Scheme, host, port, path and query keys stay,
// so that the URL can still be told apart. A URL that does not parse as a
// hierarchical one is redacted whole.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Opaque != "" {
		return Redacted
	}
	u.User, u.Fragment, u.RawFragment, u.ForceQuery = nil, "", "", false
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, part := range parts {
			if key, _, ok := strings.Cut(part, "="); ok {
				parts[i] = key + "=" + Redacted
			} else {
				parts[i] = Redacted
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return u.String()
}

// redact walks v; shown says whether the key v sits under is allowed, by
// ownPreviewKeys or theirs.
func redact(v any, shown bool, theirs map[string]bool) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			k2 := strings.ToLower(k)
			out[k] = redact(val, ownPreviewKeys[k2] || theirs[k2], theirs)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = redact(val, shown, theirs)
		}
		return out
	case nil:
		return nil
	default:
		if shown {
			return x
		}
		return Redacted
	}
}

// OpenBody opens a message's body, sealed with c as a store keeps it, for
// what a read needs: m.Preview, rendered from the body when the store kept
// none (see Store.Messages), and with withBody m.Body too. A nil sealed body
// (a rejection, or purged) leaves m as it is.
func (m *Message) OpenBody(c *Cipher, sealed []byte, withBody bool) error {
	if sealed == nil || (!withBody && m.Preview != nil) {
		return nil
	}
	body, err := c.Open(sealed, SealedMessageBody, m.ID)
	if err != nil {
		return fmt.Errorf("message %s: body: %w", m.ID, err)
	}
	if m.Preview == nil {
		m.Preview = PreviewOf(m.Provider, body)
	}
	if withBody {
		m.Body = body
	}
	return nil
}
