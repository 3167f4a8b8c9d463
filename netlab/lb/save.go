package lb

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/iptables"
)

// SaveRule is one rule of iptables-save output.
type SaveRule struct {
	Table   string
	Chain   string
	Line    string // "-A CHAIN ..." without the counters
	Comment string
	Target  string
	Packets uint64 // only with iptables-save -c
	Bytes   uint64
}

// SaveState is what the LB namespace holds now, parsed from iptables-save [-c].
type SaveState struct {
	Chains []string // user-defined chains, every table
	Rules  []SaveRule
}

// ParseSave reads iptables-save output, with or without -c counters.
func ParseSave(b []byte) (SaveState, error) {
	var st SaveState
	d, err := iptables.Parse(b)
	if err != nil {
		return st, fmt.Errorf("iptables-save output: %w", err)
	}
	st.Chains = d.UserChains()
	for _, t := range d.Tables {
		for _, r := range t.Rules {
			if r.Op != "-A" {
				return st, fmt.Errorf("iptables-save output: line %d: unexpected %q", r.Line, r.Text)
			}
			st.Rules = append(st.Rules, SaveRule{Table: t.Name, Chain: r.Chain, Line: r.Text, Comment: r.Comment(),
				Target: r.Target(), Packets: r.Counters.Packets, Bytes: r.Counters.Bytes})
		}
	}
	return st, nil
}

// MissingJumps lists the JumpRules that are not in the saved rules yet.
func (s SaveState) MissingJumps() []JumpRule {
	have := map[string]bool{}
	for _, r := range s.Rules {
		have[r.Table+"|"+r.Line] = true
	}
	var out []JumpRule
	for _, j := range JumpRules() {
		if !have[j.Table+"|"+ruleLine(j.Chain, j.Args...)] {
			out = append(out, j)
		}
	}
	return out
}

// RenderApply is Render against what iptables-save printed: existing chains come from
// it, and the jumps from built-in chains that are missing are appended in the same
// transaction, so one iptables-restore --noflush both programs and hooks the rules.
func RenderApply(vss []VirtualService, save SaveState) ([]byte, error) {
	out, err := Render(vss, save.Chains)
	if err != nil {
		return nil, err
	}
	missing := save.MissingJumps()
	if len(missing) == 0 {
		return out, nil
	}
	// Insert each table's jumps just before its COMMIT; Render writes filter, mangle, nat.
	var b bytes.Buffer
	table := ""
	for _, line := range strings.SplitAfter(string(out), "\n") {
		t := strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(t, "*") {
			table = t[1:]
		}
		if t == "COMMIT" {
			for _, j := range missing {
				if j.Table == table {
					b.WriteString(ruleLine(j.Chain, j.Args...))
					b.WriteByte('\n')
				}
			}
		}
		b.WriteString(line)
	}
	return b.Bytes(), nil
}

// Counter is a packet and byte count.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// RealServerStats is what `netlab lb` shows for one real server, in the spirit of
// ipvsadm -Ln --stats.
type RealServerStats struct {
	// Conns counts new connections scheduled to the server since its chain was written.
	Conns uint64 `json:"conns"`
	// In is client -> server traffic, Out server -> client, as counted in the LB's FORWARD.
	In  Counter `json:"in"`
	Out Counter `json:"out"`
}

// Stats reads each real server's counters from iptables-save -c output, keyed by
// VirtualService.Key() and then Backend.Addr().
func Stats(vss []VirtualService, save SaveState) map[string]map[string]RealServerStats {
	dnat := map[string]Counter{}
	byComment := map[string]Counter{}
	for _, r := range save.Rules {
		if r.Target == "DNAT" && strings.HasPrefix(r.Chain, PrefixRS) {
			c := dnat[r.Chain]
			c.Packets += r.Packets
			c.Bytes += r.Bytes
			dnat[r.Chain] = c
		}
		if strings.HasPrefix(r.Chain, PrefixST) {
			c := byComment[r.Comment]
			c.Packets += r.Packets
			c.Bytes += r.Bytes
			byComment[r.Comment] = c
		}
	}
	out := map[string]map[string]RealServerStats{}
	for _, vs := range vss {
		m := map[string]RealServerStats{}
		for _, b := range vs.Backends {
			m[b.Addr()] = RealServerStats{
				Conns: dnat[RSChain(vs, b)].Packets,
				In:    byComment[StatsComment(vs, b, true)],
				Out:   byComment[StatsComment(vs, b, false)],
			}
		}
		out[vs.Key()] = m
	}
	return out
}

// State is what the lb agent publishes for status and `netlab lb`: the virtual
// services as last applied (health included) and every probe's state.
type State struct {
	Updated time.Time `json:"updated"`
	// Inhibit reports weight 0 instead of removal for unhealthy backends.
	Inhibit  bool             `json:"inhibit"`
	Services []VirtualService `json:"services"`
	// Probes maps each backend (by BackendKey) to its check and health.
	Probes map[string]ProbeState `json:"probes"`
	// Applies counts rule applications; LastApply is the latest one.
	Applies   int       `json:"applies"`
	LastApply time.Time `json:"lastApply,omitzero"`
	LastError string    `json:"lastError,omitempty"`
}

// ProbeState is one probe's check and health.
type ProbeState struct {
	Probe  Probe        `json:"probe"`
	Health HealthStatus `json:"health"`
	Err    string       `json:"err,omitempty"`
}

// ShownWeight is the weight to display for a backend: 0 when it is inhibited (unhealthy
// under inhibit), else its configured weight.
func (s State) ShownWeight(b Backend) int {
	if !b.Healthy && s.Inhibit {
		return 0
	}
	return b.Weight
}

// BackendKey identifies a backend of a virtual service in State.Probes.
func BackendKey(vs VirtualService, b Backend) string { return vs.Key() + " " + b.Addr() }
