package lb

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"
)

// Flow is the part of a conntrack entry the report needs.
type Flow struct {
	Proto       string         // TCP or UDP
	OrigDst     netip.AddrPort // what the client connected to (the VIP)
	ReplySrc    netip.AddrPort // who answers (the real server after DNAT)
	Established bool           // TCP ESTABLISHED
}

// ConnCount is ipvsadm's ActiveConn / InActConn for one real server.
type ConnCount struct {
	Active   int `json:"activeConns"`
	Inactive int `json:"inactiveConns"`
}

// CountConns counts the conntrack flows of each real server, keyed by BackendKey.
// Established TCP connections are active; everything else (handshakes, TIME_WAIT, UDP)
// is inactive, as IPVS counts them.
func CountConns(vss []VirtualService, flows []Flow) map[string]ConnCount {
	type key struct {
		proto    string
		vip, rip netip.AddrPort
	}
	idx := map[key]string{}
	out := map[string]ConnCount{}
	for _, vs := range vss {
		vip, err := netip.ParseAddrPort(fmt.Sprintf("%s:%d", vs.VIP, vs.Port))
		if err != nil {
			continue
		}
		for _, b := range vs.Backends {
			rip, err := netip.ParseAddrPort(b.Addr())
			if err != nil {
				continue
			}
			idx[key{vs.proto(), vip, rip}] = BackendKey(vs, b)
			out[BackendKey(vs, b)] = ConnCount{}
		}
	}
	for _, f := range flows {
		k, ok := idx[key{strings.ToUpper(f.Proto), f.OrigDst, f.ReplySrc}]
		if !ok {
			continue
		}
		c := out[k]
		if f.Established && strings.EqualFold(f.Proto, ProtoTCP) {
			c.Active++
		} else {
			c.Inactive++
		}
		out[k] = c
	}
	return out
}

// Report is `netlab lb`: every virtual service with its real servers, their health,
// connections and counters.
type Report struct {
	Lab       string          `json:"lab"`
	Namespace string          `json:"namespace"`
	Updated   time.Time       `json:"updated,omitzero"` // when the agent last published
	Services  []ServiceReport `json:"services"`
}

// ServiceReport is one virtual service in a Report.
type ServiceReport struct {
	Name        string         `json:"name"`
	Protocol    string         `json:"protocol"`
	VIP         string         `json:"vip"`
	Port        int            `json:"port"`
	Scheduler   string         `json:"scheduler"`
	Persistence string         `json:"persistence,omitempty"`
	Conns       uint64         `json:"conns"`
	In          Counter        `json:"in"`
	Out         Counter        `json:"out"`
	Backends    []ServerReport `json:"backends"`
}

// ServerReport is one real server in a Report.
type ServerReport struct {
	Node    string    `json:"node"`
	IP      string    `json:"ip"`
	Port    int       `json:"port"`
	Weight  int       `json:"weight"`
	Healthy bool      `json:"healthy"`
	Since   time.Time `json:"since,omitzero"`
	Check   string    `json:"check,omitempty"`
	Err     string    `json:"err,omitempty"`
	ConnCount
	RealServerStats
}

// BuildReport puts the agent's state, the rule counters and the conntrack counts
// together.
func BuildReport(lab, namespace string, st *State, stats map[string]map[string]RealServerStats, conns map[string]ConnCount) Report {
	r := Report{Lab: lab, Namespace: namespace, Updated: st.Updated, Services: []ServiceReport{}}
	for _, vs := range st.Services {
		sr := ServiceReport{Name: vs.Name, Protocol: vs.proto(), VIP: vs.VIP, Port: vs.Port, Scheduler: vs.scheduler(), Backends: []ServerReport{}}
		if vs.Persistence > 0 {
			sr.Persistence = vs.Persistence.String()
		}
		for _, b := range vs.Backends {
			rs := ServerReport{Node: b.Name, IP: b.IP, Port: b.Port, Weight: st.ShownWeight(b), Healthy: b.Healthy,
				ConnCount: conns[BackendKey(vs, b)], RealServerStats: stats[vs.Key()][b.Addr()]}
			if ps, ok := st.Probes[BackendKey(vs, b)]; ok {
				rs.Since, rs.Check, rs.Err = ps.Health.Since, ps.Probe.Key(), ps.Err
			}
			sr.Conns += rs.Conns
			sr.In.Packets += rs.In.Packets
			sr.In.Bytes += rs.In.Bytes
			sr.Out.Packets += rs.Out.Packets
			sr.Out.Bytes += rs.Out.Bytes
			sr.Backends = append(sr.Backends, rs)
		}
		r.Services = append(r.Services, sr)
	}
	return r
}

// WriteTable prints the report in the spirit of ipvsadm -Ln --stats.
func (r Report) WriteTable(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "IP Virtual Server (netlab %s, namespace %s)\n", r.Lab, r.Namespace)
	fmt.Fprintf(w, "Prot LocalAddress:Port\tScheduler\tWeight\tHealth\tActiveConn\tInActConn\tConns\tInPkts\tOutPkts\tInBytes\tOutBytes\n")
	fmt.Fprintf(w, "  -> RemoteAddress:Port\t\t\t\t\t\t\t\t\t\t\n")
	for _, s := range r.Services {
		sched := s.Scheduler
		if s.Persistence != "" {
			sched += " persistent " + s.Persistence
		}
		active, inactive := 0, 0
		for _, b := range s.Backends {
			active += b.Active
			inactive += b.Inactive
		}
		fmt.Fprintf(w, "%s  %s:%d (%s)\t%s\t\t\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Protocol, s.VIP, s.Port, s.Name, sched,
			active, inactive, s.Conns, s.In.Packets, s.Out.Packets, s.In.Bytes, s.Out.Bytes)
		for _, b := range s.Backends {
			health := "down"
			if b.Healthy {
				health = "up"
			}
			if !b.Since.IsZero() {
				health += " since " + b.Since.Local().Format("15:04:05")
			}
			fmt.Fprintf(w, "  -> %s:%d (%s)\t\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", b.IP, b.Port, b.Node, b.Weight, health,
				b.Active, b.Inactive, b.Conns, b.In.Packets, b.Out.Packets, b.In.Bytes, b.Out.Bytes)
		}
	}
	return w.Flush()
}

// NewReport builds the report from the agent's state, the LB namespace's
// `iptables-save -c` output and its conntrack flows.
func NewReport(lab, namespace string, st *State, save []byte, flows []Flow) (Report, error) {
	parsed, err := ParseSave(save)
	if err != nil {
		return Report{}, err
	}
	return BuildReport(lab, namespace, st, Stats(st.Services, parsed), CountConns(st.Services, flows)), nil
}
