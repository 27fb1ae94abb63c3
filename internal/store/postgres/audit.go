package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	_, err := s.exec(ctx, `INSERT INTO audit_log (id, at, token_id, token_name, method, route, target, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		e.ID, ts(e.At), clean(e.TokenID), clean(e.TokenName), clean(e.Method), clean(e.Route), clean(e.Target), e.Status)
	return fail("record audit", err)
}

// AuditLog lists the admin actions newest first.
func (s *Store) AuditLog(ctx context.Context, p hub.Page) ([]hub.AuditEntry, string, error) {
	limit, cursor, err := p.Check()
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	var q listQuery
	stmt, args := q.sql(`SELECT id, at, token_id, token_name, method, route, target, status FROM audit_log`, cursor, limit)
	return list(ctx, s, "list audit", stmt, args, limit, func(r pgx.Row) (hub.AuditEntry, string, error) {
		var e hub.AuditEntry
		var at time.Time
		err := r.Scan(&e.ID, &at, &e.TokenID, &e.TokenName, &e.Method, &e.Route, &e.Target, &e.Status)
		e.At = at.UTC()
		return e, e.ID, err
	})
}
