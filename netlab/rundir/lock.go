package rundir

import (
	"fmt"
	"os"
	"syscall"
)

// Lock serialises up, down and pod restarts of one lab across processes.
type Lock struct{ f *os.File }

// LockLab takes lab's lock, waiting for whoever holds it.
func LockLab(lab string) (*Lock, error) {
	if err := os.MkdirAll(Root, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", Root, err)
	}
	path := LockPath(lab)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock lab %s: %w", lab, err)
	}
	// A down that held the lock may have removed the file while we waited: our lock is
	// then on an orphan inode, and a newcomer could lock a new file. Lock what is there.
	var held, now syscall.Stat_t
	if syscall.Fstat(int(f.Fd()), &held) != nil || syscall.Stat(path, &now) != nil || held.Ino != now.Ino {
		f.Close()
		return LockLab(lab)
	}
	return &Lock{f: f}, nil
}

// Unlock releases the lock; with remove it also deletes the lock file (after down) and
// Root when nothing else is in it.
func (l *Lock) Unlock(remove bool) {
	if remove {
		os.Remove(l.f.Name())
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	if remove {
		os.Remove(Root) // only succeeds when empty
	}
}
