package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/verihook/verihook/internal/store/storetest"
)

// TestReadiness runs a store as a role of its own and takes the role's right
// to write away, as a database that answers but takes no writes (a
// read-only standby, a full disk) would; granting it back is the database
// taking writes again.
func TestReadiness(t *testing.T) {
	t.Parallel()
	conns.reserve(t, 2*poolSize)
	schema, dbURL := newSchema(t)
	key := newKey(t)
	openStore(t, dbURL, key).Close() // applies the migrations as the tables' owner

	var b [8]byte
	rand.Read(b[:])
	role, password := "vh_test_role_"+hex.EncodeToString(b[:4]), hex.EncodeToString(b[4:])
	admin(t, func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD '"+password+"';"+
			"GRANT USAGE, CREATE ON SCHEMA "+schema+" TO "+role+";"+
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" TO "+role)
		return err
	})
	t.Cleanup(func() { // after the store's own cleanup has closed its connections
		admin(t, func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, "DROP OWNED BY "+role+"; DROP ROLE "+role)
			return err
		})
	})
	u, _ := url.Parse(dbURL)
	u.User = url.UserPassword(role, password)
	s := openStore(t, u.String(), key)
	grants := func(sql string) func(t *testing.T) {
		return func(t *testing.T) {
			admin(t, func(ctx context.Context, c *pgx.Conn) error {
				_, err := c.Exec(ctx, sql)
				return err
			})
		}
	}
	storetest.Readiness(t, s,
		grants("REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" FROM "+role),
		grants("GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" TO "+role))
}
