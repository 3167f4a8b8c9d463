package rundir

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Watcher wakes an agent when one of the files it follows is written: WriteFileAtomic's
// rename into the directory (or any write, creation or removal of the file), as inotify
// reports it. An agent then reads the file at once instead of polling for it, and sleeps
// while nothing changes. When inotify is not there (Watch failed), Active says so and the
// agent keeps its poll.
type Watcher struct {
	// C receives a value after every change (several changes in a row may give one).
	C <-chan struct{}
	f *os.File
}

// Watch follows the files named names in directory dir (created when missing), until ctx
// ends. It never fails: without inotify the Watcher is inactive and C never fires.
func Watch(ctx context.Context, dir string, names ...string) *Watcher {
	c := make(chan struct{}, 1)
	w := &Watcher{C: c}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return w
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return w
	}
	const mask = unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM
	if _, err := unix.InotifyAddWatch(fd, dir, mask); err != nil {
		unix.Close(fd)
		return w
	}
	// Non-blocking: reads wait in the runtime's poller, and Close ends them.
	w.f = os.NewFile(uintptr(fd), "inotify "+filepath.Base(dir))
	go func() {
		<-ctx.Done()
		w.f.Close()
	}()
	go func() {
		buf := make([]byte, 16<<10)
		for {
			n, err := w.f.Read(buf)
			if err != nil {
				return
			}
			hit := wakes(buf[:n], names)
			if hit {
				select {
				case c <- struct{}{}:
				default:
				}
			}
		}
	}()
	return w
}

// Active says whether the Watcher follows its files (inotify is there).
func (w *Watcher) Active() bool { return w.f != nil }

// wakes says whether a read of inotify events holds one for a file of names (any file
// when names is empty), or an overflow (events were lost: look at every file).
func wakes(buf []byte, names []string) bool {
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		end := min(len(buf), off+unix.SizeofInotifyEvent+int(ev.Len))
		name := string(buf[off+unix.SizeofInotifyEvent : end])
		if i := strings.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		off = end
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 || len(names) == 0 || slices.Contains(names, name) {
			return true
		}
	}
	return false
}
