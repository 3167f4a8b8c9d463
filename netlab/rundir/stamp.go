package rundir

import (
	"fmt"
	"os"
	"syscall"
)

// A Stamp tells one version of a file from another: its inode, size and modification
// time. WriteFileAtomic's rename makes every rewrite a new inode, so two stamps differ
// after any rewrite, even one of the same size within the clock's resolution.
type Stamp struct {
	ino   uint64
	size  int64
	mtime int64
}

// String writes the stamp as text, to be compared with another's (IngressLoaded.Plan).
func (s Stamp) String() string { return fmt.Sprintf("%d-%d-%d", s.ino, s.size, s.mtime) }

// FileStamp is path's Stamp now; the zero Stamp when it cannot be read.
func FileStamp(path string) Stamp {
	fi, err := os.Stat(path)
	if err != nil {
		return Stamp{}
	}
	s := Stamp{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = sys.Ino
	}
	return s
}
