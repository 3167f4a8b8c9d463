package lab

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/netlabdev/netlab/netlab/drops"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
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
// program only passes events from the namespaces it was given).
type DropWatcher struct {
	All   bool // also report QuietReasons
	w     *drops.Watcher
	mu    sync.Mutex
	byIno map[uint32]string // namespace inode → namespace name
	obj   map[string]string // namespace name → object
	names map[string]map[int]string
	h     *kernel.Handles
}

// WatchDrops loads the drop program for a lab's namespaces. On a machine without BPF or
// BTF the error wraps drops.ErrUnsupported.
func WatchDrops(labName string) (*DropWatcher, error) {
	p, err := LoadPlan(labName)
	if err != nil {
		return nil, err
	}
	d := &DropWatcher{byIno: map[uint32]string{}, obj: map[string]string{}, names: map[string]map[int]string{}, h: kernel.NewHandles()}
	prefix := plan.NetnsName(labName, "")
	for _, ns := range p.Namespaces() {
		if ino, ok := netnsInode(ns); ok {
			d.byIno[ino] = ns
			d.obj[ns] = strings.TrimPrefix(ns, prefix)
		}
	}
	inos := make([]uint32, 0, len(d.byIno))
	for ino := range d.byIno {
		inos = append(inos, ino)
	}
	if d.w, err = drops.Open(inos); err != nil {
		d.h.Close()
		return nil, err
	}
	return d, nil
}

func netnsInode(ns string) (uint32, bool) {
	var st unix.Stat_t
	if err := unix.Stat(kernel.NetnsPath(ns), &st); err != nil {
		return 0, false
	}
	return uint32(st.Ino), true
}

// SetDeadline makes Next return an error wrapping os.ErrDeadlineExceeded after t.
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
		ns, ok := d.byIno[e.Netns]
		if !ok || (!d.All && QuietReasons[e.Reason]) {
			continue // the kernel filters on these inodes; quiet reasons unless asked
		}
		ld := LabDrop{Time: e.Time, Object: d.obj[ns], Namespace: ns, Reason: e.Reason, Proto: e.Proto, ICMP: e.ICMP}
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

// Close unloads the program; nothing of it stays in the kernel.
func (d *DropWatcher) Close() error {
	err := d.w.Close()
	d.mu.Lock()
	d.h.Close()
	d.mu.Unlock()
	return err
}
