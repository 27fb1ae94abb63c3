package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/verihook/verihook/internal/hub"
)

// vkey names a verification in the filter tests.
type vkey struct{ source, ref, level string }

func testVerificationFilters(t *testing.T, s hub.Store) {
	type fixture struct {
		key       vkey
		applicant string
		status    hub.Status
		final     bool
	}
	fixtures := []fixture{
		{vkey{"s1", "r1", ""}, "u1", hub.StatusApproved, true},
		{vkey{"s1", "r2", ""}, "u2", hub.StatusRejected, true},
		{vkey{"s1", "r3", "basic"}, "u1", hub.StatusPending, false},
		{vkey{"s2", "r1", ""}, "u3", hub.StatusApproved, true},
		{vkey{"s2", "r4", "basic"}, "", hub.StatusReview, false},
		{vkey{"s2", "r4", "plus"}, "", hub.StatusReview, false},
	}
	ids := map[string]vkey{}
	for i, f := range fixtures {
		res := ingestOne(t, s, f.key.source, fmt.Sprint(i), at(i), func(m hub.Message) hub.Observation {
			o := observe(m, f.key.ref, f.key.level, f.status, f.final)
			o.ApplicantRef = f.applicant
			return o
		})
		ids[updated(t, res.Events[0]).Verification.ID] = f.key
	}
	tests := []struct {
		name   string
		filter hub.VerificationFilter
		want   []vkey
	}{
		{"all", hub.VerificationFilter{}, []vkey{fixtures[0].key, fixtures[1].key, fixtures[2].key, fixtures[3].key, fixtures[4].key, fixtures[5].key}},
		{"source", hub.VerificationFilter{Source: "s1"}, []vkey{fixtures[0].key, fixtures[1].key, fixtures[2].key}},
		{"status", hub.VerificationFilter{Status: hub.StatusApproved}, []vkey{fixtures[0].key, fixtures[3].key}},
		{"applicant_ref", hub.VerificationFilter{ApplicantRef: "u1"}, []vkey{fixtures[0].key, fixtures[2].key}},
		{"provider_ref", hub.VerificationFilter{ProviderRef: "r1"}, []vkey{fixtures[0].key, fixtures[3].key}},
		{"level", hub.VerificationFilter{Level: "basic"}, []vkey{fixtures[2].key, fixtures[4].key}},
		{"source and status", hub.VerificationFilter{Source: "s2", Status: hub.StatusReview}, []vkey{fixtures[4].key, fixtures[5].key}},
		{"source and provider_ref", hub.VerificationFilter{Source: "s2", ProviderRef: "r1"}, []vkey{fixtures[3].key}},
		{"provider_ref and level", hub.VerificationFilter{ProviderRef: "r4", Level: "plus"}, []vkey{fixtures[5].key}},
		{"no match", hub.VerificationFilter{Source: "s1", ApplicantRef: "u3"}, nil},
		{"unknown source", hub.VerificationFilter{Source: "nope"}, nil},
		{"provider", hub.VerificationFilter{Provider: "idenfy", Level: "basic"}, []vkey{fixtures[2].key, fixtures[4].key}},
		{"other provider", hub.VerificationFilter{Provider: "fractal"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vs, next, err := s.Verifications(ctx(t), tc.filter)
			if err != nil || next != "" {
				t.Fatalf("Verifications = next %q, %v", next, err)
			}
			if vs == nil {
				vs = []hub.Verification{}
			}
			descending(t, "Verifications", verificationIDs(vs))
			var got []vkey
			for _, v := range vs {
				got = append(got, ids[v.ID])
				if k := (vkey{v.Source, v.ProviderRef, v.Level}); k != ids[v.ID] {
					t.Errorf("verification %s is %v, want %v", v.ID, k, ids[v.ID])
				}
			}
			sortKeys(got)
			want := slices.Clone(tc.want)
			sortKeys(want)
			if !slices.Equal(got, want) {
				t.Errorf("Verifications(%+v) = %v, want %v", tc.filter, got, want)
			}
		})
	}
}

func sortKeys(ks []vkey) {
	slices.SortFunc(ks, func(a, b vkey) int {
		return strings.Compare(a.source+"/"+a.ref+"/"+a.level, b.source+"/"+b.ref+"/"+b.level)
	})
}

func testMessageFilters(t *testing.T, s hub.Store) {
	var s1acc, s1q, s1rej, s2acc []string
	for i := range 2 {
		m := msg("s1", fmt.Sprint("a", i), at(i))
		ingest(t, s, m, nil)
		s1acc = append(s1acc, m.ID)
	}
	q := msg("s1", "q", at(2))
	q.Status = hub.MessageQuarantined
	ingest(t, s, q, nil)
	s1q = append(s1q, q.ID)
	r := msg("s1", "", at(3))
	r.Status, r.HTTPStatus = hub.MessageRejected, 401
	if err := s.RecordRejection(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	s1rej = append(s1rej, r.ID)
	m := msg("s2", "a", at(4))
	ingest(t, s, m, nil)
	s2acc = append(s2acc, m.ID)

	cat := func(lists ...[]string) []string { return slices.Concat(lists...) }
	tests := []struct {
		name   string
		filter hub.MessageFilter
		want   []string
	}{
		{"all", hub.MessageFilter{}, cat(s1acc, s1q, s1rej, s2acc)},
		{"source", hub.MessageFilter{Source: "s1"}, cat(s1acc, s1q, s1rej)},
		{"status accepted", hub.MessageFilter{Status: hub.MessageAccepted}, cat(s1acc, s2acc)},
		{"status quarantined", hub.MessageFilter{Status: hub.MessageQuarantined}, s1q},
		{"status rejected", hub.MessageFilter{Status: hub.MessageRejected}, s1rej},
		{"source and status", hub.MessageFilter{Source: "s2", Status: hub.MessageAccepted}, s2acc},
		{"no match", hub.MessageFilter{Source: "s2", Status: hub.MessageRejected}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms, next, err := s.Messages(ctx(t), tc.filter)
			if err != nil || next != "" {
				t.Fatalf("Messages = next %q, %v", next, err)
			}
			if got, want := messageIDs(ms), sorted(tc.want); !slices.Equal(got, want) {
				t.Errorf("Messages(%+v) = %v, want %v", tc.filter, got, want)
			}
			for _, m := range ms {
				if m.Body != nil {
					t.Errorf("Messages returned a body for %s", m.ID)
				}
			}
		})
	}
}

func testEventFilters(t *testing.T, s hub.Store) {
	m1 := msg("s1", "1", at(0))
	r1 := ingest(t, s, m1, []hub.Observation{observe(m1, "r1", "", hub.StatusPending, false)}, otpEvent(m1))
	m2 := msg("s1", "2", at(1))
	r2 := ingest(t, s, m2, []hub.Observation{observe(m2, "r1", "", hub.StatusApproved, true)})
	m3 := msg("s2", "3", at(2))
	r3 := ingest(t, s, m3, []hub.Observation{observe(m3, "r9", "", hub.StatusApproved, true)}, otpEvent(m3))
	ver1 := r1.Events[0].VerificationID
	if ver1 == "" || r2.Events[0].VerificationID != ver1 {
		t.Fatalf("verification ids of events: %q, %q; want the same, non-empty", ver1, r2.Events[0].VerificationID)
	}
	if r1.Events[1].VerificationID != "" {
		t.Errorf("otp event got verification id %q", r1.Events[1].VerificationID)
	}
	upd1, otp1, upd2, upd3, otp3 := r1.Events[0].ID, r1.Events[1].ID, r2.Events[0].ID, r3.Events[0].ID, r3.Events[1].ID
	tests := []struct {
		name   string
		filter hub.EventFilter
		want   []string
	}{
		{"all", hub.EventFilter{}, []string{upd1, otp1, upd2, upd3, otp3}},
		{"source", hub.EventFilter{Source: "s1"}, []string{upd1, otp1, upd2}},
		{"type", hub.EventFilter{Type: hub.EventVerificationUpdated}, []string{upd1, upd2, upd3}},
		{"type otp", hub.EventFilter{Type: hub.EventOTPRequested}, []string{otp1, otp3}},
		{"verification", hub.EventFilter{VerificationID: ver1}, []string{upd1, upd2}},
		{"source and type", hub.EventFilter{Source: "s2", Type: hub.EventOTPRequested}, []string{otp3}},
		{"no match", hub.EventFilter{Source: "s2", VerificationID: ver1}, nil},
		{"ids", hub.EventFilter{IDs: []string{otp1, upd3, "evt-nope"}}, []string{otp1, upd3}},
		{"ids and source", hub.EventFilter{IDs: []string{otp1, upd3}, Source: "s2"}, []string{upd3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es, next, err := s.Events(ctx(t), tc.filter)
			if err != nil || next != "" {
				t.Fatalf("Events = next %q, %v", next, err)
			}
			if got, want := eventIDs(es), sorted(tc.want); !slices.Equal(got, want) {
				t.Errorf("Events(%+v) = %v, want %v", tc.filter, got, want)
			}
		})
	}
	_, _, err := s.Events(ctx(t), hub.EventFilter{IDs: make([]string, hub.MaxPageLimit+1)})
	wantCode(t, "Events(too many ids)", err, hub.EINVALID)
}

// testPagination: pages of every size cover each list exactly once, newest
// first, and the last page has no next cursor, even when it is full.
func testPagination(t *testing.T, s hub.Store) {
	const n = 60 // more than hub.DefaultPageLimit
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		msgs []string
	)
	for i := range n {
		m := msg(fmt.Sprintf("s%d", i%2), fmt.Sprint(i), at(i))
		in := hub.Ingest{Message: m, Observations: []hub.Observation{observe(m, fmt.Sprint("ref-", i), "", hub.StatusPending, false)},
			Events: []hub.Event{otpEvent(m)}}
		wg.Go(func() {
			if _, err := s.Ingest(ctx(t), in); err != nil {
				t.Errorf("Ingest = %v", err)
			}
			mu.Lock()
			msgs = append(msgs, in.Message.ID)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// The first page at the default limit.
	ms, next, err := s.Messages(ctx(t), hub.MessageFilter{})
	if err != nil || len(ms) != hub.DefaultPageLimit || next == "" {
		t.Fatalf("Messages(limit 0) = %d, next %q, %v; want %d and a next cursor", len(ms), next, err, hub.DefaultPageLimit)
	}
	vs, next, err := s.Verifications(ctx(t), hub.VerificationFilter{})
	if err != nil || len(vs) != hub.DefaultPageLimit || next == "" {
		t.Fatalf("Verifications(limit 0) = %d, next %q, %v; want %d and a next cursor", len(vs), next, err, hub.DefaultPageLimit)
	}
	es, next, err := s.Events(ctx(t), hub.EventFilter{})
	if err != nil || len(es) != hub.DefaultPageLimit || next == "" {
		t.Fatalf("Events(limit 0) = %d, next %q, %v; want %d and a next cursor", len(es), next, err, hub.DefaultPageLimit)
	}

	wantMsgs := sorted(msgs)
	allVers := verificationIDs(allVerifications(t, s, hub.VerificationFilter{Page: hub.Page{Limit: hub.MaxPageLimit}}))
	allEvts := eventIDs(allEvents(t, s, hub.EventFilter{Page: hub.Page{Limit: hub.MaxPageLimit}}))
	if len(allVers) != n || len(allEvts) != 2*n {
		t.Fatalf("%d verifications and %d events, want %d and %d", len(allVers), len(allEvts), n, 2*n)
	}
	for _, limit := range []int{1, 7, 30, n, n + 1, 2 * n, hub.MaxPageLimit} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			checkPages(t, "Messages", limit, wantMsgs, func(cursor string) ([]string, string, error) {
				ms, next, err := s.Messages(ctx(t), hub.MessageFilter{Page: hub.Page{Limit: limit, Cursor: cursor}})
				return messageIDs(ms), next, err
			})
			checkPages(t, "Verifications", limit, allVers, func(cursor string) ([]string, string, error) {
				vs, next, err := s.Verifications(ctx(t), hub.VerificationFilter{Page: hub.Page{Limit: limit, Cursor: cursor}})
				return verificationIDs(vs), next, err
			})
			checkPages(t, "Events", limit, allEvts, func(cursor string) ([]string, string, error) {
				es, next, err := s.Events(ctx(t), hub.EventFilter{Page: hub.Page{Limit: limit, Cursor: cursor}})
				return eventIDs(es), next, err
			})
		})
	}

	// Filters and cursors together.
	var s1 []string
	for _, id := range wantMsgs {
		m, err := s.Message(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if m.SourceID == "s1" {
			s1 = append(s1, id)
		}
	}
	checkPages(t, "Messages(source s1)", 7, s1, func(cursor string) ([]string, string, error) {
		ms, next, err := s.Messages(ctx(t), hub.MessageFilter{Source: "s1", Page: hub.Page{Limit: 7, Cursor: cursor}})
		return messageIDs(ms), next, err
	})
	var otps []string
	for _, e := range allEvents(t, s, hub.EventFilter{}) {
		if e.Type == hub.EventOTPRequested {
			otps = append(otps, e.ID)
		}
	}
	checkPages(t, "Events(type otp.requested)", 9, otps, func(cursor string) ([]string, string, error) {
		es, next, err := s.Events(ctx(t), hub.EventFilter{Type: hub.EventOTPRequested, Page: hub.Page{Limit: 9, Cursor: cursor}})
		return eventIDs(es), next, err
	})
	var s0 []string
	for _, v := range allVerifications(t, s, hub.VerificationFilter{}) {
		if v.Source == "s0" {
			s0 = append(s0, v.ID)
		}
	}
	checkPages(t, "Verifications(source s0)", 4, s0, func(cursor string) ([]string, string, error) {
		vs, next, err := s.Verifications(ctx(t), hub.VerificationFilter{Source: "s0", Page: hub.Page{Limit: 4, Cursor: cursor}})
		return verificationIDs(vs), next, err
	})
}

// checkPages follows a list's cursors at limit and checks that the pages are
// full but the last, which has no next cursor, and together are want, newest
// first.
func checkPages(t *testing.T, what string, limit int, want []string, list func(cursor string) ([]string, string, error)) {
	t.Helper()
	var got []string
	cursor := ""
	for pages := 1; ; pages++ {
		ids, next, err := list(cursor)
		if err != nil {
			t.Fatalf("%s page %d (limit %d) = %v", what, pages, limit, err)
		}
		got = append(got, ids...)
		if next == "" {
			if len(ids) == 0 && pages > 1 {
				t.Errorf("%s: page %d is empty: page %d, the last with items, should have had no next cursor", what, pages, pages-1)
			}
			wantLast := len(want) - (pages-1)*limit
			if len(ids) != wantLast {
				t.Errorf("%s: last page (%d) has %d items, want %d", what, pages, len(ids), wantLast)
			}
			break
		}
		if len(ids) != limit {
			t.Fatalf("%s: page %d has %d items and a next cursor, want %d", what, pages, len(ids), limit)
		}
		if pages > len(want)+1 {
			t.Fatalf("%s: more pages than items", what)
		}
		cursor = next
	}
	if !slices.Equal(got, sorted(want)) {
		t.Errorf("%s at limit %d: pages = %v, want %v", what, limit, got, sorted(want))
	}
}

func testPageValidation(t *testing.T, s hub.Store) {
	m := msg("s1", "1", at(0))
	ingest(t, s, m, []hub.Observation{observe(m, "r1", "", hub.StatusPending, false)})
	bad := []hub.Page{
		{Limit: -1},
		{Limit: hub.MaxPageLimit + 1},
		{Cursor: "not a cursor"},
		{Cursor: "💥"},
		{Cursor: "' OR '1'='1"},
		{Cursor: strings.Repeat("A", 5000)},
	}
	for _, p := range bad {
		_, _, err := s.Messages(ctx(t), hub.MessageFilter{Page: p})
		wantCode(t, fmt.Sprintf("Messages(%+v)", p), err, hub.EINVALID)
		_, _, err = s.Verifications(ctx(t), hub.VerificationFilter{Page: p})
		wantCode(t, fmt.Sprintf("Verifications(%+v)", p), err, hub.EINVALID)
		_, _, err = s.Events(ctx(t), hub.EventFilter{Page: p})
		wantCode(t, fmt.Sprintf("Events(%+v)", p), err, hub.EINVALID)
	}
	_, _, err := s.Messages(ctx(t), hub.MessageFilter{Status: "lost"})
	wantCode(t, "Messages(unknown status)", err, hub.EINVALID)
	_, _, err = s.Verifications(ctx(t), hub.VerificationFilter{Status: "maybe"})
	wantCode(t, "Verifications(unknown status)", err, hub.EINVALID)
	_, _, err = s.Events(ctx(t), hub.EventFilter{Type: "verification.exploded"})
	wantCode(t, "Events(unknown type)", err, hub.EINVALID)
	// The largest limit is fine.
	if _, _, err := s.Messages(ctx(t), hub.MessageFilter{Page: hub.Page{Limit: hub.MaxPageLimit}}); err != nil {
		t.Errorf("Messages(limit %d) = %v", hub.MaxPageLimit, err)
	}
}

func testNotFound(t *testing.T, s hub.Store) {
	m := msg("s1", "1", at(0))
	ingest(t, s, m, []hub.Observation{observe(m, "r1", "", hub.StatusPending, false)})
	_, err := s.Message(ctx(t), hub.NewID("msg", at(0)))
	wantCode(t, "Message(unknown)", err, hub.ENOTFOUND)
	_, err = s.Verification(ctx(t), hub.NewID("ver", at(0)))
	wantCode(t, "Verification(unknown)", err, hub.ENOTFOUND)
	_, err = s.Event(ctx(t), hub.NewID("evt", at(0)))
	wantCode(t, "Event(unknown)", err, hub.ENOTFOUND)
	_, err = s.Source(ctx(t), "no-such-source")
	wantCode(t, "Source(unknown)", err, hub.ENOTFOUND)
	_, err = s.TokenByHash(ctx(t), "sha256:0000")
	wantCode(t, "TokenByHash(unknown)", err, hub.ENOTFOUND)
}
