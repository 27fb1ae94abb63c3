package sqlite

import (
	"context"
	"fmt"

	"github.com/verihook/verihook/internal/hub"
)

// RecordAudit stores an admin action (see hub.Store).
func (s *Store) RecordAudit(ctx context.Context, e hub.AuditEntry) error {
	if err := e.Prepare(); err != nil {
		return err
	}
	if err := checkTime(e.At, "at"); err != nil {
		return fmt.Errorf("record audit: %w", err)
	}
	return s.write(ctx, "record audit", func(tx *wtx) error {
		_, err := tx.exec(`INSERT INTO audit_log (id, at, token_id, token_name, method, route, target, status)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ID, toNanos(e.At), e.TokenID, e.TokenName, e.Method, e.Route, e.Target, e.Status)
		return err
	})
}

// AuditLog lists the admin actions newest first.
func (s *Store) AuditLog(ctx context.Context, p hub.Page) ([]hub.AuditEntry, string, error) {
	limit, cursor, err := p.Check()
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	var q query
	stmt, args := q.sql(`SELECT id, at, token_id, token_name, method, route, target, status FROM audit_log`, cursor, limit)
	return list(ctx, s, "list audit", stmt, args, limit, func(r scanner) (hub.AuditEntry, string, error) {
		var e hub.AuditEntry
		var at int64
		err := r.Scan(&e.ID, &at, &e.TokenID, &e.TokenName, &e.Method, &e.Route, &e.Target, &e.Status)
		e.At = fromNanos(at)
		return e, e.ID, err
	})
}
