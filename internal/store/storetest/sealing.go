package storetest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Raw reaches a store's database past the store, as whoever can write the
// database can: RunSealing uses it to move sealed values between rows.
type Raw struct {
	// Key is the store's encryption key.
	Key []byte
	// Get returns the stored value of table.column in the row whose id is id.
	Get func(t *testing.T, table, column, id string) []byte
	// Set stores v as table.column of the row whose id is id.
	Set func(t *testing.T, table, column, id string, v []byte)
}

// RunSealing runs the tests of sealed values on the store that open returns
// (fresh and empty, with Raw on the same database): a value sealed for one
// row does not open in another (nor in another column of its row), and the
// read fails with an error wrapping hub.ErrDecrypt instead of returning the
// other row's data; a value sealed before values were bound still opens.
func RunSealing(t *testing.T, open func(t *testing.T) (hub.Store, Raw)) {
	t.Run("SwappedValuesDoNotOpen", func(t *testing.T) {
		t.Parallel()
		s, raw := open(t)
		t.Cleanup(func() { s.Close() })
		testSwappedValues(t, s, raw)
	})
	t.Run("UnreadableDispatchesFail", func(t *testing.T) {
		t.Parallel()
		s, raw := open(t)
		t.Cleanup(func() { s.Close() })
		testUnreadableDispatches(t, s, raw)
	})
	t.Run("UnboundValuesOpen", func(t *testing.T) {
		t.Parallel()
		s, raw := open(t)
		t.Cleanup(func() { s.Close() })
		testUnboundValues(t, s, raw)
	})
}

// sealedRows stores two of every kind of row that holds a sealed value.
type sealedRows struct {
	msgs   [2]hub.Message
	events [2]hub.Event
	eps    [2]hub.Endpoint
	srcs   [2]hub.Source
}

func storeSealedRows(t *testing.T, s hub.Store) sealedRows {
	t.Helper()
	var r sealedRows
	for i := range 2 {
		e := newEndpoint(fmt.Sprintf("ep-%d", i), at(i))
		e.PreviousSecret, e.PreviousSecretExpiresAt = hub.NewEndpointSecret(), at(86400)
		createEndpoints(t, s, e)
		r.eps[i] = e
	}
	for i := range 2 {
		m := msg("src", fmt.Sprintf("seal-%d", i), at(i))
		m.Body = []byte(fmt.Sprintf(`{"scanRef":"ref-%d","name":"PERSON-%d"}`, i, i))
		ev := otpEvent(m)
		ev.Data = []byte(fmt.Sprintf(`{"text":"Your code is %d%d%d%d"}`, i, i, i, i))
		ingest(t, s, m, nil, ev)
		src := hub.Source{ID: fmt.Sprintf("src-%d", i), Provider: "idenfy",
			Secrets: map[string]string{"signing_key": fmt.Sprintf("key-of-source-%d", i)}}
		if err := s.UpsertSource(ctx(t), src); err != nil {
			t.Fatal(err)
		}
		r.msgs[i], r.events[i], r.srcs[i] = m, ev, src
	}
	return r
}

// sealedColumn is one column that holds sealed values, how to read a row's
// value through the store, and the plaintext each of the two rows has.
type sealedColumn struct {
	table, column string
	ids           [2]string
	read          func(id string) ([]byte, error)
	want          [2][]byte
}

func sealedColumns(t *testing.T, s hub.Store, r sealedRows) []sealedColumn {
	secretsJSON := func(src hub.Source) []byte { b, _ := json.Marshal(src.Secrets); return b }
	return []sealedColumn{
		{"messages", "body", [2]string{r.msgs[0].ID, r.msgs[1].ID}, func(id string) ([]byte, error) {
			m, err := s.Message(ctx(t), id)
			return m.Body, err
		}, [2][]byte{r.msgs[0].Body, r.msgs[1].Body}},
		{"events", "data", [2]string{r.events[0].ID, r.events[1].ID}, func(id string) ([]byte, error) {
			e, err := s.Event(ctx(t), id)
			return e.Data, err
		}, [2][]byte{r.events[0].Data, r.events[1].Data}},
		{"sources", "secrets", [2]string{r.srcs[0].ID, r.srcs[1].ID}, func(id string) ([]byte, error) {
			src, err := s.Source(ctx(t), id)
			if err != nil {
				return nil, err
			}
			return secretsJSON(src), nil
		}, [2][]byte{secretsJSON(r.srcs[0]), secretsJSON(r.srcs[1])}},
		{"endpoints", "secret", [2]string{r.eps[0].ID, r.eps[1].ID}, func(id string) ([]byte, error) {
			e, err := s.Endpoint(ctx(t), id)
			return []byte(e.Secret), err
		}, [2][]byte{[]byte(r.eps[0].Secret), []byte(r.eps[1].Secret)}},
		{"endpoints", "previous_secret", [2]string{r.eps[0].ID, r.eps[1].ID}, func(id string) ([]byte, error) {
			e, err := s.Endpoint(ctx(t), id)
			return []byte(e.PreviousSecret), err
		}, [2][]byte{[]byte(r.eps[0].PreviousSecret), []byte(r.eps[1].PreviousSecret)}},
	}
}

// wantSealedRefused fails the test unless a read returned an error wrapping
// hub.ErrDecrypt and no data, above all none of the rows' plaintexts.
func wantSealedRefused(t *testing.T, what string, got []byte, err error, plaintexts ...[]byte) {
	t.Helper()
	if !errors.Is(err, hub.ErrDecrypt) || !strings.Contains(err.Error(), "moved from another row") {
		t.Errorf("%s = %q, %v; want an error wrapping hub.ErrDecrypt", what, got, err)
	}
	for _, p := range plaintexts {
		if len(p) > 0 && bytes.Contains(got, p) {
			t.Errorf("%s returned another row's data: %q", what, got)
		}
	}
}

func testSwappedValues(t *testing.T, s hub.Store, raw Raw) {
	r := storeSealedRows(t, s)
	for _, col := range sealedColumns(t, s, r) {
		name := col.table + "." + col.column
		a, b := raw.Get(t, col.table, col.column, col.ids[0]), raw.Get(t, col.table, col.column, col.ids[1])
		raw.Set(t, col.table, col.column, col.ids[0], b)
		raw.Set(t, col.table, col.column, col.ids[1], a)
		for i := range 2 {
			got, err := col.read(col.ids[i])
			wantSealedRefused(t, fmt.Sprintf("%s of %s after the swap", name, col.ids[i]), got, err, col.want[0], col.want[1])
		}
		// Put back, each row reads its own value again: what failed was the
		// move, nothing else.
		raw.Set(t, col.table, col.column, col.ids[0], a)
		raw.Set(t, col.table, col.column, col.ids[1], b)
		for i := range 2 {
			if got, err := col.read(col.ids[i]); err != nil || !sameJSON(got, col.want[i]) {
				t.Errorf("%s of %s put back = %q, %v; want %q", name, col.ids[i], got, err, col.want[i])
			}
		}
	}

	// The lists and the claims refuse a moved value as the single reads do.
	raw.Set(t, "events", "data", r.events[0].ID, raw.Get(t, "events", "data", r.events[1].ID))
	_, _, err := s.Events(ctx(t), hub.EventFilter{})
	wantSealedRefused(t, "Events with a moved event data", nil, err)
	// A claim leaves the unreadable event out and makes its deliveries
	// dead letters that say why, instead of failing the whole batch at
	// every claim (a poison pill): the other event's deliveries go.
	cs := claim(t, s, at(100000), 10, time.Minute)
	for _, c := range cs {
		if c.Event.ID != r.events[1].ID || !sameJSON(c.Event.Data, r.events[1].Data) {
			t.Errorf("claim %s: event %s with data %q; want only %s with its own data", c.Delivery.ID, c.Event.ID, c.Event.Data, r.events[1].ID)
		}
	}
	if len(cs) != len(r.eps) {
		t.Errorf("ClaimDeliveries with a moved event data claimed %v; want %s's %d deliveries", claimed(cs), r.events[1].ID, len(r.eps))
	}
	dead, _, err := s.Deliveries(ctx(t), hub.DeliveryFilter{EventID: r.events[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dead {
		if d.Status != hub.DeliveryFailed || !strings.Contains(d.LastError, "moved from another row") {
			t.Errorf("delivery %s of the moved event data: %s, last error %q; want failed, saying why", d.ID, d.Status, d.LastError)
		}
	}
	if len(dead) != len(r.eps) {
		t.Errorf("the moved event has %d deliveries; want %d", len(dead), len(r.eps))
	}
	if cs := claim(t, s, at(100030), 10, time.Minute); len(cs) != 0 {
		t.Errorf("a claim within the lease got %v; want nothing", claimed(cs))
	}

	// Within one row: the secret in the previous secret's place.
	ep := r.eps[0]
	secret := raw.Get(t, "endpoints", "secret", ep.ID)
	prev := raw.Get(t, "endpoints", "previous_secret", ep.ID)
	raw.Set(t, "endpoints", "secret", ep.ID, prev)
	raw.Set(t, "endpoints", "previous_secret", ep.ID, secret)
	got, err := s.Endpoint(ctx(t), ep.ID)
	wantSealedRefused(t, "Endpoint with its secrets swapped", []byte(got.Secret+got.PreviousSecret), err,
		[]byte(ep.Secret), []byte(ep.PreviousSecret))
	_, err = s.Endpoints(ctx(t))
	wantSealedRefused(t, "Endpoints with one's secrets swapped", nil, err)
	// Once the leases end, the endpoint that cannot sign gets a dead letter
	// and the other its delivery.
	cs = claim(t, s, at(200000), 10, time.Minute)
	if len(cs) != 1 || cs[0].Endpoint.ID != r.eps[1].ID {
		t.Errorf("ClaimDeliveries with an endpoint's secrets swapped claimed %v; want %s's delivery alone", claimed(cs), r.eps[1].ID)
	}
	unsigned, _, err := s.Deliveries(ctx(t), hub.DeliveryFilter{EndpointID: ep.ID, EventID: r.events[1].ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(unsigned) != 1 || unsigned[0].Status != hub.DeliveryFailed || !strings.Contains(unsigned[0].LastError, "moved from another row") {
		t.Errorf("the delivery to the endpoint with its secrets swapped: %+v; want one, failed, saying why", unsigned)
	}

	srcSecrets := raw.Get(t, "sources", "secrets", r.srcs[1].ID)
	raw.Set(t, "sources", "secrets", r.srcs[0].ID, srcSecrets)
	_, err = s.Sources(ctx(t))
	wantSealedRefused(t, "Sources with a moved secret", nil, err)
}

// testUnreadableDispatches: a claim leaves out the dispatches whose content
// was moved and ends them failed, saying why, instead of failing the whole
// batch at every claim (a poison pill): the other dispatch is claimed.
func testUnreadableDispatches(t *testing.T, s hub.Store, raw Raw) {
	ep := newEndpoint("backoffice", at(-10))
	ep.EventTypes = []string{"dispatch.*"}
	createEndpoints(t, s, ep)
	var ds [3]hub.Dispatch
	for i := range ds {
		ds[i] = ingestOTP(t, s, "identomat-main", fmt.Sprintf("otp-%d", i), at(i), 5*time.Minute)
	}
	a, b := raw.Get(t, "dispatches", "content", ds[0].ID), raw.Get(t, "dispatches", "content", ds[1].ID)
	raw.Set(t, "dispatches", "content", ds[0].ID, b)
	raw.Set(t, "dispatches", "content", ds[1].ID, a)

	cs := claimDispatches(t, s, at(10), time.Minute)
	if len(cs) != 1 || cs[0].Dispatch.ID != ds[2].ID || cs[0].Dispatch.Content != ds[2].Content {
		t.Errorf("ClaimDispatches with two contents swapped = %+v; want %s alone, with its content", cs, ds[2].ID)
	}
	const why = "not sent: its content could not be decrypted"
	failed := map[string]bool{}
	for _, ev := range eventsOfType(t, s, hub.EventDispatchFailed) {
		var data hub.DispatchEnded
		if err := json.Unmarshal(ev.Data, &data); err != nil {
			t.Fatal(err)
		}
		if data.Error != why || data.Attempts != 0 || strings.Contains(string(ev.Data), ds[0].Content.Recipient) {
			t.Errorf("dispatch.failed of %s = %s; want its error %q, no attempt and no personal data", data.DispatchID, ev.Data, why)
		}
		failed[data.DispatchID] = true
		deliveryOf(t, s, "backoffice", ev.ID)
	}
	if len(failed) != 2 || !failed[ds[0].ID] || !failed[ds[1].ID] {
		t.Errorf("dispatch.failed raised for %v; want %s and %s", failed, ds[0].ID, ds[1].ID)
	}
	for _, d := range ds[:2] {
		got := getDispatch(t, s, d.ID)
		if got.Status != hub.DispatchFailed || got.LastError != why || got.Attempts != 0 || !got.UpdatedAt.Equal(at(10)) {
			t.Errorf("dispatch %s with a moved content = %s, %d attempts, error %q, updated %s; want failed at t0+10s, saying why",
				d.ID, got.Status, got.Attempts, got.LastError, got.UpdatedAt)
		}
		if c := raw.Get(t, "dispatches", "content", d.ID); len(c) != 0 {
			t.Errorf("dispatch %s failed kept its content (%d bytes); want it purged", d.ID, len(c))
		}
	}
	// Once the lease ends, nothing comes back: the failed ones are final.
	if again := claimDispatches(t, s, at(100), time.Minute); len(again) != 1 || again[0].Dispatch.ID != ds[2].ID {
		t.Errorf("ClaimDispatches after the lease = %+v; want %s alone", again, ds[2].ID)
	}
}

func testUnboundValues(t *testing.T, s hub.Store, raw Raw) {
	r := storeSealedRows(t, s)
	for _, col := range sealedColumns(t, s, r) {
		// Row 0 gets row 1's plaintext sealed the old way: it opens (that is
		// what "old values still open" means), as the plaintext given.
		old := SealUnbound(raw.Key, col.want[1])
		raw.Set(t, col.table, col.column, col.ids[0], old)
		if got, err := col.read(col.ids[0]); err != nil || !sameJSON(got, col.want[1]) {
			t.Errorf("%s.%s sealed before binding = %q, %v; want %q", col.table, col.column, got, err, col.want[1])
		}
	}
	// A claim opens an old event data and old endpoint secrets too.
	cs := claim(t, s, at(100000), 10, time.Minute)
	if len(cs) == 0 {
		t.Fatal("no claim")
	}
	for _, c := range cs {
		if c.Endpoint.Secret == "" || len(c.Event.Data) == 0 {
			t.Errorf("claim %s: endpoint secret %q, event data %q; want both", c.Delivery.ID, c.Endpoint.Secret, c.Event.Data)
		}
	}
}

// SealUnbound seals plaintext with key as verihook did before sealed values
// were bound to their row (format 1: no associated data), so that tests can
// show such values still open. It is written out here rather than borrowed
// from hub, so that it pins the old format down independently.
func SealUnbound(key, plaintext []byte) []byte {
	return sealOld(1, key, plaintext, nil)
}

// SealBound seals plaintext with key for column and row as verihook did
// before sealed values named their key (format 2), written out here for the
// same reason as SealUnbound.
func SealBound(key, plaintext []byte, column, row string) []byte {
	return sealOld(2, key, plaintext, []byte("verihook sealed v2\x00"+column+"\x00"+row))
}

func sealOld(version byte, key, plaintext, ad []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(append([]byte{version}, nonce...), nonce, plaintext, ad)
}
