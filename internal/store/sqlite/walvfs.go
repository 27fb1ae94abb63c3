package sqlite

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// walVFS is the VFS the writer's connection opens the database with (the
// vfs parameter of its DSN): SQLite's unix VFS, except that the -wal file
// collects the frames of a commit and writes them a 4 KiB page of the file
// at a time.
//
// SQLite writes each frame of the log apart, its 24-byte header and then its
// page, each a pwrite: flat out, 28 system calls per webhook at about a
// microsecond each, a fifth of the writer's time (BENCHMARKS.md, "Issue 12,
// fifth pass"). The frames of a commit are contiguous in the file, so walFile
// appends them to a buffer and writes it when anything else touches the file
// (a read, a sync, a truncation, a write elsewhere, its size asked, a file
// control, its closing) and right after the commit frame's page; what
// SQLite writes after that page and before the next transaction's frames
// (the checksums it rewrites when the transaction rewrote a frame in place)
// goes straight to the file. So every frame reaches the file before SQLite
// publishes it to the other connections in the wal-index, whether or not
// the commit syncs (a claim's commit does not: see syncFor). Nothing is
// durable before a sync either way, and a frame torn by a crash fails its
// checksum as it did before, so durability and recovery are SQLite's own.
// TestWALVFS holds both rules.
//
// A buffer goes to the file in pieces that end at the file's 4 KiB pages:
// given longer writes, Linux caches the file in larger folios, and a write
// into one counts the whole folio as written once it was clean (a commit's
// first frames land in the folio the last commit synced). The disk wrote
// the same bytes, but the process's write_bytes, which BENCHMARKS.md
// measures, grew by 6 % at 100 webhooks/s with one write per buffer.
const walVFS = "verihook"

// walBufferBytes bounds a file's buffer: a longer run of frames is written
// a buffer at a time (a flat-out batch of 64 webhooks is about 500 KiB).
const walBufferBytes = 64 << 10

// walFrameHeader is the size of a frame's header; its second 32-bit word is
// the database's size in pages after the commit for a commit frame, and 0
// for any other (https://sqlite.org/fileformat2.html#walformat).
const walFrameHeader = 24

// walFile is what walVFS keeps of an open -wal file, after the unix VFS's
// own state in the sqlite3_file SQLite allocates (see walFileOf). It lives
// in C memory, so it holds no Go pointer.
type walFile struct {
	base uintptr // the unix VFS's io methods, which the file had
	buf  uintptr // walBufferBytes of C memory, allocated at the first write; 0 before
	off  int64   // the offset in the file of buf's first byte
	n    int64   // bytes in buf
	// commit is the offset of the page of the commit frame whose header
	// was written last, 0 when none; committed is the end of that page
	// once written, until the next transaction writes.
	commit, committed int64
}

var (
	walOnce    sync.Once
	walErr     error
	unixVFS    uintptr                     // SQLite's unix VFS
	walVFSDesc sqlite3.Tsqlite3_vfs        // walVFS: unixVFS's copy, with walOpen
	walMethods sqlite3.Tsqlite3_io_methods // the unix VFS's io methods, with walFile's
	walBase    uintptr                     // the io methods walMethods copies
	walOffset  uintptr                     // where a walFile starts in an sqlite3_file
	walWrites  atomic.Int64                // writes walFiles made to their files, for tests
)

// registerWALVFS registers walVFS with SQLite, once; Open calls it before it
// opens the writer's connection.
func registerWALVFS() error {
	walOnce.Do(func() {
		tls := libc.NewTLS()
		defer tls.Close()
		name, err := libc.CString("unix")
		if err != nil {
			walErr = err
			return
		}
		unixVFS = sqlite3.Xsqlite3_vfs_find(tls, name)
		libc.Xfree(tls, name)
		if unixVFS == 0 {
			walErr = fmt.Errorf("sqlite: no unix VFS to build %s on", walVFS)
			return
		}
		walVFSDesc = *(*sqlite3.Tsqlite3_vfs)(cptr(unixVFS))
		walOffset = (uintptr(walVFSDesc.FszOsFile) + 7) &^ 7
		walVFSDesc.FszOsFile = int32(walOffset + unsafe.Sizeof(walFile{}))
		walVFSDesc.FpNext = 0
		if walVFSDesc.FzName, err = libc.CString(walVFS); err != nil {
			walErr = err
			return
		}
		setFunc(&walVFSDesc.FxOpen, walOpen)
		if rc := sqlite3.Xsqlite3_vfs_register(tls, uintptr(unsafe.Pointer(&walVFSDesc)), 0); rc != sqlite3.SQLITE_OK {
			walErr = fmt.Errorf("sqlite: register the %s VFS: error %d", walVFS, rc)
		}
	})
	return walErr
}

// walOpen is walVFS's xOpen: the unix VFS opens the file, and a -wal file
// gets walFile's methods.
func walOpen(tls *libc.TLS, _, zName, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	vfs := (*sqlite3.Tsqlite3_vfs)(cptr(unixVFS))
	open := cfunc[func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32](&vfs.FxOpen)
	if rc := open(tls, unixVFS, zName, pFile, flags, pOutFlags); rc != sqlite3.SQLITE_OK || flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	file := (*sqlite3.Tsqlite3_file)(cptr(pFile))
	if !walMethodsFor(file.FpMethods) {
		return sqlite3.SQLITE_OK // another locking style's methods: left as they are
	}
	*walFileOf(pFile) = walFile{base: file.FpMethods}
	file.FpMethods = uintptr(unsafe.Pointer(&walMethods))
	return sqlite3.SQLITE_OK
}

var walMethodsMu sync.Mutex

// walMethodsFor reports whether walMethods wraps base, making it do so at
// the first -wal file opened.
func walMethodsFor(base uintptr) bool {
	walMethodsMu.Lock()
	defer walMethodsMu.Unlock()
	if walBase == 0 {
		walMethods = *(*sqlite3.Tsqlite3_io_methods)(cptr(base))
		setFunc(&walMethods.FxClose, walClose)
		setFunc(&walMethods.FxRead, walRead)
		setFunc(&walMethods.FxWrite, walWrite)
		setFunc(&walMethods.FxTruncate, walTruncate)
		setFunc(&walMethods.FxSync, walSync)
		setFunc(&walMethods.FxFileSize, walFileSize)
		setFunc(&walMethods.FxFileControl, walFileControl)
		walBase = base
	}
	return walBase == base
}

// walWrite is walFile's xWrite: see walVFS.
func walWrite(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := walFileOf(pFile)
	n := int64(iAmt)
	if f.committed != 0 && iOfst != 0 && iOfst < f.committed {
		// Below a commit's frames' end, and not a restart's header:
		// SQLite rewriting their checksums, which it may then publish
		// without a sync.
		return f.write(tls, pFile, zBuf, iAmt, iOfst)
	}
	f.committed = 0
	if f.n > 0 && (iOfst != f.off+f.n || f.n+n > walBufferBytes) {
		if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if f.n == 0 {
		if f.buf == 0 {
			f.buf = libc.Xmalloc(tls, walBufferBytes)
		}
		if f.buf == 0 || n > walBufferBytes {
			return f.write(tls, pFile, zBuf, iAmt, iOfst)
		}
		f.off = iOfst
	}
	b := unsafe.Slice((*byte)(cptr(zBuf)), n)
	copy(unsafe.Slice((*byte)(cptr(f.buf+uintptr(f.n))), n), b)
	f.n += n
	switch {
	case f.commit != 0 && iOfst == f.commit: // the commit frame's page
		f.commit, f.committed = 0, iOfst+n
		return f.flush(tls, pFile)
	case iAmt == walFrameHeader && binary.BigEndian.Uint32(b[4:]) != 0:
		f.commit = iOfst + walFrameHeader
	}
	return sqlite3.SQLITE_OK
}

// flush writes f's buffer to the file, a piece to each 4 KiB page of the
// file it covers (see walVFS).
func (f *walFile) flush(tls *libc.TLS, pFile uintptr) int32 {
	if f.n == 0 {
		return sqlite3.SQLITE_OK
	}
	buf, off, end := f.buf, f.off, f.off+f.n
	f.n = 0
	for off < end {
		n := min(end, off&^4095+4096) - off
		if rc := f.write(tls, pFile, buf, int32(n), off); rc != sqlite3.SQLITE_OK {
			return rc
		}
		buf, off = buf+uintptr(n), off+n
	}
	return sqlite3.SQLITE_OK
}

// write writes to the file with the unix VFS's xWrite.
func (f *walFile) write(tls *libc.TLS, pFile, buf uintptr, n int32, off int64) int32 {
	walWrites.Add(1)
	write := cfunc[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](&f.method().FxWrite)
	return write(tls, pFile, buf, n, off)
}

// walClose, walRead, walTruncate, walSync, walFileSize and walFileControl
// write f's buffer, then call the unix VFS's method.

func walClose(tls *libc.TLS, pFile uintptr) int32 {
	f := walFileOf(pFile)
	rc := f.flush(tls, pFile)
	if f.buf != 0 {
		libc.Xfree(tls, f.buf)
		f.buf = 0
	}
	close := cfunc[func(*libc.TLS, uintptr) int32](&f.method().FxClose)
	if rc2 := close(tls, pFile); rc == sqlite3.SQLITE_OK {
		rc = rc2
	}
	return rc
}

func walRead(tls *libc.TLS, pFile, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	f := walFileOf(pFile)
	if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	read := cfunc[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](&f.method().FxRead)
	return read(tls, pFile, zBuf, iAmt, iOfst)
}

func walTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	f := walFileOf(pFile)
	if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	truncate := cfunc[func(*libc.TLS, uintptr, int64) int32](&f.method().FxTruncate)
	return truncate(tls, pFile, size)
}

func walSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	f := walFileOf(pFile)
	if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	sync := cfunc[func(*libc.TLS, uintptr, int32) int32](&f.method().FxSync)
	return sync(tls, pFile, flags)
}

func walFileSize(tls *libc.TLS, pFile, pSize uintptr) int32 {
	f := walFileOf(pFile)
	if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	size := cfunc[func(*libc.TLS, uintptr, uintptr) int32](&f.method().FxFileSize)
	return size(tls, pFile, pSize)
}

func walFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	f := walFileOf(pFile)
	if rc := f.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	control := cfunc[func(*libc.TLS, uintptr, int32, uintptr) int32](&f.method().FxFileControl)
	return control(tls, pFile, op, pArg)
}

// method returns the unix VFS's io methods of f's file.
func (f *walFile) method() *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(cptr(f.base))
}

// walFileOf returns the walFile of a -wal file that walOpen gave walFile's
// methods: it follows the unix VFS's state in the sqlite3_file.
func walFileOf(pFile uintptr) *walFile { return (*walFile)(cptr(pFile + walOffset)) }

// setFunc stores fn in a C function pointer field, as the transpiled SQLite
// stores and calls them: a pointer to a Go func value. fn must be a
// top-level function, whose value is static.
func setFunc[F any](field *uintptr, fn F) { *(*F)(unsafe.Pointer(field)) = fn }

// cfunc returns the function a C function pointer field holds (see setFunc).
func cfunc[F any](field *uintptr) F { return *(*F)(unsafe.Pointer(field)) }

// cptr converts an address of C memory (SQLite's, outside Go's heap) to a
// pointer.
func cptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }
