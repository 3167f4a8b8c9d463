package lab

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/drops"
)

// fakeDrops is a dropSource without a kernel: Read waits for an event or for Close, as
// the ring buffer's does.
type fakeDrops struct {
	events chan drops.Event
	closed chan struct{}
	once   sync.Once
	closes atomic.Int32
}

func newFakeDrops() *fakeDrops {
	return &fakeDrops{events: make(chan drops.Event), closed: make(chan struct{})}
}

func (f *fakeDrops) Read() (drops.Event, error) {
	select {
	case e := <-f.events:
		return e, nil
	case <-f.closed:
		return drops.Event{}, os.ErrClosed
	}
}

func (f *fakeDrops) Add(uint32) error        { return nil }
func (f *fakeDrops) Remove(uint32) error     { return nil }
func (f *fakeDrops) SetDeadline(t time.Time) {}
func (f *fakeDrops) Close() error {
	f.closes.Add(1)
	f.once.Do(func() { close(f.closed) })
	return nil
}

// hangGuard bounds a wait that only a bug makes long: past it the test fails with every
// goroutine's stack instead of hanging the suite.
const hangGuard = 20 * time.Second

func waitOrFail[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s: still waiting after %s (a hang); goroutines:\n%s", what, hangGuard, buf)
		panic("unreachable")
	}
}

// Ctrl-C of `drops --follow` closes the watcher from one goroutine while another waits in
// Next and the deferred Close follows: a Close that came while follow was refreshing the
// namespaces left follow waiting for a stop channel it had set to nil, and every Close
// waited for follow for ever (the process kept its program). Here follow is held in its
// refresh until Close has begun; two Closes and a third after them must all return, end
// Next, and close the source.
func TestDropWatcherCloseDuringRefreshAndNext(t *testing.T) {
	d := newDropWatcher("unit")
	src := newFakeDrops()
	d.w = src
	inRefresh := make(chan struct{})
	var entered sync.Once
	stop := d.stop
	d.refresh = func() {
		entered.Do(func() { close(inRefresh) })
		<-stop // the rest of the refresh runs after Close began
	}
	go d.follow()
	waitOrFail(t, inRefresh, "follow's first refresh")

	nextErr := make(chan error, 1)
	go func() {
		_, err := d.Next()
		nextErr <- err
	}()
	closed := make(chan error, 2)
	for range 2 {
		go func() { closed <- d.Close() }()
	}
	for i := range 2 {
		if err := waitOrFail(t, closed, "Close"); err != nil {
			t.Errorf("Close %d: %v", i+1, err)
		}
	}
	if err := waitOrFail(t, nextErr, "Next after Close"); err == nil {
		t.Error("Next returned no error after Close")
	}
	third := make(chan error, 1)
	go func() { third <- d.Close() }()
	if err := waitOrFail(t, third, "a third Close"); err != nil {
		t.Errorf("a third Close: %v", err)
	}
	if src.closes.Load() == 0 {
		t.Error("Close did not close the drop source (the kernel program would stay loaded)")
	}
	if _, err := d.Next(); err == nil {
		t.Error("Next after Close returned no error")
	}
}

// A drop read before Close comes out of Next in the lab's terms; one of a namespace the
// watcher does not know is skipped.
func TestDropWatcherNext(t *testing.T) {
	d := newDropWatcher("unit")
	src := newFakeDrops()
	d.w = src
	d.byIno[7], d.obj["nl-unit-node-1"] = "nl-unit-node-1", "node-1"
	go d.follow()
	defer d.Close()
	go func() {
		src.events <- drops.Event{Netns: 8, Reason: "NO_SOCKET"}
		src.events <- drops.Event{Netns: 7, Reason: "NO_SOCKET"}
	}()
	got := make(chan LabDrop, 1)
	go func() {
		ld, err := d.Next()
		if err != nil {
			t.Error(err)
		}
		got <- ld
	}()
	ld := waitOrFail(t, got, "Next")
	if ld.Object != "node-1" || ld.Namespace != "nl-unit-node-1" || ld.Reason != "NO_SOCKET" {
		t.Errorf("Next: %+v", ld)
	}
}
