package capture

import (
	"fmt"
	"io"
	"runtime"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Writer writes packets as pcapng, one interface description block per interface, named
// `<object>/<ifname>`; an interface gets its block before its first packet.
type Writer struct {
	ng    *pcapgo.NgWriter
	ids   map[int]int // session interface → pcapng interface id
	flush bool
}

// NewWriter starts a pcapng section with the given interfaces already described. flush
// writes each packet through at once (for a pipe such as `-w - | wireshark -k -i -`).
func NewWriter(w io.Writer, ifaces []Iface, flush bool) (*Writer, error) {
	if len(ifaces) == 0 {
		return nil, fmt.Errorf("pcapng: no interface to describe")
	}
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "netlab",
	}}
	ng, err := pcapgo.NewNgWriterInterface(w, ngIface(ifaces[0]), opts)
	if err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	pw := &Writer{ng: ng, ids: map[int]int{0: 0}, flush: flush}
	for i := 1; i < len(ifaces); i++ {
		if err := pw.describe(i, ifaces[i]); err != nil {
			return nil, err
		}
	}
	if err := ng.Flush(); err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	return pw, nil
}

func ngIface(i Iface) pcapgo.NgInterface {
	return pcapgo.NgInterface{
		Name:                i.Label(),
		Description:         fmt.Sprintf("%s in namespace %s", i.Name, i.Netns),
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkTypeEthernet,
		SnapLength:          snapLen,
		TimestampResolution: 9,
	}
}

func (w *Writer) describe(sessionID int, i Iface) error {
	id, err := w.ng.AddInterface(ngIface(i))
	if err != nil {
		return fmt.Errorf("pcapng: %w", err)
	}
	w.ids[sessionID] = id
	return nil
}

// Write adds one packet; ifaces is the session's interface list (it may have grown).
func (w *Writer) Write(p Packet, ifaces []Iface) error {
	id, ok := w.ids[p.Iface]
	if !ok {
		if p.Iface >= len(ifaces) {
			return fmt.Errorf("pcapng: packet on unknown interface %d", p.Iface)
		}
		if err := w.describe(p.Iface, ifaces[p.Iface]); err != nil {
			return err
		}
		id = w.ids[p.Iface]
	}
	dir := pcapgo.NgEpbFlagDirectionInbound
	if p.Outgoing {
		dir = pcapgo.NgEpbFlagDirectionOutbound
	}
	flags := pcapgo.NgEpbFlags{Direction: dir}
	ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Data), Length: max(p.WireLen, len(p.Data)), InterfaceIndex: id}
	if err := w.ng.WritePacketWithOptions(ci, p.Data, pcapgo.NgPacketOptions{Flags: &flags}); err != nil {
		return fmt.Errorf("pcapng: %w", err)
	}
	if w.flush {
		return w.ng.Flush()
	}
	return nil
}

// Close flushes what is buffered (the underlying writer stays open).
func (w *Writer) Close() error { return w.ng.Flush() }
