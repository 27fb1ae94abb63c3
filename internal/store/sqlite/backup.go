package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Backup writes a consistent copy of the database to path, which must not
// exist, while the store goes on serving. VACUUM INTO reads one snapshot
// (a read transaction, which WAL lets the writer go on beside) and writes
// it compacted: the copy holds every write committed before it began and
// none after. The file is created with mode 0600 first, as the database
// is: SQLite would use the umask's mode. Values in it stay sealed with the
// store's keys.
func (s *Store) Backup(ctx context.Context, path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("backup: %s exists already: choose a new file", path)
	} else if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f.Close()
	// A connection of its own: the read pool's are query_only, which
	// refuses VACUUM INTO, and the writer's is the writer goroutine's.
	db, err := sql.Open("sqlite", s.path+"?"+dsn("_pragma=busy_timeout("+fmt.Sprint(busyTimeout.Milliseconds())+")"))
	if err == nil {
		_, err = db.ExecContext(ctx, `VACUUM INTO ?`, path)
		db.Close()
	}
	if err != nil {
		os.Remove(path)
		return fail("backup", err)
	}
	return nil
}
