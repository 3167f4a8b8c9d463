package capture

import (
	"fmt"
	"net"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"golang.org/x/sys/unix"
)

// The kernel stamps packets as they arrive only once some socket asked for timestamps, and
// it switches that on from a work item, a moment after the first such socket appears.
// Until then a packet is stamped when it is read, which would order packets read by
// different sockets wrongly. waitStamping sends datagrams to itself on the loopback of a
// lab namespace until one carries a stamp older than its read: arrival stamping is on.
func waitStamping(ns string, limit time.Duration) error {
	var conn *net.UDPConn
	err := kernel.Do(ns, func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		conn = c
		return err
	})
	if err != nil {
		return fmt.Errorf("timestamp probe in %s: %w", ns, err)
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	_ = rc.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) })
	buf, oob := make([]byte, 16), make([]byte, 128)
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := conn.WriteToUDP([]byte("ts"), conn.LocalAddr().(*net.UDPAddr)); err != nil {
			return err
		}
		time.Sleep(200 * time.Microsecond)
		before := time.Now()
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, oobn, _, _, err := conn.ReadMsgUDP(buf, oob)
		if err != nil {
			continue
		}
		if ts := stamp(oob[:oobn]); ts.Before(before) {
			return nil
		}
	}
	return fmt.Errorf("the kernel does not stamp packets on arrival yet; packet order across interfaces may be off")
}
