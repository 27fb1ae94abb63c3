package hub

import (
	"fmt"
	"time"
)

// Purge says what Store.Purge removes: the personal data kept past its
// retention (SPEC section 10). Statuses, timelines and counts stay.
type Purge struct {
	// Before: the bodies of messages received before it, the data of
	// events created before it, the response excerpts and errors of
	// delivery attempts made before it, and the remote addresses of
	// rejections received before it. Zero: none of these.
	Before time.Time
	// OTPBefore: the data of the events of OTPEventTypes created before it,
	// which hold codes, links and recipients of no use once sent, and so
	// are purged sooner than the rest. Zero: none.
	OTPBefore time.Time
	// Events: the data of these events, whatever their age (an OTP once it
	// has been dispatched). Unknown or already purged ids change nothing.
	Events []string
	// CountersBefore: the dashboard's per-minute counters (see Activity) of
	// the minutes that began before it, which hold no personal data but
	// would otherwise grow forever. Zero: none.
	CountersBefore time.Time
	// Messages: the bodies of these messages, whatever their age (the
	// message that asked for an OTP once it has been dispatched), each
	// message keeping the preview rendered from its body. Unknown ids and
	// messages without a body change nothing.
	Messages []string
}

// Check returns an EINVALID error for a time of p that the store, whose
// times storeTime describes, cannot keep.
func (p Purge) Check(storeTime StoreTime) error {
	for field, t := range map[string]time.Time{"before": p.Before, "otp_before": p.OTPBefore,
		"counters_before": p.CountersBefore} {
		if _, err := storeTime(t, field); err != nil {
			return fmt.Errorf("purge: %w", err)
		}
	}
	return nil
}

// OTPEventTypes are the event types whose data Purge.OTPBefore purges.
var OTPEventTypes = []string{EventOTPRequested, EventSessionLinkRequested}

// PurgeResult counts what Store.Purge changed.
type PurgeResult struct {
	Bodies     int // message bodies deleted
	Events     int // events whose data was replaced by its redacted form
	Attempts   int // attempts whose response excerpt and error were cleared
	Rejections int // rejections whose remote address was cleared
	Counters   int // counter rows deleted (a store may keep one minute's counter in several)
}

// Any reports whether the purge changed anything.
func (r PurgeResult) Any() bool { return r != PurgeResult{} }

// Redact replaces e.Data by its redacted form (Preview), which is what a
// store keeps, and delivers, once the event's personal data is purged: the
// same structure, ids and statuses, with every other value "[redacted]".
func (e *Event) Redact() { e.Data = Preview(e.Data) }
