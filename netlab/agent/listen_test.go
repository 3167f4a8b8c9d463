package agent

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestListenTCPIsPlainTCP checks that the agents' listeners are plain TCP sockets, also
// where the kernel would give Go an MPTCP one.
func TestListenTCPIsPlainTCP(t *testing.T) {
	if b, err := os.ReadFile("/proc/sys/net/mptcp/enabled"); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Log("MPTCP is off or absent here: Go's default listener would be plain TCP too")
	}
	ln, err := listenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rc, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var proto int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		proto, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PROTOCOL)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if proto != syscall.IPPROTO_TCP {
		t.Errorf("listener's protocol is %d, want %d (IPPROTO_TCP; 262 is MPTCP)", proto, syscall.IPPROTO_TCP)
	}
}
