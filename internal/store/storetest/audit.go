package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// testAudit: RecordAudit stores admin actions that AuditLog lists newest
// first, page by page, as recorded; an empty log is [], an entry without
// what it must hold is EINVALID and an id stored already ECONFLICT.
func testAudit(t *testing.T, s hub.Store) {
	if got, next, err := s.AuditLog(ctx(t), hub.Page{}); err != nil || got == nil || len(got) != 0 || next != "" {
		t.Fatalf("AuditLog(empty) = %#v, %q, %v; want [], \"\", nil", got, next, err)
	}
	var want []hub.AuditEntry
	for i, route := range []string{"/api/v1/endpoints", "/api/v1/endpoints/{id}", "/api/v1/tokens/{id}"} {
		e := hub.AuditEntry{ID: hub.NewID("aud", at(i)), At: at(i), TokenID: fmt.Sprintf("tok_%d", i), TokenName: "ops",
			Method: "POST", Route: route, Target: fmt.Sprintf("ep-%d", i), Status: 200 + i}
		if i == 0 {
			e.Target = ""
		}
		if err := s.RecordAudit(ctx(t), e); err != nil {
			t.Fatalf("RecordAudit(%d) = %v", i, err)
		}
		want = append([]hub.AuditEntry{e}, want...)
	}
	first, next, err := s.AuditLog(ctx(t), hub.Page{Limit: 2})
	if err != nil || len(first) != 2 || next == "" {
		t.Fatalf("AuditLog(limit 2) = %d entries, %q, %v; want 2 and a cursor", len(first), next, err)
	}
	rest, last, err := s.AuditLog(ctx(t), hub.Page{Limit: 2, Cursor: next})
	if err != nil || len(rest) != 1 || last != "" {
		t.Fatalf("AuditLog(second page) = %d entries, %q, %v; want 1 and no cursor", len(rest), last, err)
	}
	if d := diff(append(first, rest...), want); d != "" {
		t.Errorf("AuditLog differs from what was recorded: %s", d)
	}
	ok := want[0]
	for name, mutate := range map[string]func(*hub.AuditEntry){
		"no id":     func(e *hub.AuditEntry) { e.ID = "" },
		"no time":   func(e *hub.AuditEntry) { e.At = time.Time{} },
		"no token":  func(e *hub.AuditEntry) { e.TokenID = "" },
		"no route":  func(e *hub.AuditEntry) { e.Route = "" },
		"no status": func(e *hub.AuditEntry) { e.Status = 0 },
	} {
		e := ok
		e.ID = hub.NewID("aud", at(10))
		mutate(&e)
		wantCode(t, "RecordAudit("+name+")", s.RecordAudit(ctx(t), e), hub.EINVALID)
	}
	wantCode(t, "RecordAudit(id stored already)", s.RecordAudit(ctx(t), ok), hub.ECONFLICT)
	if got, _, _ := s.AuditLog(ctx(t), hub.Page{}); len(got) != 3 {
		t.Errorf("refused entries were stored: %d entries, want 3", len(got))
	}
}
