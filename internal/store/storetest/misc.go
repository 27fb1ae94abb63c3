package storetest

import (
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// testPurgeBodies: purging drops the bodies of old messages and keeps
// everything else, including the preview of a message stored without one,
// rendered from its body before and kept after.
func testPurgeBodies(t *testing.T, s hub.Store) {
	var ms []hub.Message
	for i, when := range []time.Time{at(0), at(3600), at(7200)} {
		m := msg("s1", string(rune('a'+i)), when)
		ingest(t, s, m, []hub.Observation{observe(m, "r1", "", hub.StatusPending, false)}, otpEvent(m))
		ms = append(ms, m)
	}
	// As the ingest service stores them: no preview.
	bare := msg("s1", "bare", at(60))
	bare.Body = []byte(`{"scanRef":"ref-2","clientId":"user-2","data":{"docFirstName":"JOHN"}}`)
	bare.Preview = nil
	ingest(t, s, bare, nil)
	rendered := `{"scanRef":"ref-2","clientId":"user-2","data":{"docFirstName":"[redacted]"}}`
	checkBare := func(when string) {
		t.Helper()
		got, err := s.Message(ctx(t), bare.ID)
		if err != nil || !sameJSON(got.Preview, []byte(rendered)) {
			t.Errorf("%s: Message(bare).Preview = %s, %v; want %s", when, got.Preview, err, rendered)
		}
		for _, m := range allMessages(t, s, hub.MessageFilter{}) {
			if m.ID == bare.ID && !sameJSON(m.Preview, []byte(rendered)) {
				t.Errorf("%s: Messages: bare preview = %s, want %s", when, m.Preview, rendered)
			}
		}
	}
	checkBare("before the purge")
	n, err := s.PurgeBodies(ctx(t), at(120))
	if err != nil || n != 2 {
		t.Fatalf("PurgeBodies(first two) = %d, %v; want 2, nil", n, err)
	}
	checkBare("after the purge")
	if got, _ := s.Message(ctx(t), bare.ID); got.Body != nil {
		t.Errorf("bare message kept its body")
	}
	n, err = s.PurgeBodies(ctx(t), at(5400))
	if err != nil || n != 1 {
		t.Fatalf("PurgeBodies = %d, %v; want 1, nil", n, err)
	}
	for i, m := range ms {
		got, err := s.Message(ctx(t), m.ID)
		if err != nil {
			t.Fatalf("Message(%s) after purge = %v", m.ID, err)
		}
		want := m
		if i < 2 {
			want.Body = nil
		}
		got.Events = nil
		if d := diff(got, want); d != "" {
			t.Errorf("message %d after purge differs: %s", i, d)
		}
		if i < 2 && got.Body != nil {
			t.Errorf("message %d kept its body", i)
		}
	}
	if got := allMessages(t, s, hub.MessageFilter{}); len(got) != 4 {
		t.Errorf("%d messages after purge, want 4", len(got))
	}
	v := only(t, s, hub.VerificationFilter{})
	if len(v.Timeline) != 3 || v.Timeline[0].MessageID != ms[0].ID {
		t.Errorf("timeline after purge: %d entries, want 3, the first from %s", len(v.Timeline), ms[0].ID)
	}
	if es := allEvents(t, s, hub.EventFilter{}); len(es) != 4 {
		t.Errorf("%d events after purge, want 4", len(es))
	}
	// Again: nothing left to purge.
	if n, err := s.PurgeBodies(ctx(t), at(5400)); err != nil || n != 0 {
		t.Errorf("PurgeBodies again = %d, %v; want 0, nil", n, err)
	}
	if n, err := s.PurgeBodies(ctx(t), at(99999)); err != nil || n != 1 {
		t.Errorf("PurgeBodies(all) = %d, %v; want 1, nil", n, err)
	}
}

func testSources(t *testing.T, s hub.Store) {
	if got, err := s.Sources(ctx(t)); err != nil || len(got) != 0 {
		t.Fatalf("Sources(empty store) = %v, %v; want none", got, err)
	}
	fractal := hub.Source{ID: "fractal-main", Provider: hub.ProviderFractal, CreatedAt: at(0), UpdatedAt: at(0),
		Secrets: map[string]string{"webhook_secret": "fr-secret", "webhook_secrets.verification_approved": "fr-approved"}}
	idenfy := hub.Source{ID: "idenfy-main", Provider: hub.ProviderIdenfy, CreatedAt: at(1), UpdatedAt: at(1),
		Secrets: map[string]string{"signing_key": "id-signing-key"}}
	// Inserted out of order: Sources sorts by id.
	for _, src := range []hub.Source{idenfy, fractal} {
		if err := s.UpsertSource(ctx(t), src); err != nil {
			t.Fatalf("UpsertSource(%s) = %v", src.ID, err)
		}
	}
	for _, src := range []hub.Source{fractal, idenfy} {
		got, err := s.Source(ctx(t), src.ID)
		if err != nil {
			t.Fatalf("Source(%s) = %v", src.ID, err)
		}
		if d := diff(got, src); d != "" {
			t.Errorf("Source(%s) differs: %s", src.ID, d)
		}
	}
	list, err := s.Sources(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(list, []hub.Source{fractal, idenfy}); d != "" {
		t.Errorf("Sources differs: %s", d)
	}

	// Upserting again replaces provider and secrets, keeps CreatedAt.
	changed := hub.Source{ID: "idenfy-main", Provider: hub.ProviderKYCAID, CreatedAt: at(50), UpdatedAt: at(60),
		Secrets: map[string]string{"api_token": "new-token"}}
	if err := s.UpsertSource(ctx(t), changed); err != nil {
		t.Fatalf("UpsertSource(again) = %v", err)
	}
	got, err := s.Source(ctx(t), "idenfy-main")
	if err != nil {
		t.Fatal(err)
	}
	want := changed
	want.CreatedAt = idenfy.CreatedAt
	if d := diff(got, want); d != "" {
		t.Errorf("Source after upsert differs: %s", d)
	}
	if list, _ := s.Sources(ctx(t)); len(list) != 2 {
		t.Errorf("%d sources after an upsert of an existing one, want 2", len(list))
	}
}

// testClosed: a closed store says it is unavailable.
func testClosed(t *testing.T, s hub.Store) {
	m := msg("s1", "1", at(0))
	ingest(t, s, m, nil)
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	c := ctx(t)
	wantCode(t, "Ping after Close", s.Ping(c), hub.EUNAVAILABLE)
	_, err := s.Ingest(c, hub.Ingest{Message: msg("s1", "2", at(1))})
	wantCode(t, "Ingest after Close", err, hub.EUNAVAILABLE)
	wantCode(t, "RecordRejection after Close", s.RecordRejection(c, msg("s1", "", at(1))), hub.EUNAVAILABLE)
	_, _, err = s.Messages(c, hub.MessageFilter{})
	wantCode(t, "Messages after Close", err, hub.EUNAVAILABLE)
	_, err = s.Message(c, m.ID)
	wantCode(t, "Message after Close", err, hub.EUNAVAILABLE)
	_, err = s.Sources(c)
	wantCode(t, "Sources after Close", err, hub.EUNAVAILABLE)
	wantCode(t, "UpsertSource after Close", s.UpsertSource(c, hub.Source{ID: "x", Provider: hub.ProviderIdenfy}), hub.EUNAVAILABLE)
	_, err = s.PurgeBodies(c, at(10))
	wantCode(t, "PurgeBodies after Close", err, hub.EUNAVAILABLE)
	wantCode(t, "CreateEndpoint after Close", s.CreateEndpoint(c, newEndpoint("ep", at(0))), hub.EUNAVAILABLE)
	_, err = s.Endpoints(c)
	wantCode(t, "Endpoints after Close", err, hub.EUNAVAILABLE)
	_, err = s.ClaimDeliveries(c, at(10), 10, time.Minute)
	wantCode(t, "ClaimDeliveries after Close", err, hub.EUNAVAILABLE)
	_, _, err = s.Deliveries(c, hub.DeliveryFilter{})
	wantCode(t, "Deliveries after Close", err, hub.EUNAVAILABLE)
	_, err = s.QueueStats(c, at(10))
	wantCode(t, "QueueStats after Close", err, hub.EUNAVAILABLE)
}
