package dispatch

import (
	"crypto/sha256"
	"strings"
	"sync"
	"time"
)

// limiter counts dispatches per key over sliding windows, in memory.
type limiter struct {
	mu   sync.Mutex
	seen map[string][]time.Time // per key, the times of the dispatches admitted within the window
	n    int                    // admissions since the last prune
}

// allow admits a dispatch of source to recipient at now, and counts it,
// when neither the source's nor the recipient's limit is reached; else it
// says which. Recipients are keyed by a hash, so that no address or number
// sits in memory past its dispatch.
func (l *limiter) allow(source, recipient string, lim Limits, now time.Time) (ok bool, why string) {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(recipient))))
	rk, sk := "r\x00"+source+"\x00"+string(sum[:]), "s\x00"+source
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string][]time.Time{}
	}
	if l.n++; l.n >= 10000 {
		l.prune(now, max(lim.PerRecipientWindow, lim.PerSourceWindow))
	}
	rs := within(l.seen[rk], now.Add(-lim.PerRecipientWindow))
	ss := within(l.seen[sk], now.Add(-lim.PerSourceWindow))
	switch {
	case len(rs) >= lim.PerRecipient:
		l.seen[rk], l.seen[sk] = rs, ss
		return false, "rate limited: " + itoa(lim.PerRecipient) + " dispatches to this recipient within " + lim.PerRecipientWindow.String()
	case len(ss) >= lim.PerSource:
		l.seen[rk], l.seen[sk] = rs, ss
		return false, "rate limited: " + itoa(lim.PerSource) + " dispatches of this source within " + lim.PerSourceWindow.String()
	}
	l.seen[rk], l.seen[sk] = append(rs, now), append(ss, now)
	return true, ""
}

// within drops the times before since (they are in order).
func within(ts []time.Time, since time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(since) {
		i++
	}
	return ts[i:]
}

// prune forgets the keys with nothing left within window.
func (l *limiter) prune(now time.Time, window time.Duration) {
	l.n = 0
	for k, ts := range l.seen {
		if len(within(ts, now.Add(-window))) == 0 {
			delete(l.seen, k)
		}
	}
}
