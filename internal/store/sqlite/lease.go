package sqlite

import "github.com/verihook/verihook/internal/hub"

// A lease on an SQLite store lives in the store's memory, not in the
// deliveries table, so that claiming a delivery writes nothing: a claim
// reads the due deliveries in the writer's transaction, which stays empty and
// commits without a WAL frame or an fsync, and RecordAttempt and Release
// check the token here. (The deliveries' lease and lease_until columns are
// left over from when they held it; nothing reads them.)
//
// That is sound because one process delivers from an SQLite file: only
// `verihook serve` claims deliveries, and the other subcommands that open the
// file while it runs (token, doctor, backup, reconcile) never claim. Nothing
// locks a second `serve` out of the same file; it would lease the same
// deliveries again and send them twice, and `verihook migrate` refuses to
// rebuild a file that another process has open. Running several instances
// takes PostgreSQL, whose leases are rows.
//
// A crash or a restart drops every lease, exactly as if each had ended:
// the deliveries are pending in the table and due again at once, so
// at-least-once delivery holds, as it does when a lease ends in a running
// process.
//
// Only the writer goroutine touches the leases, from inside the write
// functions, so a claim is serialized with every other write as before. A
// change to them is logged on the transaction (wtx.onRollback) and undone
// when the transaction, or the request's savepoint, rolls back, so that they
// always agree with what committed, and a write function run twice (see
// Store.commit) finds them as it did the first time.

// heldLease is a delivery's lease: its token and when it ends (nanoseconds).
type heldLease struct {
	token string
	until int64
}

// held reports whether delivery id is leased at now (nanoseconds).
func (s *Store) held(id string, now int64) bool {
	l, ok := s.leases[id]
	return ok && l.until > now
}

// lease gives delivery id to token until until, in tx.
func (s *Store) lease(tx *wtx, id string, l heldLease) {
	s.restoreOnRollback(tx, id)
	s.leases[id] = l
}

// unlease ends delivery id's lease, if any, in tx.
func (s *Store) unlease(tx *wtx, id string) {
	if _, ok := s.leases[id]; ok {
		s.restoreOnRollback(tx, id)
		delete(s.leases, id)
	}
}

// takeLease ends delivery id's lease in tx if its token is token: the
// holder's RecordAttempt or Release. Otherwise it changes nothing and
// returns ENOTFOUND for an unknown delivery, ECONFLICT for a lease that is
// not token (it ended and went to another worker, or the delivery was
// retried, replayed or finished meanwhile). A token whose lease has ended is
// still good while nobody has claimed the delivery again.
func (s *Store) takeLease(tx *wtx, id, token string) error {
	if l, ok := s.leases[id]; !ok || l.token != token {
		return s.leaseConflict(tx, id)
	}
	s.unlease(tx, id)
	return nil
}

// restoreOnRollback logs delivery id's lease as it is now on tx, to be put
// back if tx rolls back.
func (s *Store) restoreOnRollback(tx *wtx, id string) {
	l, ok := s.leases[id]
	tx.onRollback(func() {
		if ok {
			s.leases[id] = l
		} else {
			delete(s.leases, id)
		}
	})
}

// leaseConflict explains why a lease is not the caller's: ENOTFOUND when the
// delivery does not exist, ECONFLICT otherwise.
func (s *Store) leaseConflict(tx *wtx, id string) error {
	var n int
	if err := tx.queryRowStmt(s.q.deliveryExists, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return hub.Errorf(hub.ENOTFOUND, "delivery %q not found", id)
	}
	return hub.Errorf(hub.ECONFLICT, "delivery %q is no longer leased with this token", id)
}
