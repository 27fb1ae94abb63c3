package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/verihook/verihook/internal/hub"
)

// TestRebuild upgrades a database of the schema verihook wrote before 1 KiB
// pages (4 KiB pages, every migration), filled through the store: Rebuild
// refuses while the store has it open, then rewrites it with 1 KiB pages,
// reporting progress, and every row of every table, and every index, reads
// back the same; the store opens it and goes on (a body opens, a copy is
// still a duplicate). A second Rebuild has nothing to do.
func TestRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "verihook.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := create(ctx, path, 4096); err != nil {
		t.Fatal(err)
	}

	key := newKey(t)
	s := openStore(t, path, key)
	// A file of larger pages checkpoints after as many bytes of log, fewer
	// pages.
	var bound int
	if err := s.wdb.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&bound); err != nil {
		t.Fatal(err)
	}
	if want := 4 * checkpointBytes / 4096; bound != want || checkpointPages(s.pageSize) != checkpointBytes/4096 {
		t.Errorf("4 KiB pages: wal_autocheckpoint %d, checkpoint every %d pages; want %d and %d", bound,
			checkpointPages(s.pageSize), want, checkpointBytes/4096)
	}
	if err := s.CreateEndpoint(ctx, testEndpoint("ep")); err != nil {
		t.Fatal(err)
	}
	var ins []hub.Ingest
	for i := range 40 {
		in := testIngest("src", fmt.Sprint("k", i), fmt.Sprint("scan-", i), personalBody(i))
		in.Message.ID, in.Events[0].ID = hub.NewID("msg", t0), hub.NewID("evt", t0)
		in.Observations[0].MessageID, in.Events[0].MessageID = in.Message.ID, in.Message.ID
		if _, err := s.Ingest(ctx, in); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	cs, err := s.ClaimDeliveries(ctx, t0.Add(time.Minute), 10, time.Minute)
	if err != nil || len(cs) == 0 {
		t.Fatalf("ClaimDeliveries = %d, %v", len(cs), err)
	}
	for _, c := range cs {
		if err := s.RecordAttempt(ctx, hub.AttemptRecord{DeliveryID: c.Delivery.ID, Lease: c.Lease,
			Attempt: hub.Attempt{At: t0.Add(time.Minute), StatusCode: 200, Response: `{"ok":true}`},
			Status:  hub.DeliverySucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordRejection(ctx, hub.Message{SourceID: "src", ReceivedAt: t0, HTTPStatus: 401,
		Reason: "bad signature"}); err != nil {
		t.Fatal(err)
	}

	// Not while the store has the file open.
	if done, err := Rebuild(ctx, path, nil); err == nil || done {
		t.Fatalf("Rebuild with the store open = %v, %v; want an error", done, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if size, err := PageSize(ctx, path); err != nil || size != 4096 {
		t.Fatalf("after the refused Rebuild: page size %d, %v; want 4096 still", size, err)
	}
	before := dumpDatabase(t, path)

	var calls []int64
	var total int64
	done, err := Rebuild(ctx, path, func(n, of int64) { calls, total = append(calls, n), of })
	if err != nil || !done {
		t.Fatalf("Rebuild = %v, %v; want done", done, err)
	}
	if len(calls) < 2 || calls[0] != 0 || calls[len(calls)-1] == 0 || total < 40*2000 {
		t.Errorf("progress %v of %d; want 0 first, then the bytes copied, of at least the bodies' size", calls, total)
	}
	if size, err := PageSize(ctx, path); err != nil || size != pageSize {
		t.Fatalf("rebuilt: page size %d, %v; want %d", size, err, pageSize)
	}
	if _, err := os.Stat(path + ".rebuild"); !os.IsNotExist(err) {
		t.Errorf("the copy is left behind: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("rebuilt file: %v, %v; want mode 0600", fi, err)
	}
	after := dumpDatabase(t, path)
	if !reflect.DeepEqual(before, after) {
		for name := range before {
			if !reflect.DeepEqual(before[name], after[name]) {
				t.Errorf("%s differs after the rebuild:\n%v\n%v", name, before[name], after[name])
			}
		}
		t.Fatal("the rebuilt database differs")
	}

	s = openStore(t, path, key)
	m, err := s.Message(ctx, ins[7].Message.ID)
	if err != nil || string(m.Body) != string(ins[7].Message.Body) {
		t.Errorf("Message after the rebuild: body %d bytes, %v; want the stored body", len(m.Body), err)
	}
	again := testIngest("src", "k3", "scan-3", []byte(`{}`))
	if r, err := s.Ingest(ctx, again); err != nil || !r.Duplicate || r.MessageID != ins[3].Message.ID {
		t.Errorf("Ingest(a stored key) after the rebuild = %+v, %v; want a duplicate of %s", r, err, ins[3].Message.ID)
	}
	var mode string
	if err := s.wdb.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q, %v; want wal", mode, err)
	}
	s.Close()
	if done, err := Rebuild(ctx, path, nil); err != nil || done {
		t.Errorf("second Rebuild = %v, %v; want nothing to do", done, err)
	}
}

// dumpDatabase reads every row of every table of the database at path, and
// the schema, as text.
func dumpDatabase(t *testing.T, path string) map[string][]string {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]string{}
	var tables []string
	rows, err := db.Query(`SELECT type, name, coalesce(sql, ''), (type = 'table' AND sql NOT LIKE '%WITHOUT ROWID')
		FROM sqlite_schema ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ, name, def string
		var rowid bool
		if err := rows.Scan(&typ, &name, &def, &rowid); err != nil {
			t.Fatal(err)
		}
		out["schema"] = append(out["schema"], typ+" "+name+": "+def)
		if typ == "table" {
			order := "rowid"
			if !rowid {
				order = "1, 2, 3"
			}
			tables = append(tables, fmt.Sprintf("SELECT * FROM %q ORDER BY %s", name, order))
		}
	}
	rows.Close()
	for _, q := range tables {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(q, err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				fmt.Fprintf(&b, "%s=%v ", cols[i], v)
			}
			out[q] = append(out[q], b.String())
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if len(out) < 10 {
		t.Fatalf("dump of %d tables; want them all", len(out))
	}
	return out
}
