package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// funcs are the dashboard templates' functions.
var funcs = template.FuncMap{
	"ts":     formatTime,
	"ago":    ago,
	"pretty": pretty,
	"short":  short,
	"pct":    func(f float64) string { return fmt.Sprintf("%.1f %%", f*100) },
	"plural": plural,
	"join":   strings.Join,
	"chart":  chart,
	"badge":  badge,
	"with1": func(v url.Values, k, val string) string { // v with k set to val (empty: removed), as a query
		q := url.Values{}
		for kk, vv := range v {
			q[kk] = vv
		}
		q.Del("cursor")
		if val == "" {
			q.Del(k)
		} else {
			q.Set(k, val)
		}
		if len(q) == 0 {
			return ""
		}
		return "?" + q.Encode()
	},
	"sum":   func(b statBucket) int64 { return b.Accepted + b.Quarantined + b.Rejected },
	"field": field,
}

// field is the value under key of a JSON object, as compact JSON; empty
// when raw is not an object or has no such key.
func field(key string, raw json.RawMessage) string {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj[key] == nil {
		return ""
	}
	var buf bytes.Buffer
	if json.Compact(&buf, obj[key]) != nil {
		return ""
	}
	return buf.String()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// ago says how long before now t was, roughly.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "in " + roughly(-d)
	case d < 5*time.Second:
		return "just now"
	}
	return roughly(d) + " ago"
}

func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return plural(int(d/time.Second), "second", "seconds")
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute", "minutes")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour", "hours")
	}
	return plural(int(d/(24*time.Hour)), "day", "days")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// pretty indents JSON for reading.
func pretty(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		return string(raw)
	}
	return buf.String()
}

// short cuts s to n runes.
func short(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// badge is the CSS class of a status's badge.
func badge(v any) string {
	switch status := fmt.Sprint(v); status {
	// Verification, message and delivery statuses, outcomes and token
	// states share some names (rejected, succeeded …): one case each.
	case "approved", "succeeded", "accepted", "applied", "active":
		return "ok"
	case "rejected", "failed", "revoked":
		return "bad"
	case "suspected", "action_required", "quarantined", "review", "expired":
		return "warn"
	}
	return "neutral"
}

// series is one stacked part of a chart's bars.
type series struct {
	name, class string
	value       func(statBucket) int64
}

var chartSeries = map[string][]series{
	"messages": {
		{"accepted", "s-ok", func(b statBucket) int64 { return b.Accepted }},
		{"quarantined", "s-warn", func(b statBucket) int64 { return b.Quarantined }},
		{"rejected", "s-bad", func(b statBucket) int64 { return b.Rejected }},
	},
	"deliveries": {
		{"succeeded", "s-info", func(b statBucket) int64 { return b.Delivered }},
		{"failed", "s-bad", func(b statBucket) int64 { return b.DeliveryErrors }},
	},
	// The outbox's samples: a bar of the day is the largest of its hour.
	"queue": {
		{"pending deliveries", "s-warn", func(b statBucket) int64 { return b.QueueDepth }},
	},
	"oldest": {
		{"oldest due, seconds", "s-bad", func(b statBucket) int64 { return b.OldestDue }},
	},
}

// chart renders buckets as an inline SVG bar chart of the named series
// (a key of chartSeries), stacked, each bar titled with its figures.
// Server-side, so the page needs no chart script.
func chart(kind string, buckets []statBucket, hourly bool) template.HTML {
	ss := chartSeries[kind]
	const w, h, pad, bottom, left = 720.0, 150.0, 10.0, 22.0, 40.0
	var top int64
	for _, b := range buckets {
		var total int64
		for _, s := range ss {
			total += s.value(b)
		}
		top = max(top, total)
	}
	scale := niceCeil(top)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s">`, w, h, kind)
	plotH := h - pad - bottom
	for _, frac := range []float64{0, 0.5, 1} {
		y := pad + plotH*(1-frac)
		fmt.Fprintf(&sb, `<line class="grid" x1="%g" y1="%.1f" x2="%g" y2="%.1f"/>`, left, y, w, y)
		fmt.Fprintf(&sb, `<text class="axis" x="%g" y="%.1f" text-anchor="end">%s</text>`, left-6, y+4, axisLabel(int64(float64(scale)*frac)))
	}
	n := float64(len(buckets))
	slot := (w - left) / n
	bar := slot * 0.72
	for i, b := range buckets {
		x := left + float64(i)*slot + (slot-bar)/2
		y := pad + plotH
		label := b.Start.UTC().Format("15:04")
		var title []string
		for _, s := range ss {
			v := s.value(b)
			title = append(title, fmt.Sprintf("%s %d", s.name, v))
			if v == 0 {
				continue
			}
			bh := plotH * float64(v) / float64(scale)
			y -= bh
			fmt.Fprintf(&sb, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s UTC: %s</title></rect>`,
				s.class, x, y, bar, bh, label, template.HTMLEscapeString(strings.Join(title, ", ")))
		}
		every := 10
		if hourly {
			every = 4
		}
		if i%every == 0 || i == len(buckets)-1 {
			anchor, lx := "middle", x+bar/2
			if i == len(buckets)-1 {
				anchor, lx = "end", x+bar // the last label must not run off the chart
			}
			fmt.Fprintf(&sb, `<text class="axis" x="%.1f" y="%g" text-anchor="%s">%s</text>`, lx, h-6, anchor, label)
		}
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// axisLabel writes n short enough for the axis: 100k, 2M.
func axisLabel(n int64) string {
	switch {
	case n >= 1_000_000:
		return strconv.FormatFloat(float64(n)/1e6, 'g', 3, 64) + "M"
	case n >= 10_000:
		return strconv.FormatFloat(float64(n)/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten (at least 4), so
// that the axis reads well.
func niceCeil(n int64) int64 {
	if n < 4 {
		return 4
	}
	for p := int64(1); ; p *= 10 {
		for _, m := range []int64{1, 2, 5} {
			if m*p >= n {
				return m * p
			}
		}
	}
}
