package kernel

import (
	"encoding/binary"
	"errors"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// fakeConn answers the first `answer` requests written to it (with errno per sequence
// number in refuse, else 0), then fails every read; it records every request written.
type fakeConn struct {
	answer  int
	refuse  map[uint32]syscall.Errno
	written []uint32
	pending []uint32
}

func (c *fakeConn) write(buf []byte) error {
	msgs, err := syscall.ParseNetlinkMessage(buf)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		c.written = append(c.written, m.Header.Seq)
		c.pending = append(c.pending, m.Header.Seq)
	}
	return nil
}

func (c *fakeConn) read() ([]syscall.NetlinkMessage, error) {
	var out []syscall.NetlinkMessage
	for len(c.pending) > 0 && c.answer > 0 {
		seq := c.pending[0]
		c.pending, c.answer = c.pending[1:], c.answer-1
		data := make([]byte, 4)
		binary.NativeEndian.PutUint32(data, uint32(-int32(c.refuse[seq])))
		out = append(out, syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.NLMSG_ERROR, Seq: seq}, Data: data})
	}
	if len(out) > 0 {
		return out, nil
	}
	return nil, errors.New("read failed (test)")
}

// A read of phase 0's answers fails after the first two: the pair whose creation was
// answered gets its later requests, the pairs whose creation was not answered get none;
// the pair the kernel refused gets none either, and its refusal is an error.
func TestBatchFailedReadSendsNothingMoreForUnansweredPairs(t *testing.T) {
	h := NewHandles()
	defer h.Close()
	b := h.NewBatch()
	conn := &fakeConn{answer: 2, refuse: map[uint32]syscall.Errno{}}
	b.dial = func(string) (batchConn, error) { return conn, nil }
	const ns = "nl-test-x"
	later := map[int]uint32{} // pair → the sequence number of its phase-1 request
	create := map[int]uint32{}
	for v := 0; v < 4; v++ {
		b.veths = append(b.veths, batchVeth{})
		c := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
		create[v] = c.Seq
		b.add(0, ns, batchReq{req: c, veth: v, create: true, what: "create"})
		l := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
		later[v] = l.Seq
		b.add(1, ns, batchReq{req: l, veth: v, what: "later"})
	}
	conn.refuse[create[1]] = unix.EPERM // answered, refused
	err := b.Run()
	if err == nil {
		t.Fatal("Run: no error, want the refusal and the failed read")
	}
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("Run: %v, want the EPERM refusal among its errors", err)
	}
	sent := map[uint32]bool{}
	for _, s := range conn.written {
		sent[s] = true
	}
	if !sent[later[0]] {
		t.Errorf("pair 0 (created) got no phase-1 request")
	}
	for v := 1; v < 4; v++ {
		if sent[later[v]] {
			t.Errorf("pair %d (refused, unanswered or unsent) got a phase-1 request", v)
		}
		if !b.veths[v].failed {
			t.Errorf("pair %d not marked failed", v)
		}
	}
}
