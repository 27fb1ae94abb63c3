package storetest

import (
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

func testSources(t *testing.T, s hub.Store) {
	if got, err := s.Sources(ctx(t)); err != nil || len(got) != 0 {
		t.Fatalf("Sources(empty store) = %v, %v; want none", got, err)
	}
	fractal := hub.Source{ID: "fractal-main", Provider: "fractal", Managed: hub.ManagedConfig, CreatedAt: at(0), UpdatedAt: at(0),
		Secrets: map[string]string{"webhook_secret": "fr-secret", "webhook_secrets.verification_approved": "fr-approved"}}
	idenfy := hub.Source{ID: "idenfy-main", Provider: "idenfy", Managed: hub.ManagedAPI, CreatedAt: at(1), UpdatedAt: at(1),
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
	changed := hub.Source{ID: "idenfy-main", Provider: "kycaid", Managed: hub.ManagedConfig, CreatedAt: at(50), UpdatedAt: at(60),
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
	wantCode(t, "UpsertSource after Close", s.UpsertSource(c, hub.Source{ID: "x", Provider: "idenfy"}), hub.EUNAVAILABLE)
	_, err = s.Purge(c, hub.Purge{Before: at(10)})
	wantCode(t, "Purge after Close", err, hub.EUNAVAILABLE)
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
