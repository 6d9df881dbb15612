package queue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// hooks are the seams tests use to observe syncs and inject disk failures.
// Production code always runs with defaultHooks.
type hooks struct {
	// wrapBody wraps the writer the body is streamed into.
	wrapBody func(io.Writer) io.Writer
	// syncFile makes a file's data durable.
	syncFile func(*os.File) error
	// syncDir makes the queue directory's entries durable.
	syncDir func(*os.File) error
	// writeLog writes records to a log segment at off.
	writeLog func(f *os.File, b []byte, off int64) (int, error)
}

func defaultHooks() hooks {
	return hooks{
		wrapBody: func(w io.Writer) io.Writer { return w },
		syncFile: fdatasync,
		syncDir:  func(d *os.File) error { return d.Sync() },
		writeLog: func(f *os.File, b []byte, off int64) (int, error) { return f.WriteAt(b, off) },
	}
}

// fdatasync rather than fsync: it skips the inode timestamps, which nothing
// here reads, and still writes the size and block map the data needs.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// lockDir takes the exclusive lock on dir/lock. flock locks belong to the
// open file description, so a second Open in the same process conflicts
// just as another process does, and the kernel drops the lock when the
// owner dies, so a kill -9 never leaves a stale lock behind.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open queue lock: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock queue directory %s: %w", dir, err)
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			lerr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if lerr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		lerr = err
	}
	if lerr != nil {
		defer f.Close()
		if errors.Is(lerr, syscall.EWOULDBLOCK) {
			holder := ""
			if b, err := io.ReadAll(io.LimitReader(f, 32)); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
					holder = fmt.Sprintf(" (pid %d)", pid)
				}
			}
			return nil, fmt.Errorf("queue directory %s is held by another process%s: %w", dir, holder, ErrLocked)
		}
		return nil, fmt.Errorf("lock queue directory %s: %w", dir, lerr)
	}
	// The pid is only a hint for the message above; failing to write it
	// does not weaken the lock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// unlockDir releases the lock and closes f. The explicit LOCK_UN matters:
// a child forked by another goroutine holds a copy of every descriptor
// until it execs, and a lock that only went with the last copy would make
// an Open right after Close fail with ErrLocked.
func unlockDir(f *os.File) error {
	rc, err := f.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			_ = syscall.Flock(int(fd), syscall.LOCK_UN)
		})
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeQuietly unlinks name, treating "already gone" as success.
func removeQuietly(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
