package capture

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// What the writer writes, read back by gopacket's pcapng reader (a test dependency only)
// and, where it is installed, by tcpdump: the section, every interface with its name,
// description, link type and nanosecond timestamps, every packet with its interface, time,
// lengths, bytes and direction; an interface that appears after the start gets its block
// before its first packet.
func TestWriterReadBack(t *testing.T) {
	ifaces := []Iface{
		{Object: "client", Netns: "nl-x-client", Name: "eth0", Index: 2},
		{Object: "node-1", Netns: "nl-x-node-1", Name: "cni0", Index: 3},
	}
	fs := frames(t)
	t0 := time.Date(2026, 12, 2, 0, 30, 0, 123456789, time.UTC)
	pkts := []Packet{
		{Time: t0, Iface: 0, Outgoing: true, Data: fs["tcp SYN"], WireLen: len(fs["tcp SYN"])},
		{Time: t0.Add(time.Millisecond), Iface: 1, Data: fs["tcp PSH-ACK"][:37], WireLen: len(fs["tcp PSH-ACK"])}, // cut at a snap length
		{Time: t0.Add(2 * time.Millisecond), Iface: 2, Outgoing: true, Data: fs["vxlan"], WireLen: len(fs["vxlan"])},
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, ifaces, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(pkts[0], ifaces); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(pkts[1], ifaces); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(pkts[2], ifaces); err == nil || !strings.Contains(err.Error(), "unknown interface 2") {
		t.Errorf("a packet on an interface not in the list: %v", err)
	}
	ifaces = append(ifaces, Iface{Object: "node-2", Netns: "nl-x-node-2", Name: "eth0", Index: 2})
	if err := w.Write(pkts[2], ifaces); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	r, err := pcapgo.NewNgReader(bytes.NewReader(buf.Bytes()), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	if si := r.SectionInfo(); si.Application != "netlab" || si.OS != runtime.GOOS || si.Hardware != runtime.GOARCH {
		t.Errorf("section %+v", si)
	}
	for i, p := range pkts {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(data, p.Data) || ci.CaptureLength != len(p.Data) || ci.Length != p.WireLen ||
			!ci.Timestamp.Equal(p.Time) || ci.InterfaceIndex != p.Iface {
			t.Errorf("packet %d: %d bytes, %+v; want %d bytes of %+v", i, len(data), ci, len(p.Data), p)
		}
		want := pcapgo.NgEpbFlagDirectionInbound
		if p.Outgoing {
			want = pcapgo.NgEpbFlagDirectionOutbound
		}
		if opts.Flags == nil || opts.Flags.Direction != want {
			t.Errorf("packet %d: flags %+v, want direction %v", i, opts.Flags, want)
		}
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Errorf("after the last packet: %v", err)
	}
	if r.NInterfaces() != 3 {
		t.Fatalf("%d interfaces, want 3", r.NInterfaces())
	}
	for i, want := range ifaces {
		ifc, _ := r.Interface(i)
		if ifc.Name != want.Label() || ifc.Description != want.Name+" in namespace "+want.Netns || ifc.LinkType != layers.LinkTypeEthernet ||
			ifc.SnapLength != snapLen || ifc.TimestampResolution != 9 || ifc.OS != runtime.GOOS {
			t.Errorf("interface %d: %+v, want %s", i, ifc, want.Label())
		}
	}

	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump is not installed: the file is not read by it")
	}
	file := filepath.Join(t.TempDir(), "w.pcapng")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tcpdump", "-nr", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "203.0.113.2.40000 > 10.244.1.5.80: Flags [S]") || strings.Count(string(out), "\n") < 3 {
		t.Errorf("tcpdump -r: %v\n%s", err, out)
	}
}

// With flush, every block reaches the writer at once (a pipe into wireshark).
func TestWriterFlush(t *testing.T) {
	var buf bytes.Buffer
	ifaces := []Iface{{Object: "client", Netns: "nl-x-client", Name: "eth0"}}
	w, err := NewWriter(&buf, ifaces, true)
	if err != nil {
		t.Fatal(err)
	}
	n := buf.Len()
	if n == 0 {
		t.Fatal("nothing written before the first packet: the section and interface blocks are buffered")
	}
	if err := w.Write(Packet{Time: time.Now(), Data: frames(t)["tcp SYN"], WireLen: 54}, ifaces); err != nil {
		t.Fatal(err)
	}
	if buf.Len() <= n {
		t.Error("a packet written with flush stayed buffered")
	}
	if _, err := NewWriter(&buf, nil, false); err == nil {
		t.Error("a writer with no interface")
	}
}
