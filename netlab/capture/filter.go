package capture

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// Frame offsets on an Ethernet device (every lab interface is one: veths, bridges, VXLAN).
const (
	offEtherType = 12
	offIP        = 14
	offIPProto   = offIP + 9
	offIPSrc     = offIP + 12
	offIPDst     = offIP + 16
	snapLen      = 262144
)

// FlowFilter assembles a classic BPF program that keeps IPv4 packets whose source or
// destination address is in one of nets (a /32 for one address) and, for TCP and UDP,
// whose source or destination port is one of ports (any port when ports is empty). ICMP
// between those addresses is kept too: it carries the rejects and unreachables a failing
// request gets back. Everything else is dropped in the kernel.
func FlowFilter(nets []netip.Prefix, ports []uint16) ([]bpf.RawInstruction, error) {
	nets = uniqPrefixes(nets)
	if len(nets) == 0 {
		return nil, fmt.Errorf("flow filter needs at least one address")
	}
	ports = uniqPorts(ports)
	if len(nets) > 40 || len(ports) > 60 {
		return nil, fmt.Errorf("flow filter: too many addresses (%d) or ports (%d); at most 40 and 60", len(nets), len(ports))
	}

	// Labels are resolved into jump offsets once the program is laid out.
	type ins struct {
		i          bpf.Instruction
		jt, jf     string // labels for conditional jumps ("" = next)
		label      string // this instruction's label
		condVal    uint32
		isCond     bool
		condIsJset bool
	}
	var prog []ins
	add := func(i bpf.Instruction) { prog = append(prog, ins{i: i}) }
	cond := func(val uint32, jt, jf string) { prog = append(prog, ins{isCond: true, condVal: val, jt: jt, jf: jf}) }
	label := func(l string) { prog = append(prog, ins{label: l}) }

	add(bpf.LoadAbsolute{Off: offEtherType, Size: 2})
	cond(0x0800, "", "drop")
	// Source or destination address in one of the nets.
	for _, off := range []uint32{offIPSrc, offIPDst} {
		for _, n := range nets {
			add(bpf.LoadAbsolute{Off: off, Size: 4})
			if n.Bits() < 32 {
				add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ^uint32(0) << (32 - n.Bits())})
			}
			cond(be32(n.Addr()), "addrok", "")
		}
	}
	cond(0, "drop", "drop")
	label("addrok")
	add(bpf.LoadAbsolute{Off: offIPProto, Size: 1})
	cond(1, "accept", "") // ICMP
	if len(ports) == 0 {
		cond(6, "accept", "")
		cond(17, "accept", "drop")
	} else {
		cond(6, "l4", "")
		cond(17, "l4", "drop")
		label("l4")
		// A later fragment has no ports: keep it (the addresses already matched).
		add(bpf.LoadAbsolute{Off: offIP + 6, Size: 2})
		prog = append(prog, ins{isCond: true, condIsJset: true, condVal: 0x1fff, jt: "accept", jf: ""})
		add(bpf.LoadMemShift{Off: offIP})
		add(bpf.LoadIndirect{Off: offIP, Size: 2}) // source port
		for _, p := range ports {
			cond(uint32(p), "accept", "")
		}
		add(bpf.LoadIndirect{Off: offIP + 2, Size: 2}) // destination port
		for i, p := range ports {
			if i == len(ports)-1 {
				cond(uint32(p), "accept", "drop")
			} else {
				cond(uint32(p), "accept", "")
			}
		}
	}
	label("accept")
	add(bpf.RetConstant{Val: snapLen})
	label("drop")
	add(bpf.RetConstant{Val: 0})

	// Lay out: labels take no room.
	pos := map[string]int{}
	n := 0
	for _, in := range prog {
		if in.label != "" {
			pos[in.label] = n
			continue
		}
		n++
	}
	var out []bpf.Instruction
	idx := 0
	for _, in := range prog {
		if in.label != "" {
			continue
		}
		if in.isCond {
			skip := func(l string) (uint8, error) {
				if l == "" {
					return 0, nil
				}
				d := pos[l] - idx - 1
				if d < 0 || d > 255 {
					return 0, fmt.Errorf("flow filter: jump to %s out of range (%d)", l, d)
				}
				return uint8(d), nil
			}
			jt, err := skip(in.jt)
			if err != nil {
				return nil, err
			}
			jf, err := skip(in.jf)
			if err != nil {
				return nil, err
			}
			cmp := bpf.JumpEqual
			if in.condIsJset {
				cmp = bpf.JumpBitsSet
			}
			out = append(out, bpf.JumpIf{Cond: cmp, Val: in.condVal, SkipTrue: jt, SkipFalse: jf})
		} else {
			out = append(out, in.i)
		}
		idx++
	}
	return bpf.Assemble(out)
}

// CompileExpr turns a tcpdump filter expression into classic BPF for Ethernet frames, with
// tcpdump's own compiler (`tcpdump -ddd -y EN10MB`: compiled only, no device is opened).
func CompileExpr(ctx context.Context, expr []string) ([]bpf.RawInstruction, error) {
	if len(expr) == 0 {
		return nil, nil
	}
	td, err := exec.LookPath("tcpdump")
	if err != nil {
		return nil, fmt.Errorf("a filter expression needs tcpdump to compile it (scripts/deps.sh installs it): %w", err)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, td, append([]string{"-ddd", "-y", "EN10MB", "-s", strconv.Itoa(snapLen)}, expr...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		msg = strings.TrimPrefix(msg, "tcpdump: ")
		return nil, fmt.Errorf("filter %q: %s", strings.Join(expr, " "), msg)
	}
	return parseDDD(out)
}

// parseDDD reads `tcpdump -ddd` output: a count, then "code jt jf k" per line.
func parseDDD(b []byte) ([]bpf.RawInstruction, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	var prog []bpf.RawInstruction
	first := true
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if first {
			first = false
			if len(f) == 1 {
				continue
			}
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("unexpected filter line %q", sc.Text())
		}
		var v [4]uint64
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("unexpected filter line %q", sc.Text())
			}
			v[i] = n
		}
		prog = append(prog, bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	if len(prog) == 0 {
		return nil, fmt.Errorf("empty filter program")
	}
	return prog, nil
}

func be32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uniqPrefixes(in []netip.Prefix) []netip.Prefix {
	seen := map[netip.Prefix]bool{}
	var out []netip.Prefix
	for _, p := range in {
		p = p.Masked()
		if p.IsValid() && p.Addr().Is4() && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Addr().Compare(out[j].Addr()); c != 0 {
			return c < 0
		}
		return out[i].Bits() < out[j].Bits()
	})
	return out
}

func uniqPorts(in []uint16) []uint16 {
	seen := map[uint16]bool{}
	var out []uint16
	for _, p := range in {
		if p != 0 && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// RawFilter is one classic BPF instruction, as the kernel takes it.
type RawFilter = bpf.RawInstruction
