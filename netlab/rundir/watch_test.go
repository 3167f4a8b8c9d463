package rundir

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An agent following endpoints.json is woken by the controller's atomic rewrite (a rename
// into the directory) and by a plain write.
func TestWatchWakesOnTheFilesItFollows(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := filepath.Join(t.TempDir(), "lab") // made by Watch
	w := Watch(ctx, dir, "endpoints.json")
	if !w.Active() {
		t.Skip("no inotify here: agents poll instead")
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-w.C:
		case <-time.After(10 * time.Second): // a bound on a hang, not a timing
			t.Fatalf("%s did not wake the watcher", what)
		}
	}
	if err := WriteFileAtomic(filepath.Join(dir, "endpoints.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	wait("an atomic write")
	if err := os.WriteFile(filepath.Join(dir, "endpoints.json"), []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	wait("a plain write")
}

// Only the files followed wake a watcher (every file when it names none), and a lost
// event (the queue overflowed) wakes it whatever the name.
func TestWatchWakesOnlyForItsFiles(t *testing.T) {
	event := func(mask uint32, name string) []byte {
		n := (len(name) + 1 + 15) / 16 * 16 // NUL-padded, as the kernel writes it
		b := make([]byte, unix.SizeofInotifyEvent+n)
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		ev.Mask, ev.Len = mask, uint32(n)
		copy(b[unix.SizeofInotifyEvent:], name)
		return b
	}
	plan := event(unix.IN_MOVED_TO, "plan.json")
	eps := event(unix.IN_MOVED_TO, "endpoints.json")
	for _, c := range []struct {
		buf   []byte
		names []string
		want  bool
	}{
		{plan, []string{"endpoints.json"}, false},
		{eps, []string{"endpoints.json"}, true},
		{append(append([]byte{}, plan...), eps...), []string{"endpoints.json"}, true},
		{event(unix.IN_MOVED_TO, ".endpoints.json.tmp123"), []string{"endpoints.json"}, false},
		{plan, nil, true},
		{event(unix.IN_Q_OVERFLOW, ""), []string{"endpoints.json"}, true},
		{nil, nil, false},
	} {
		if got := wakes(c.buf, c.names); got != c.want {
			t.Errorf("wakes(%q, %q) = %v, want %v", c.buf, c.names, got, c.want)
		}
	}
}
