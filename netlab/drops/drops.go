// Package drops reports the packets the kernel drops inside a set of network namespaces,
// with the kernel's own drop reason: an eBPF program on the skb:kfree_skb tracepoint
// (attached as a BTF-enabled raw tracepoint: no tracefs, no kprobes), compiled once with
// bpf2go (bpf/drops.c; `make generate`) and relocated at load time against the running
// kernel's BTF (CO-RE). Events are filtered in the kernel by namespace inode, so a
// watcher sees its lab's drops and no other's, and other traffic costs one map lookup.
//
// Nothing is pinned: the program, its link and maps live as long as the Watcher's file
// descriptors, and the kernel removes them when the process closes them or exits.
package drops

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// ProgramName is the drop program's name (the kernel may cut it to 15 bytes), for finding it with
// `bpftool prog show` or a test.
const ProgramName = "netlab_kfree_skb"

// Event is one dropped packet.
type Event struct {
	Time     time.Time
	Netns    uint32 // the namespace's inode number
	Ifindex  int    // the device it was on in that namespace (0: none)
	Reason   string // the kernel's drop reason without its SKB_DROP_REASON_ prefix: NO_SOCKET, NETFILTER_DROP...
	Proto    string // tcp, udp, icmp, or "" when not IPv4
	Src, Dst netip.AddrPort
	ICMP     string // ICMP type/code, for icmp
	Location uint64 // kernel address of the drop
}

// ErrUnsupported wraps why this machine cannot load the program (no BTF, no BPF, not root).
var ErrUnsupported = errors.New("kernel drop reasons need BPF with BTF (/sys/kernel/btf/vmlinux) and root")

// Watcher is a loaded, attached drop program.
type Watcher struct {
	objs    dropsBPFObjects
	link    link.Link
	rd      *ringbuf.Reader
	reasons map[uint32]string
	mono    time.Duration // wall clock minus the monotonic clock
	once    sync.Once
}

// Open loads and attaches the program, watching the namespaces with these inode numbers.
func Open(netns []uint32) (*Watcher, error) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	kspec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	w := &Watcher{reasons: reasonNames(kspec)}
	if err := loadDropsBPFObjects(&w.objs, &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kspec}}); err != nil {
		return nil, fmt.Errorf("%w: load: %v", ErrUnsupported, err)
	}
	for _, ns := range netns {
		if err := w.Add(ns); err != nil {
			w.Close()
			return nil, err
		}
	}
	w.link, err = link.AttachTracing(link.TracingOptions{Program: w.objs.NetlabKfreeSkb, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("%w: attach to kfree_skb: %v", ErrUnsupported, err)
	}
	if w.rd, err = ringbuf.NewReader(w.objs.Events); err != nil {
		w.Close()
		return nil, fmt.Errorf("drop events: %w", err)
	}
	var mono unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	w.mono = time.Duration(time.Now().UnixNano() - mono.Nano())
	return w, nil
}

// Add watches one more namespace.
func (w *Watcher) Add(netns uint32) error {
	if err := w.objs.NetnsFilter.Put(netns, uint8(1)); err != nil {
		return fmt.Errorf("watch namespace %d: %w", netns, err)
	}
	return nil
}

// Remove stops watching a namespace (one that is gone: its inode may be given to another).
func (w *Watcher) Remove(netns uint32) error {
	if err := w.objs.NetnsFilter.Delete(netns); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("stop watching namespace %d: %w", netns, err)
	}
	return nil
}

// SetDeadline makes Read return os.ErrDeadlineExceeded once t has passed (zero: none).
// It waits for a Read in progress to return (the reader holds its lock while it waits);
// Close does not.
func (w *Watcher) SetDeadline(t time.Time) { w.rd.SetDeadline(t) }

// Read waits for the next drop. After Close it returns ringbuf.ErrClosed.
func (w *Watcher) Read() (Event, error) {
	rec, err := w.rd.Read()
	if err != nil {
		return Event{}, err
	}
	var raw dropsBPFDropEvent
	if len(rec.RawSample) < binary.Size(raw) {
		return Event{}, fmt.Errorf("short drop event (%d bytes)", len(rec.RawSample))
	}
	if _, err := binary.Decode(rec.RawSample, binary.NativeEndian, &raw); err != nil {
		return Event{}, fmt.Errorf("decode drop event: %w", err)
	}
	return w.event(raw), nil
}

func (w *Watcher) event(r dropsBPFDropEvent) Event {
	e := Event{
		Time:     time.Unix(0, int64(r.Ts)+int64(w.mono)),
		Netns:    r.Netns,
		Ifindex:  int(r.Ifindex),
		Reason:   w.reasons[r.Reason],
		Location: r.Location,
	}
	if e.Reason == "" {
		e.Reason = fmt.Sprintf("reason %d", r.Reason)
	}
	if r.Proto != 0 {
		src := addr(r.Saddr)
		dst := addr(r.Daddr)
		e.Src, e.Dst = netip.AddrPortFrom(src, r.Sport), netip.AddrPortFrom(dst, r.Dport)
		switch r.Proto {
		case unix.IPPROTO_TCP:
			e.Proto = "tcp"
		case unix.IPPROTO_UDP:
			e.Proto = "udp"
		case unix.IPPROTO_ICMP:
			e.Proto = "icmp"
			e.ICMP = fmt.Sprintf("type %d code %d", r.IcmpType, r.IcmpCode)
		default:
			e.Proto = fmt.Sprintf("ip proto %d", r.Proto)
		}
	}
	return e
}

// addr reads an address the kernel stored in network byte order into a uint32.
func addr(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// Close detaches and unloads everything; the kernel frees it when the last descriptor goes.
func (w *Watcher) Close() error {
	var errs []error
	w.once.Do(func() {
		if w.rd != nil {
			errs = append(errs, w.rd.Close())
		}
		if w.link != nil {
			errs = append(errs, w.link.Close())
		}
		errs = append(errs, w.objs.Close())
	})
	return errors.Join(errs...)
}

// reasonNames reads enum skb_drop_reason from the kernel's BTF: the values differ
// between kernels, the names do not.
func reasonNames(spec *btf.Spec) map[uint32]string {
	out := map[uint32]string{}
	var e *btf.Enum
	if err := spec.TypeByName("skb_drop_reason", &e); err != nil {
		return out
	}
	for _, v := range e.Values {
		out[uint32(v.Value)] = strings.TrimPrefix(v.Name, "SKB_DROP_REASON_")
	}
	return out
}
