package hub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

func TestDedupCheck(t *testing.T) {
	t.Parallel()
	w := 30 * time.Second
	at := time.Unix(90, 0).UTC() // the start of interval 3
	tests := []struct {
		name string
		m    hub.Message
		want hub.DedupCheck
	}{
		{"for ever", hub.Message{DedupKey: "k", ReceivedAt: at}, hub.DedupCheck{Key: "k"}},
		{"no key", hub.Message{ReceivedAt: at, Dedup: hub.Dedup{Window: w}}, hub.DedupCheck{}},
		{"while current: the key comes later", hub.Message{DedupKey: "k", ReceivedAt: at, Dedup: hub.Dedup{WhileCurrent: true}},
			hub.DedupCheck{}},
		{"window", hub.Message{DedupKey: "k", ReceivedAt: at.Add(29 * time.Second), Dedup: hub.Dedup{Window: w}},
			hub.DedupCheck{Key: "k@w3", Near: []string{"k@w2", "k@w4"}, Since: at.Add(-time.Second), Until: at.Add(59 * time.Second)}},
		{"window before 1970", hub.Message{DedupKey: "k", ReceivedAt: time.Unix(-1, 0), Dedup: hub.Dedup{Window: w}},
			hub.DedupCheck{Key: "k@w-1", Near: []string{"k@w-2", "k@w0"}, Since: time.Unix(-31, 0), Until: time.Unix(29, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.m.DedupCheck()
			if got.Key != tt.want.Key || strings.Join(got.Near, " ") != strings.Join(tt.want.Near, " ") ||
				!got.Since.Equal(tt.want.Since) || !got.Until.Equal(tt.want.Until) {
				t.Errorf("DedupCheck = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCurrentKey(t *testing.T) {
	t.Parallel()
	a := hub.VerificationKey{Source: "s", ProviderRef: "a"}
	b := hub.VerificationKey{Source: "s", ProviderRef: "b"}
	obs := []hub.Observation{{VerificationKey: b}, {VerificationKey: a}, {VerificationKey: b}}
	versions := map[hub.VerificationKey]int{a: 3, b: 7}
	m := hub.Message{DedupKey: "k", Dedup: hub.Dedup{WhileCurrent: true}}
	if got := m.CurrentKey(obs, versions); got != "k@v7,3" {
		t.Errorf("CurrentKey = %q, want k@v7,3 (versions in the order first observed)", got)
	}
	m.Dedup = hub.Dedup{}
	if got := m.CurrentKey(obs, versions); got != "" {
		t.Errorf("CurrentKey of a message deduplicated for ever = %q, want empty", got)
	}
}

func TestIngestPrepareDedup(t *testing.T) {
	t.Parallel()
	storeTime := func(t time.Time, _ string) (time.Time, error) { return t, nil }
	o := hub.Observation{VerificationKey: hub.VerificationKey{ProviderRef: "r"}, Status: hub.StatusPending}
	for _, tt := range []struct {
		name string
		d    hub.Dedup
		obs  []hub.Observation
		ok   bool
	}{
		{"while current with an observation", hub.Dedup{WhileCurrent: true}, []hub.Observation{o}, true},
		{"window without", hub.Dedup{Window: time.Second}, nil, true},
		{"while current without an observation", hub.Dedup{WhileCurrent: true}, nil, false},
		{"both", hub.Dedup{WhileCurrent: true, Window: time.Second}, []hub.Observation{o}, false},
		{"negative window", hub.Dedup{Window: -time.Second}, nil, false},
	} {
		in := hub.Ingest{Message: hub.Message{ID: "msg_1", SourceID: "src", DedupKey: "k", Dedup: tt.d}, Observations: tt.obs}
		err := in.Prepare(time.Unix(1, 0), storeTime)
		if tt.ok != (err == nil) || err != nil && hub.ErrorCode(err) != hub.EINVALID {
			t.Errorf("%s: Prepare = %v, want ok %v or invalid", tt.name, err, tt.ok)
		}
	}
}
