package capture

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/netlabdev/netlab/netlab/kernel"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Target is a lab object whose namespace is watched: all of its interfaces but lo, or only
// the ones named.
type Target struct {
	Object string
	Netns  string
	Ifaces []string
}

// Iface is one interface a session saw, in its namespace.
type Iface struct {
	Object string
	Netns  string
	Name   string
	Index  int // ifindex inside Netns
}

// Label is the interface's name in captures and traces: `<object>/<ifname>`.
func (i Iface) Label() string { return i.Object + "/" + i.Name }

// Packet is one frame read from a namespace's packet socket.
type Packet struct {
	Time     time.Time // the kernel's receive timestamp
	Iface    int       // index into Session.Ifaces()
	Outgoing bool      // sent by this namespace on that interface (else received)
	Data     []byte    // the Ethernet frame
	WireLen  int       // the frame's length on the wire (Data may be cut at the snap length)
}

// Session reads packets from one packet socket per target namespace until Close.
type Session struct {
	C <-chan Packet // every packet, in the order each socket read them
	// StampErr says the kernel's arrival timestamps were not on in time (see waitStamping).
	StampErr error

	mu     sync.Mutex
	ifaces []Iface
	byKey  map[ifKey]int
	h      *kernel.Handles
	socks  []*os.File
	wg     sync.WaitGroup
	closed bool
}

type ifKey struct {
	ns    string
	index int
}

// Start opens a packet socket in each target's namespace with filter attached (nil: every
// packet) and starts reading. Sockets are created through kernel.Do, the only setns.
func Start(targets []Target, filter []bpf.RawInstruction) (*Session, error) {
	c := make(chan Packet, 8192)
	s := &Session{C: c, byKey: map[ifKey]int{}, h: kernel.NewHandles()}
	for _, t := range targets {
		want, err := s.listIfaces(t)
		if err != nil {
			s.Close()
			return nil, err
		}
		f, err := openSocket(t.Netns, filter)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.socks = append(s.socks, f)
		s.wg.Add(1)
		go s.read(f, t, want, c)
	}
	go func() { s.wg.Wait(); close(c) }()
	if len(targets) > 0 {
		s.StampErr = waitStamping(targets[0].Netns, time.Second)
	}
	return s, nil
}

// Ifaces returns the interfaces known so far, in the order packets refer to them.
func (s *Session) Ifaces() []Iface {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Iface(nil), s.ifaces...)
}

// Close stops reading; C is closed once every reader has returned.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	socks := s.socks
	s.mu.Unlock()
	var errs []error
	for _, f := range socks {
		errs = append(errs, f.Close())
	}
	s.wg.Wait()
	s.mu.Lock()
	s.h.Close()
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Collect closes the session after the packets already read and returns them sorted by
// time. Use it instead of reading C.
func (s *Session) Collect(settle time.Duration) []Packet {
	var out []Packet
	done := make(chan struct{})
	go func() {
		for p := range s.C {
			out = append(out, p)
		}
		close(done)
	}()
	time.Sleep(settle)
	s.Close()
	<-done
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// listIfaces registers a target's interfaces and returns the ifindexes to keep (nil: all
// but lo).
func (s *Session) listIfaces(t Target) (map[int]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nh, err := s.h.Get(t.Netns)
	if err != nil {
		return nil, err
	}
	links, err := nh.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces of %s: %w", t.Object, err)
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Attrs().Name < links[j].Attrs().Name })
	want := map[int]bool{}
	names := map[string]bool{}
	for _, n := range t.Ifaces {
		names[n] = true
	}
	for _, l := range links {
		a := l.Attrs()
		if (len(names) == 0 && a.Name == "lo") || (len(names) > 0 && !names[a.Name]) {
			continue
		}
		delete(names, a.Name)
		want[a.Index] = true
		s.addIface(Iface{Object: t.Object, Netns: t.Netns, Name: a.Name, Index: a.Index})
	}
	for n := range names {
		return nil, fmt.Errorf("%s has no interface %q", t.Object, n)
	}
	return want, nil
}

func (s *Session) addIface(i Iface) int {
	k := ifKey{i.Netns, i.Index}
	if id, ok := s.byKey[k]; ok {
		return id
	}
	s.ifaces = append(s.ifaces, i)
	s.byKey[k] = len(s.ifaces) - 1
	return len(s.ifaces) - 1
}

// ifaceID finds (or, for an interface made after Start, looks up) an ifindex's entry.
func (s *Session) ifaceID(t Target, index int) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.byKey[ifKey{t.Netns, index}]; ok {
		return id, true
	}
	if s.closed {
		return 0, false
	}
	nh, err := s.h.Get(t.Netns)
	if err != nil {
		return 0, false
	}
	l, err := nh.LinkByIndex(index)
	if err != nil {
		return 0, false
	}
	return s.addIface(Iface{Object: t.Object, Netns: t.Netns, Name: l.Attrs().Name, Index: index}), true
}

func (s *Session) read(f *os.File, t Target, want map[int]bool, c chan<- Packet) {
	defer s.wg.Done()
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, snapLen)
	oob := make([]byte, 128)
	lo := -1
	if len(t.Ifaces) == 0 {
		lo = 1 // loopback is ifindex 1 in every namespace
	}
	for {
		var n, oobn, flags int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, flags, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return // closed
		}
		if rerr != nil {
			continue
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Ifindex == lo || (len(t.Ifaces) > 0 && !want[ll.Ifindex]) {
			continue
		}
		id, ok := s.ifaceID(t, ll.Ifindex)
		if !ok {
			continue
		}
		p := Packet{Time: stamp(oob[:oobn]), Iface: id, Outgoing: ll.Pkttype == unix.PACKET_OUTGOING, WireLen: n}
		if flags&unix.MSG_TRUNC != 0 || n > len(buf) {
			n = len(buf)
		}
		p.Data = append([]byte(nil), buf[:n]...)
		select {
		case c <- p:
		default: // the reader is behind: drop rather than block the socket
		}
	}
}

// stamp reads the SO_TIMESTAMPNS control message, or now when there is none.
func stamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
				ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
				return time.Unix(ts.Sec, ts.Nsec)
			}
		}
	}
	return time.Now()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openSocket makes a packet socket inside ns. It is created listening to no protocol, gets
// its filter, and only then is bound to every protocol, so no unfiltered packet is queued.
func openSocket(ns string, filter []bpf.RawInstruction) (*os.File, error) {
	var fd int
	err := kernel.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("packet socket in %s: %w", ns, err)
	}
	fail := func(what string, err error) (*os.File, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("packet socket in %s: %s: %w", ns, what, err)
	}
	if len(filter) > 0 {
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: (*unix.SockFilter)(unsafe.Pointer(&filter[0]))}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return fail("attach filter", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("timestamps", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		return fail("bind", err)
	}
	return os.NewFile(uintptr(fd), "packet:"+ns), nil
}
