package capture

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
)

// Writer writes packets as pcapng (the IETF's draft-ietf-opsawg-pcapng: a section header
// block, an interface description block per interface, an enhanced packet block per
// packet), one interface named `<object>/<ifname>`; an interface gets its block before its
// first packet. The blocks are written here rather than by gopacket's pcapgo, whose
// package brings gopacket's layers and their initialisation into every start of the
// netlab binary (docs/design-notes.md, "The CLI's start").
type Writer struct {
	w     *bufio.Writer
	ids   map[int]uint32 // session interface → pcapng interface id
	next  uint32         // the next interface id
	flush bool
	buf   []byte // the block being built
}

// pcapng block types and option codes.
const (
	blockSection    = 0x0A0D0D0A
	blockInterface  = 0x00000001
	blockEnhanced   = 0x00000006
	byteOrderMagic  = 0x1A2B3C4D
	linkTypeEther   = 1
	optEnd          = 0
	optSHBHardware  = 2
	optSHBOS        = 3
	optSHBUserAppl  = 4
	optIfName       = 2
	optIfDesc       = 3
	optIfTSResol    = 9
	optIfOS         = 12
	optEPBFlags     = 2
	epbInbound      = 1 // epb_flags bits 0-1: the packet's direction
	epbOutbound     = 2
	tsResolutionNS  = 9 // if_tsresol: 10^-9 s
	nanosPerSecond  = 1_000_000_000
	blockHeaderSize = 8 // type and total length; the length is repeated at the end
)

var le = binary.LittleEndian

// NewWriter starts a pcapng section with the given interfaces already described. flush
// writes each packet through at once (for a pipe such as `-w - | wireshark -k -i -`).
func NewWriter(w io.Writer, ifaces []Iface, flush bool) (*Writer, error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("pcapng: no interface to describe")
	}
	pw := &Writer{w: bufio.NewWriter(w), ids: map[int]uint32{}, flush: flush}
	pw.begin(blockSection)
	pw.buf = le.AppendUint32(pw.buf, byteOrderMagic)
	pw.buf = le.AppendUint16(pw.buf, 1) // version 1.0
	pw.buf = le.AppendUint16(pw.buf, 0)
	pw.buf = le.AppendUint64(pw.buf, ^uint64(0)) // section length: not given
	pw.option(optSHBHardware, []byte(runtime.GOARCH))
	pw.option(optSHBOS, []byte(runtime.GOOS))
	pw.option(optSHBUserAppl, []byte("netlab"))
	if err := pw.end(); err != nil {
		return nil, err
	}
	for i := range ifaces {
		if err := pw.describe(i, ifaces[i]); err != nil {
			return nil, err
		}
	}
	if err := pw.w.Flush(); err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	return pw, nil
}

// describe writes the interface description block of session interface sessionID.
func (w *Writer) describe(sessionID int, i Iface) error {
	w.begin(blockInterface)
	w.buf = le.AppendUint16(w.buf, linkTypeEther)
	w.buf = le.AppendUint16(w.buf, 0) // reserved
	w.buf = le.AppendUint32(w.buf, snapLen)
	w.option(optIfName, []byte(i.Label()))
	w.option(optIfDesc, fmt.Appendf(nil, "%s in namespace %s", i.Name, i.Netns))
	w.option(optIfTSResol, []byte{tsResolutionNS})
	w.option(optIfOS, []byte(runtime.GOOS))
	if err := w.end(); err != nil {
		return err
	}
	w.ids[sessionID] = w.next
	w.next++
	return nil
}

// Write adds one packet; ifaces is the session's interface list (it may have grown).
func (w *Writer) Write(p Packet, ifaces []Iface) error {
	id, ok := w.ids[p.Iface]
	if !ok {
		if p.Iface < 0 || p.Iface >= len(ifaces) {
			return fmt.Errorf("pcapng: packet on unknown interface %d", p.Iface)
		}
		if err := w.describe(p.Iface, ifaces[p.Iface]); err != nil {
			return err
		}
		id = w.ids[p.Iface]
	}
	ts := uint64(p.Time.UnixNano())
	w.begin(blockEnhanced)
	w.buf = le.AppendUint32(w.buf, id)
	w.buf = le.AppendUint32(w.buf, uint32(ts>>32))
	w.buf = le.AppendUint32(w.buf, uint32(ts))
	w.buf = le.AppendUint32(w.buf, uint32(len(p.Data)))
	w.buf = le.AppendUint32(w.buf, uint32(max(p.WireLen, len(p.Data))))
	w.buf = append(w.buf, p.Data...)
	w.pad()
	dir := uint32(epbInbound)
	if p.Outgoing {
		dir = epbOutbound
	}
	w.option(optEPBFlags, le.AppendUint32(nil, dir))
	if err := w.end(); err != nil {
		return err
	}
	if w.flush {
		return w.Close()
	}
	return nil
}

// Close flushes what is buffered (the underlying writer stays open).
func (w *Writer) Close() error {
	if err := w.w.Flush(); err != nil {
		return fmt.Errorf("pcapng: %w", err)
	}
	return nil
}

// begin starts a block: its type, and room for its length.
func (w *Writer) begin(typ uint32) {
	w.buf = le.AppendUint32(w.buf[:0], typ)
	w.buf = le.AppendUint32(w.buf, 0)
}

// option appends one option (code, length, the value padded to 32 bits).
func (w *Writer) option(code uint16, value []byte) {
	w.buf = le.AppendUint16(w.buf, code)
	w.buf = le.AppendUint16(w.buf, uint16(len(value)))
	w.buf = append(w.buf, value...)
	w.pad()
}

func (w *Writer) pad() {
	for len(w.buf)%4 != 0 {
		w.buf = append(w.buf, 0)
	}
}

// end closes the option list and the block (its length at both ends) and writes it.
func (w *Writer) end() error {
	w.buf = le.AppendUint16(w.buf, optEnd)
	w.buf = le.AppendUint16(w.buf, 0)
	total := uint32(len(w.buf) + 4)
	le.PutUint32(w.buf[4:], total)
	w.buf = le.AppendUint32(w.buf, total)
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("pcapng: %w", err)
	}
	return nil
}
