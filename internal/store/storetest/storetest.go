// Package storetest is the conformance suite every hub.Store implementation
// must pass. A store's own tests call Run with a function that opens a fresh,
// empty store:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) hub.Store { ... })
//	}
//
// A store that several processes may share (PostgreSQL) also calls
// RunShared, which runs the race tests with their work spread over several
// stores on one database.
//
// The suite holds a store to the contract documented on hub.Store and on the
// hub types, plus the choices both stores share:
//
//   - times round-trip to the microsecond at least (the suite's times have
//     microsecond precision, so a store on PostgreSQL timestamptz passes) and
//     come back equal (time.Equal), in any location;
//   - JSON (previews, event data) comes back equal as JSON, not necessarily
//     byte for byte;
//   - lists are newest first by id (ids sort by creation time), a cursor is
//     opaque, a page limit of 0 means hub.DefaultPageLimit, and a limit below
//     0 or above hub.MaxPageLimit, a malformed cursor, or an unknown status or
//     event type in a filter is EINVALID;
//   - a verification's Reasons are never nil (the API shows [] not null);
//   - a message or event id that is stored already, and a token hash that is
//     stored already, are ECONFLICT; a failed Ingest leaves nothing behind;
//   - after Close, methods return EUNAVAILABLE;
//   - the outbox's own choices, listed at the top of delivery.go.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// Run runs the conformance suite against the stores that open returns. open
// is called once per subtest, possibly from parallel subtests, and must
// return a fresh, empty store; Run closes it when the subtest ends (open may
// register its own cleanup, which runs after that Close).
func Run(t *testing.T, open func(t *testing.T) hub.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s hub.Store)
	}{
		{"Ping", testPing},
		{"IngestAndReadBack", testIngestAndReadBack},
		{"IngestSeveralObservations", testIngestSeveralObservations},
		{"Duplicate", testDuplicate},
		{"DuplicateKeyAtAnotherSource", testDuplicateKeyAtAnotherSource},
		{"NoDedupKeyNeverDuplicate", testNoDedupKey},
		{"Quarantined", testQuarantined},
		{"Rejection", testRejection},
		{"RejectionCount", testRejectionCount},
		{"FailedIngestLeavesNothing", testFailedIngest},
		{"IngestInvalid", testIngestInvalid},
		{"Ordering", testOrdering},
		{"DedupWhileCurrent", testDedupWhileCurrent},
		{"DedupWindow", testDedupWindow},
		{"FormerRef", testFormerRef},
		{"FormerRefInOneMessage", testFormerRefInOneMessage},
		{"Attempts", testAttempts},
		{"PerLevelVerifications", testPerLevel},
		{"VerificationFilters", testVerificationFilters},
		{"MessageFilters", testMessageFilters},
		{"EventFilters", testEventFilters},
		{"Pagination", testPagination},
		{"PageValidation", testPageValidation},
		{"NotFound", testNotFound},
		{"PurgeBodies", testPurgeBodies},
		{"PurgeEvents", testPurgeEvents},
		{"PurgeMessages", testPurgeMessages},
		{"PurgeDeliveries", testPurgeDeliveries},
		{"PurgeRejections", testPurgeRejections},
		{"PurgeInvalid", testPurgeInvalid},
		{"PurgeCounters", testPurgeCounters},
		{"Tokens", testTokens},
		{"TokenList", testTokenList},
		{"Audit", testAudit},
		{"TokenRevoke", testTokenRevoke},
		{"TokenExpiry", testTokenExpiry},
		{"TokenTouch", testTokenTouch},
		{"CertCache", testCertCache},
		{"Sources", testSources},
		{"SourceLifecycle", testSourceLifecycle},
		{"Activity", testActivity},
		{"StaleVerifications", testStaleVerifications},
		{"Sessions", testSessions},
		{"DedupRace", testDedupRace},
		{"DedupRaceWhileCurrent", testDedupRaceWhileCurrent},
		{"DedupRaceWindow", testDedupRaceWindow},
		{"OrderingRace", testOrderingRace},
		{"ConcurrentIngest", testConcurrentIngest},
		{"Endpoints", testEndpoints},
		{"EndpointVersion", testEndpointVersion},
		{"IngestCreatesDeliveries", testIngestCreatesDeliveries},
		{"ClaimLease", testClaimLease},
		{"RecordAttempt", testRecordAttempt},
		{"OrderedDelivery", testOrderedDelivery},
		{"OrderedBacklog", testOrderedBacklog},
		{"Release", testRelease},
		{"DeliveryFilters", testDeliveryFilters},
		{"RetryDelivery", testRetryDelivery},
		{"Replay", testReplay},
		{"QueueStats", testQueueStats},
		{"QueueStatsCap", testQueueStatsCap},
		{"DeliveryLatency", testDeliveryLatency},
		{"SampleQueue", testSampleQueue},
		{"DeleteEndpointCascades", testDeleteEndpointCascades},
		{"ClaimRace", testClaimRace},
		{"DispatchIngest", testDispatchIngest},
		{"DispatchClaimRecord", testDispatchClaimRecord},
		{"DispatchEnded", testDispatchEnded},
		{"ExpireDispatches", testExpireDispatches},
		{"DispatchFilters", testDispatchFilters},
		{"DispatchClaimRace", testDispatchClaimRace},
		{"Origins", testOrigins},
		{"Reprocess", testReprocess},
		{"ClaimPolls", testClaimPolls},
		{"Stuck", testStuck},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// t0 is the suite's reference time; its microsecond precision is what every
// store must keep.
var t0 = time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC)

// at returns t0 plus sec seconds.
func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// ctx returns a context for one call, canceled when the test ends.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// msg returns an accepted iDenfy-like message of source received at when,
// with a body holding personal data and a redacted preview.
func msg(source, dedup string, when time.Time) hub.Message {
	return hub.Message{
		ID:         hub.NewID("msg", when),
		SourceID:   source,
		Provider:   "idenfy",
		ReceivedAt: when,
		RemoteAddr: "203.0.113.7:41234",
		Status:     hub.MessageAccepted,
		HTTPStatus: 200,
		EventName:  "IDENTIFICATION_AUTO_FINISHED",
		DedupKey:   dedup,
		Origin:     hub.OriginCallback,
		Body:       []byte(`{"scanRef":"ref","clientId":"user-1","data":{"docFirstName":"JANE","docNumber":"X1234567"}}`),
		Preview:    json.RawMessage(`{"scanRef":"ref","clientId":"user-1","data":{"docFirstName":"[redacted]","docNumber":"[redacted]"}}`),
	}
}

// observe returns an observation of (source, ref, level) about message m,
// received when m was.
func observe(m hub.Message, ref, level string, status hub.Status, final bool) hub.Observation {
	return hub.Observation{
		VerificationKey: hub.VerificationKey{Source: m.SourceID, ProviderRef: ref, Level: level},
		Provider:        m.Provider,
		Kind:            hub.KindKYC,
		Status:          status,
		Final:           final,
		ProviderEvent:   m.EventName,
		ReceivedAt:      m.ReceivedAt,
		MessageID:       m.ID,
		Origin:          hub.OriginCallback,
	}
}

// otpEvent returns an otp.requested event of message m.
func otpEvent(m hub.Message) hub.Event {
	data, _ := json.Marshal(hub.OTPRequested{Channel: "sms", Recipient: "+37060000000", Text: "Your code is 123456", SessionRef: "sess-1"})
	return hub.Event{
		ID: hub.NewID("evt", m.ReceivedAt), Type: hub.EventOTPRequested, CreatedAt: m.ReceivedAt,
		Source: m.SourceID, Provider: m.Provider, Data: data, MessageID: m.ID,
	}
}

// ingest calls s.Ingest and fails the test on error.
func ingest(t *testing.T, s hub.Store, m hub.Message, obs []hub.Observation, events ...hub.Event) hub.IngestResult {
	t.Helper()
	res, err := s.Ingest(ctx(t), hub.Ingest{Message: m, Observations: obs, Events: events})
	if err != nil {
		t.Fatalf("Ingest(%s) = %v", m.ID, err)
	}
	return res
}

// ingestOne ingests a new message of source carrying one observation and
// returns the result.
func ingestOne(t *testing.T, s hub.Store, source, dedup string, when time.Time, o func(m hub.Message) hub.Observation) hub.IngestResult {
	t.Helper()
	m := msg(source, dedup, when)
	return ingest(t, s, m, []hub.Observation{o(m)})
}

// wantCode fails the test unless err carries the hub error code want.
func wantCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if got := hub.ErrorCode(err); got != want {
		t.Errorf("%s: error = %v (code %q), want code %q", what, err, got, want)
	}
}

// sameJSON reports whether a and b hold equal JSON values (both empty counts
// as equal).
func sameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// sameTime is time.Equal, for fields compared one by one.
func sameTime(a, b time.Time) bool { return a.Equal(b) }

// diff describes how got differs from want, field by field, or returns "".
// Times compare with Equal, json.RawMessage as JSON, and nil and empty
// slices alike (except where the caller checks that separately).
func diff(got, want any) string {
	var out []string
	diffValue(&out, "", reflect.ValueOf(got), reflect.ValueOf(want))
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprint(out)
}

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage(nil))
)

func diffValue(out *[]string, path string, g, w reflect.Value) {
	if g.Type() != w.Type() {
		*out = append(*out, fmt.Sprintf("%s: type %s, want %s", path, g.Type(), w.Type()))
		return
	}
	switch {
	case g.Type() == timeType:
		gt, wt := g.Interface().(time.Time), w.Interface().(time.Time)
		if !gt.Equal(wt) {
			*out = append(*out, fmt.Sprintf("%s: %s, want %s", path, gt.Format(time.RFC3339Nano), wt.Format(time.RFC3339Nano)))
		}
		return
	case g.Type() == rawType:
		if !sameJSON(g.Bytes(), w.Bytes()) {
			*out = append(*out, fmt.Sprintf("%s: %s, want %s", path, g.Bytes(), w.Bytes()))
		}
		return
	}
	switch g.Kind() {
	case reflect.Struct:
		for i := 0; i < g.NumField(); i++ {
			f := g.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Name
			if path != "" {
				name = path + "." + f.Name
			}
			diffValue(out, name, g.Field(i), w.Field(i))
		}
	case reflect.Slice:
		if g.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(g.Bytes(), w.Bytes()) {
				*out = append(*out, fmt.Sprintf("%s: %q, want %q", path, g.Bytes(), w.Bytes()))
			}
			return
		}
		if g.Len() != w.Len() {
			*out = append(*out, fmt.Sprintf("%s: %d elements %v, want %d %v", path, g.Len(), g.Interface(), w.Len(), w.Interface()))
			return
		}
		for i := 0; i < g.Len(); i++ {
			diffValue(out, fmt.Sprintf("%s[%d]", path, i), g.Index(i), w.Index(i))
		}
	case reflect.Map:
		if g.Len() != w.Len() {
			*out = append(*out, fmt.Sprintf("%s: %v, want %v", path, g.Interface(), w.Interface()))
			return
		}
		for _, k := range w.MapKeys() {
			gv := g.MapIndex(k)
			if !gv.IsValid() {
				*out = append(*out, fmt.Sprintf("%s[%v]: missing", path, k))
				continue
			}
			diffValue(out, fmt.Sprintf("%s[%v]", path, k), gv, w.MapIndex(k))
		}
	case reflect.Pointer:
		if g.IsNil() || w.IsNil() {
			if g.IsNil() != w.IsNil() {
				*out = append(*out, fmt.Sprintf("%s: %v, want %v", path, deref(g), deref(w)))
			}
			return
		}
		diffValue(out, path, g.Elem(), w.Elem())
	default:
		if !reflect.DeepEqual(g.Interface(), w.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: %v, want %v", path, g.Interface(), w.Interface()))
		}
	}
}

func deref(v reflect.Value) any {
	if v.IsNil() {
		return "nil"
	}
	return v.Elem().Interface()
}

// descending fails the test unless ids are strictly descending: newest first,
// no id twice.
func descending(t *testing.T, what string, ids []string) {
	t.Helper()
	for i := 1; i < len(ids); i++ {
		if ids[i-1] <= ids[i] {
			t.Errorf("%s: not newest first: %q before %q", what, ids[i-1], ids[i])
		}
	}
}

func messageIDs(ms []hub.Message) []string {
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids
}

func verificationIDs(vs []hub.Verification) []string {
	ids := make([]string, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	return ids
}

func eventIDs(es []hub.Event) []string {
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	return ids
}

// sorted returns ids sorted newest first, as lists must return them.
func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

// allMessages lists every message matching f, page by page.
func allMessages(t *testing.T, s hub.Store, f hub.MessageFilter) []hub.Message {
	t.Helper()
	return all(t, func(cursor string) ([]hub.Message, string, error) {
		f.Cursor = cursor
		return s.Messages(ctx(t), f)
	})
}

// allVerifications lists every verification matching f, page by page.
func allVerifications(t *testing.T, s hub.Store, f hub.VerificationFilter) []hub.Verification {
	t.Helper()
	return all(t, func(cursor string) ([]hub.Verification, string, error) {
		f.Cursor = cursor
		return s.Verifications(ctx(t), f)
	})
}

// allEvents lists every event matching f, page by page.
func allEvents(t *testing.T, s hub.Store, f hub.EventFilter) []hub.Event {
	t.Helper()
	return all(t, func(cursor string) ([]hub.Event, string, error) {
		f.Cursor = cursor
		return s.Events(ctx(t), f)
	})
}

func all[T any](t *testing.T, list func(cursor string) ([]T, string, error)) []T {
	t.Helper()
	var out []T
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("list never ends")
		}
		items, next, err := list(cursor)
		if err != nil {
			t.Fatalf("list (cursor %q) = %v", cursor, err)
		}
		out = append(out, items...)
		if next == "" {
			return out
		}
		if len(items) == 0 {
			t.Fatalf("empty page with next cursor %q", next)
		}
		cursor = next
	}
}

// updated decodes the data of a verification.updated event.
func updated(t *testing.T, e hub.Event) hub.VerificationUpdated {
	t.Helper()
	if e.Type != hub.EventVerificationUpdated {
		t.Fatalf("event %s has type %q, want %q", e.ID, e.Type, hub.EventVerificationUpdated)
	}
	var u hub.VerificationUpdated
	if err := json.Unmarshal(e.Data, &u); err != nil {
		t.Fatalf("event %s data: %v", e.ID, err)
	}
	return u
}

// verification reads one verification and fails the test on error.
func verification(t *testing.T, s hub.Store, id string) hub.Verification {
	t.Helper()
	v, err := s.Verification(ctx(t), id)
	if err != nil {
		t.Fatalf("Verification(%s) = %v", id, err)
	}
	if v.Reasons == nil {
		t.Errorf("Verification(%s).Reasons is nil, want a non-nil slice", id)
	}
	return v
}

// only returns the one verification matching f.
func only(t *testing.T, s hub.Store, f hub.VerificationFilter) hub.Verification {
	t.Helper()
	vs, _, err := s.Verifications(ctx(t), f)
	if err != nil {
		t.Fatalf("Verifications(%+v) = %v", f, err)
	}
	if len(vs) != 1 {
		t.Fatalf("Verifications(%+v) = %d verifications, want 1", f, len(vs))
	}
	return verification(t, s, vs[0].ID)
}
