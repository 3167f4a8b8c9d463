package nftrace

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"golang.org/x/sys/unix"
)

// childEnv makes the test binary a trace that holds its rules until it is killed.
const childEnv = "NFTRACE_TEST_CHILD_NS"

func TestMain(m *testing.M) {
	if ns := os.Getenv(childEnv); ns != "" {
		s, err := Start([]Target{{Object: "t", Netns: ns}}, Spec{Peer: netip.MustParseAddrPort("127.0.0.1:4"), Proto: unix.IPPROTO_TCP}, nil)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("started")
		_ = s
		select {} // until killed
	}
	os.Exit(m.Run())
}

func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("integration tests need root in CI")
		}
		t.Skip("integration test: needs root")
	}
}

// scratchNS makes a namespace of its own with loopback up, removed after the test.
func scratchNS(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("nlt-nftr%d-%d", os.Getpid(), time.Now().UnixNano()%1000)
	if err := kernel.CreateNetns(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kernel.DeleteNetns(ns) })
	h := kernel.NewHandles()
	defer h.Close()
	if err := h.LoUp(ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

func leftovers(t *testing.T, ns string) []string {
	t.Helper()
	l, err := Leftovers(ns)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// A SYN an iptables rule drops is traced to that rule, by position and text, and the
// trace table is gone after Stop.
func TestIntegrationTraceNamesDropRule(t *testing.T) {
	requireRoot(t)
	ns := scratchNS(t)
	if out, err := kernel.Run(ns, nil, "iptables", "-A", "OUTPUT", "-p", "tcp", "--dport", "7", "-j", "ACCEPT"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := kernel.Run(ns, nil, "iptables", "-A", "OUTPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// A socket bound first, so the trace can name its port before it connects.
	var fd int
	if err := kernel.Do(ns, func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}})
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sa, _ := unix.Getsockname(fd)
	peer := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))

	dropped := make(chan Event, 1)
	s, err := Start([]Target{{Object: "scratch", Netns: ns}}, Spec{Peer: peer, Proto: unix.IPPROTO_TCP}, func(e Event) {
		if e.Verdict == "drop" && !e.Mine() {
			select {
			case dropped <- e:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if l := leftovers(t, ns); len(l) != 1 {
		t.Fatalf("trace tables while tracing: %v, want one", l)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 9}); err != nil && err != unix.EINPROGRESS {
		t.Fatal(err)
	}
	var e Event
	select {
	case e = <-dropped:
	case <-time.After(10 * time.Second):
		t.Fatalf("no drop traced; events: %+v", s.Stop())
	}
	if e.Table != "filter" || e.Chain != "OUTPUT" || e.Src != peer || e.Dst.Port() != 9 || e.TCPFlags&0x02 == 0 {
		t.Errorf("drop event %+v: want filter OUTPUT, the SYN %s → 127.0.0.1:9", e, peer)
	}
	rules, err := Rules(ns, "filter")
	if err != nil {
		t.Fatal(err)
	}
	r := rules["filter"][e.Handle]
	if r.Chain != "OUTPUT" || r.Position != 2 || !strings.Contains(r.Text, "--dport 9") || !strings.Contains(r.Text, "-j DROP") {
		t.Errorf("rule of handle %d: %+v, want OUTPUT rule 2 `... --dport 9 -j DROP`", e.Handle, r)
	}
	events := s.Stop()
	for _, ev := range events {
		if ev.Src != peer && ev.Dst != peer {
			t.Errorf("traced a packet of another flow: %+v", ev)
		}
	}
	if l := leftovers(t, ns); len(l) != 0 {
		t.Errorf("trace tables left after Stop: %v", l)
	}
}

// A trace killed with SIGKILL leaves no rule: the kernel deletes the table its socket
// owned.
func TestIntegrationKilledTraceLeavesNoRule(t *testing.T) {
	requireRoot(t)
	ns := scratchNS(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+ns)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, _ := out.Read(buf)
	if !strings.Contains(string(buf[:n]), "started") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child trace did not start: %q", buf[:n])
	}
	if l := leftovers(t, ns); len(l) != 1 {
		t.Errorf("trace tables while the child traces: %v, want one", l)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if l := leftovers(t, ns); len(l) != 0 {
		t.Errorf("trace tables left by a killed trace: %v", l)
	}
}
