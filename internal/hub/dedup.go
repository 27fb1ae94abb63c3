package hub

import (
	"strconv"
	"strings"
	"time"
)

// Dedup says for how long a message's DedupKey makes a later copy (the same
// source and key) a duplicate: SPEC section 5 rule 1. The zero value is for
// ever, right for a key that names one provider event (KYCAID's request_id)
// or a body that can be sent only once (a timestamped result).
//
// A provider that sends neither an event id nor a timestamp (Identomat) may
// send an identical body again on purpose: the same state after another one,
// a second OTP request. Its messages say how long a copy is a retry instead.
// Stores keep the rule by the key a message is stored under, one message per
// source and key (PostgreSQL in a unique index on the pair; SQLite's one
// writer by looking the key up as it inserts), by storing such a message
// under its key with a suffix (see DedupCheck and CurrentKey), so that
// concurrent copies still conflict there.
type Dedup struct {
	// WhileCurrent: a copy is a duplicate only while every verification the
	// message observes is at the version the stored copy left it at. A state
	// that comes back after another one was applied is new; a retry of the
	// state that is still current is not. Only for messages with
	// observations.
	WhileCurrent bool
	// Window, when positive: a copy is a duplicate only when it is received
	// less than Window after the stored copy (duplicates are not stored, so
	// they do not extend it).
	Window time.Duration
}

// validate reports what is wrong with d for a message with nObs
// observations.
func (d Dedup) validate(nObs int) error {
	switch {
	case d.Window < 0:
		return Errorf(EINVALID, "dedup window %s is negative", d.Window)
	case d.WhileCurrent && d.Window > 0:
		return Errorf(EINVALID, "a dedup rule is either while current or within a window, not both")
	case d.WhileCurrent && nObs == 0:
		return Errorf(EINVALID, "a message deduplicated while current must observe a verification")
	}
	return nil
}

// DedupCheck is how a store finds whether a message is a duplicate when it
// inserts it: the message is one if a message of its source is stored under
// Key (the store refuses to insert a second message of the source under
// it), or under one of Near and
// received between Since and Until (both excluded).
type DedupCheck struct {
	// Key is what the message is inserted with; "" inserts it without a key,
	// which conflicts with nothing: a message without a DedupKey, or a
	// WhileCurrent one, whose key is known only once its observations are
	// applied (CurrentKey).
	Key string
	// Near, for a message with a Window, are the keys of copies in the
	// intervals before and after its own; empty otherwise.
	Near         []string
	Since, Until time.Time
}

// DedupCheck returns how a store checks m for a duplicate on insert. m must
// have been through Ingest.Prepare, which settles ReceivedAt.
//
// A message with a Window is stored under its key and the number of the
// window-long interval its ReceivedAt falls in: a copy in the same interval
// is less than Window away and conflicts under the same key; one in the
// interval before or after (copies received at once by two instances may
// commit in either order) is a duplicate if it is less than Window away.
func (m Message) DedupCheck() DedupCheck {
	switch {
	case m.DedupKey == "" || m.Dedup.WhileCurrent:
		return DedupCheck{}
	case m.Dedup.Window > 0:
		w := int64(m.Dedup.Window)
		n := m.ReceivedAt.UnixNano()
		slot := n / w
		if n%w < 0 {
			slot-- // floor, also before 1970
		}
		key := func(slot int64) string { return m.DedupKey + "@w" + strconv.FormatInt(slot, 10) }
		return DedupCheck{
			Key:   key(slot),
			Near:  []string{key(slot - 1), key(slot + 1)},
			Since: m.ReceivedAt.Add(-m.Dedup.Window),
			Until: m.ReceivedAt.Add(m.Dedup.Window),
		}
	}
	return DedupCheck{Key: m.DedupKey}
}

// CurrentKey returns the key a WhileCurrent message is stored under once its
// observations obs are applied: its DedupKey and the versions after Apply
// of the verifications it observes, by key, in the order obs first names
// them. A copy received while they are unchanged applies without changing
// them and gets the same key, so that the store makes it a duplicate; once one of them has changed, the key is new. It returns "" for
// any other message.
func (m Message) CurrentKey(obs []Observation, versions map[VerificationKey]int) string {
	if m.DedupKey == "" || !m.Dedup.WhileCurrent {
		return ""
	}
	var b strings.Builder
	b.WriteString(m.DedupKey)
	b.WriteString("@v")
	seen := map[VerificationKey]bool{}
	for _, o := range obs {
		if seen[o.VerificationKey] {
			continue
		}
		if len(seen) > 0 {
			b.WriteByte(',')
		}
		seen[o.VerificationKey] = true
		b.WriteString(strconv.Itoa(versions[o.VerificationKey]))
	}
	return b.String()
}
