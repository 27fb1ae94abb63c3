package hub

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// previewKeys are the JSON keys whose values are shown in previews: the
// structure of the providers' payloads, ids, statuses and timestamps. Every
// other value (names, document numbers, birth dates, phone numbers, emails,
// OTP texts, links, addresses) is replaced by "[redacted]". An allowlist, so
// that a field a provider adds tomorrow is hidden until someone looks at it.
var previewKeys = map[string]bool{
	// common
	"type": true, "status": true, "final": true, "level": true, "timestamp": true,
	"result": true, "id": true,
	// identomat
	"sessionid": true, "sessiontype": true, "roomid": true, "roomstatus": true,
	"compositionstatus": true, "videofilestatus": true, "videofileid": true,
	// idenfy
	"scanref": true, "clientid": true, "externalref": true, "platform": true,
	"starttime": true, "finishtime": true, "overall": true, "fraudtags": true,
	"mismatchtags": true, "suspicionreasons": true, "autoface": true, "manualface": true,
	"autodocument": true, "manualdocument": true, "additionalsteps": true,
	"doctype": true, "agestimate": true, "clientipproxyrisklevel": true,
	"servicename": true, "servicegrouptype": true, "overallstatus": true,
	"expirationthreshold": true, "outcome": true, "verdict": true, "occurredat": true,
	"method": true, "failreason": true, "risktags": true,
	// kycaid
	"request_id": true, "applicant_id": true, "external_applicant_id": true,
	"verification_id": true, "form_id": true, "verification_status": true,
	"verification_attempts_left": true, "verified": true, "decline_reasons": true,
	"profile_status": true, "document_id": true,
	// fractal
	"user_id": true, "idos_human_id": true, "credential_id": true, "shared_at": true,
	// verihook's own events (SPEC section 4): recipient, text, link and
	// email stay hidden
	"created_at": true, "updated_at": true, "source": true, "provider": true,
	"provider_ref": true, "applicant_ref": true, "kind": true, "version": true,
	"reasons": true, "attempts_left": true, "provider_time": true, "previous_status": true,
	"provider_event": true, "channel": true, "session_ref": true, "room_id": true,
	"room_status": true, "composition_status": true, "video_file_status": true,
	"video_file_id": true, "threshold": true, "occurred_at": true, "succeeded": true,
	"fail_reason": true, "risk_tags": true,
}

// Redacted is what a hidden value is replaced with in previews.
const Redacted = "[redacted]"

// Preview returns a redacted rendering of a JSON body, safe to show in the API
// and dashboard: the same structure, with every value under a key not known to
// be harmless replaced by "[redacted]". A value under no key at all (a body
// that is a bare string or a list of strings) is hidden too. A body that is
// not JSON is described, not shown.
func Preview(body []byte) json.RawMessage {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		b, _ := json.Marshal(fmt.Sprintf("[%d bytes, not JSON]", len(body)))
		return b
	}
	out, _ := json.Marshal(redact(v, false))
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

// redact walks v; shown says whether the key v sits under is allowed.
func redact(v any, shown bool) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = redact(val, previewKeys[strings.ToLower(k)])
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = redact(val, shown)
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
		m.Preview = Preview(body)
	}
	if withBody {
		m.Body = body
	}
	return nil
}
