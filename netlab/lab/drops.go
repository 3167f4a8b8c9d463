package lab

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/netlabdev/netlab/netlab/drops"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"golang.org/x/sys/unix"
)

// LabDrop is one packet the kernel dropped inside a lab, in the lab's terms.
type LabDrop struct {
	Time      time.Time `json:"time"`
	Object    string    `json:"object"`
	Namespace string    `json:"namespace"`
	Interface string    `json:"interface"` // <object>/<ifname>, or "" when it was on none
	Reason    string    `json:"reason"`    // the kernel's: NO_SOCKET, NETFILTER_DROP, IP_NOROUTE...
	Src       string    `json:"src"`
	Dst       string    `json:"dst"`
	Proto     string    `json:"proto"`
	ICMP      string    `json:"icmp,omitempty"`
}

// DropWatcher reports the drops in one lab's namespaces (and no other's: the kernel
// program only passes events from the namespaces it was given). It follows the lab as it
// changes: namespaces added later (pods of `apply` or `scale`) are watched within
// RefreshEvery, and those removed are let go (their inode may go to another namespace).
type DropWatcher struct {
	All     bool // also report QuietReasons
	lab     string
	w       dropSource
	mu      sync.Mutex
	closed  bool              // under mu: Close has run (ifname opens no more handles)
	byIno   map[uint32]string // namespace inode → namespace name
	inoOf   map[string]uint32 // namespace name → its inode
	obj     map[string]string // namespace name → object
	names   map[string]map[int]string
	h       *kernel.Handles
	want    []string  // the namespaces of the lab's plan
	planMod time.Time // when that plan was written
	// refresh is follow's work on each tick (refreshPlan; a test's, to hold follow in it).
	refresh func()
	// stop is closed once (stopOnce) by Close and never reassigned: follow reads it on
	// every turn of its loop without mu.
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when follow has returned
}

// dropSource is what a DropWatcher reads its drops from: the kernel's (*drops.Watcher),
// or a test's. Close must interrupt a Read in progress and may be called more than once.
type dropSource interface {
	Read() (drops.Event, error)
	Add(netns uint32) error
	Remove(netns uint32) error
	SetDeadline(t time.Time)
	Close() error
}

// RefreshEvery is how often a DropWatcher looks for namespaces added to or removed from
// its lab.
const RefreshEvery = 250 * time.Millisecond

// WatchDrops loads the drop program for a lab's namespaces. On a machine without BPF or
// BTF the error wraps drops.ErrUnsupported.
func WatchDrops(labName string) (*DropWatcher, error) {
	d := newDropWatcher(labName)
	if err := d.loadPlan(); err != nil {
		d.h.Close()
		return nil, err
	}
	w, err := drops.Open(nil)
	if err != nil {
		d.h.Close()
		return nil, err
	}
	d.w = w
	d.reconcile()
	go d.follow()
	return d, nil
}

// newDropWatcher is a watcher of labName with no source yet and follow not started.
func newDropWatcher(labName string) *DropWatcher {
	d := &DropWatcher{lab: labName, byIno: map[uint32]string{}, inoOf: map[string]uint32{}, obj: map[string]string{},
		names: map[string]map[int]string{}, h: kernel.NewHandles(), stop: make(chan struct{}), done: make(chan struct{})}
	d.refresh = d.refreshPlan
	return d
}

// loadPlan reads the lab's plan when it was rewritten since the last read.
func (d *DropWatcher) loadPlan() error {
	st, err := os.Stat(rundir.ForLab(d.lab).Plan())
	if err == nil && st.ModTime().Equal(d.planMod) && d.want != nil {
		return nil
	}
	p, err := LoadPlan(d.lab)
	if err != nil {
		return err
	}
	d.want = p.Namespaces()
	if st != nil {
		d.planMod = st.ModTime()
	}
	return nil
}

// follow refreshes the watched namespaces until Close.
func (d *DropWatcher) follow() {
	defer close(d.done)
	tick := time.NewTicker(RefreshEvery)
	defer tick.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-tick.C:
			d.refresh()
		}
	}
}

// refreshPlan rereads the lab's plan when it changed and reconciles the watched
// namespaces with it.
func (d *DropWatcher) refreshPlan() {
	if d.loadPlan() == nil {
		d.reconcile()
	}
}

// reconcile watches the plan's namespaces that exist (a pod's is made before the plan that
// names it is written, or after) and lets go of those that are gone or were replaced.
func (d *DropWatcher) reconcile() {
	prefix := plan.NetnsName(d.lab, "")
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := map[string]bool{}
	for _, ns := range d.want {
		ino, ok := netnsInode(ns)
		if !ok {
			continue
		}
		keep[ns] = true
		old, had := d.inoOf[ns]
		if had && old == ino {
			continue
		}
		if had {
			_ = d.w.Remove(old)
			delete(d.byIno, old)
			delete(d.names, ns)
		}
		if d.w.Add(ino) == nil {
			d.byIno[ino], d.inoOf[ns], d.obj[ns] = ns, ino, strings.TrimPrefix(ns, prefix)
		}
	}
	for ns, ino := range d.inoOf {
		if !keep[ns] {
			_ = d.w.Remove(ino)
			delete(d.byIno, ino)
			delete(d.inoOf, ns)
			delete(d.names, ns)
		}
	}
}

// netnsInode is a mounted namespace's inode (what the kernel program filters on).
func netnsInode(ns string) (uint32, bool) {
	var fs unix.Statfs_t
	if err := unix.Statfs(kernel.NetnsPath(ns), &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return 0, false // gone, or not mounted yet
	}
	var st unix.Stat_t
	if err := unix.Stat(kernel.NetnsPath(ns), &st); err != nil {
		return 0, false
	}
	return uint32(st.Ino), true
}

// SetDeadline makes Next return an error wrapping os.ErrDeadlineExceeded after t. Set it
// before Next, not while a Next waits: the ring buffer's reader holds its lock while it
// waits, so SetDeadline would wait for that Next to return (Close is what ends a wait).
func (d *DropWatcher) SetDeadline(t time.Time) { d.w.SetDeadline(t) }

// QuietReasons are drops that are no packet lost on its way: a socket closed with data
// still queued (every HTTP client that hangs up early). Next skips them unless All is set.
var QuietReasons = map[string]bool{"QUEUE_PURGE": true}

// Next waits for the lab's next drop.
func (d *DropWatcher) Next() (LabDrop, error) {
	for {
		e, err := d.w.Read()
		if err != nil {
			return LabDrop{}, err
		}
		d.mu.Lock()
		ns, ok := d.byIno[e.Netns]
		obj := d.obj[ns]
		d.mu.Unlock()
		if !ok || (!d.All && QuietReasons[e.Reason]) {
			continue // the kernel filters on these inodes; quiet reasons unless asked
		}
		ld := LabDrop{Time: e.Time, Object: obj, Namespace: ns, Reason: e.Reason, Proto: e.Proto, ICMP: e.ICMP}
		if e.Src.IsValid() {
			ld.Src, ld.Dst = e.Src.String(), e.Dst.String()
			if e.Proto != "tcp" && e.Proto != "udp" {
				ld.Src, ld.Dst = e.Src.Addr().String(), e.Dst.Addr().String()
			}
		}
		if name := d.ifname(ns, e.Ifindex); name != "" {
			ld.Interface = ld.Object + "/" + name
		}
		return ld, nil
	}
}

func (d *DropWatcher) ifname(ns string, index int) string {
	if index == 0 {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if n, ok := d.names[ns][index]; ok {
		return n
	}
	if d.closed { // a Next that raced with Close: open no handle that nothing would close
		return fmt.Sprintf("if%d", index)
	}
	if d.names[ns] == nil {
		d.names[ns] = map[int]string{}
	}
	name := fmt.Sprintf("if%d", index)
	if nh, err := d.h.Get(ns); err == nil {
		if l, err := nh.LinkByIndex(index); err == nil {
			name = l.Attrs().Name
		}
	}
	d.names[ns][index] = name
	return name
}

// Close unloads the program; nothing of it stays in the kernel. A Next waiting for a
// drop returns an error. Close may be called more than once and from several goroutines
// (Ctrl-C's and a deferred one), also while Next waits: each returns once the program is
// closed.
//
// It stops follow first (whose reconcile writes to the program's map) and waits for it:
// follow's work is a stat of the plan and of the namespaces, never a wait on Next.
func (d *DropWatcher) Close() error {
	d.stopOnce.Do(func() { close(d.stop) })
	<-d.done
	err := d.w.Close() // once: the source's own Close is idempotent
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		d.h.Close()
	}
	d.mu.Unlock()
	return err
}
