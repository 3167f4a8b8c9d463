package lb

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Schedulers, named as ipvsadm names them.
const (
	SchedRR     = "rr"     // round robin over new connections
	SchedWRR    = "wrr"    // IPVS's interleaved weighted round robin
	SchedSH     = "sh"     // source hashing over a fixed bucket table
	SchedRandom = "random" // weighted random
	SchedLC     = "lc"     // least connections: rejected, see ErrLCUnsupported
)

// Protocols a virtual service can balance.
const (
	ProtoTCP = "TCP"
	ProtoUDP = "UDP"
)

// Limits checked by Validate.
const (
	// MaxWeight is the largest backend weight.
	MaxWeight = 256
	// MaxWRRSlots bounds the sum of a wrr service's weights: the rules hold one
	// statistic-nth slot per step of the weighted sequence.
	MaxWRRSlots = 256
	// maxComment keeps names well below iptables' 256-byte comment limit.
	maxNameLen = 100
)

// ErrLCUnsupported is returned for the lc scheduler. Least-connection needs each real
// server's active connection count at the moment a new connection is scheduled; iptables
// rules are evaluated per packet without that count (connlimit counts by the VIP before
// DNAT, not per real server), and re-rendering from conntrack after the fact lets every
// burst of new connections land on one server. Rather than pretend, netlab rejects lc.
var ErrLCUnsupported = errors.New("scheduler lc is not supported: iptables cannot see a real server's active connections when it schedules a new one; use rr, wrr, sh or random")

// VirtualService is one VIP:port:protocol of the load balancer and its real servers, as
// ipvsadm -A/-a would describe it.
type VirtualService struct {
	// Name labels the service in rule comments and status ("ingress-http",
	// "default/shop:http").
	Name     string `json:"name"`
	VIP      string `json:"vip"`
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"` // TCP (default) or UDP
	// Scheduler is rr (default), wrr, sh or random.
	Scheduler string `json:"scheduler,omitempty"`
	// Persistence, like ipvsadm -p: a client that got a real server within this time
	// gets the same one again. Zero disables it; otherwise whole seconds.
	Persistence time.Duration `json:"persistence,omitempty"`
	// Backends are the real servers in scheduling order.
	Backends []Backend `json:"backends"`
	// SourceRanges, when set, are the only source CIDRs that reach the VIP (a LoadBalancer
	// Service's loadBalancerSourceRanges, as a cloud LB's firewall applies them).
	SourceRanges []string `json:"sourceRanges,omitempty"`
}

// Backend is one real server of a virtual service.
type Backend struct {
	Name string `json:"name"` // the node's name
	IP   string `json:"ip"`
	Port int    `json:"port"`
	// Weight is the configured weight (wrr, sh, random); 0 quiesces the server (no new
	// connections), as in IPVS. rr ignores weights other than 0. The health check never
	// changes Weight: sh's bucket table is laid out from configured weights so that a
	// failure moves only the failed server's clients.
	Weight int `json:"weight"`
	// Healthy is the health checker's verdict. An unhealthy backend receives no new
	// connections; its established connections stay (conntrack).
	Healthy bool `json:"healthy"`
}

// Usable reports whether the backend may receive new connections.
func (b Backend) Usable() bool { return b.Healthy && b.Weight > 0 }

// Addr is the backend's "ip:port".
func (b Backend) Addr() string {
	return netip.AddrPortFrom(netip.MustParseAddr(b.IP), uint16(b.Port)).String()
}

// label is how the backend is named in comments.
func (b Backend) label() string {
	if b.Name != "" {
		return b.Name
	}
	return b.Addr()
}

// proto returns the normalized protocol (TCP when empty).
func (vs VirtualService) proto() string {
	if vs.Protocol == "" {
		return ProtoTCP
	}
	return strings.ToUpper(vs.Protocol)
}

// scheduler returns the normalized scheduler (rr when empty).
func (vs VirtualService) scheduler() string {
	if vs.Scheduler == "" {
		return SchedRR
	}
	return strings.ToLower(vs.Scheduler)
}

// Key identifies the virtual service as IPVS does: protocol, VIP and port
// ("TCP:203.0.113.100:80").
func (vs VirtualService) Key() string {
	return fmt.Sprintf("%s:%s:%d", vs.proto(), vs.VIP, vs.Port)
}

// label is how the service is named in comments.
func (vs VirtualService) label() string {
	if vs.Name != "" {
		return vs.Name
	}
	return vs.Key()
}

// ValidateScheduler checks a scheduler name (as given in the Lab object or the
// netlab.dev/lb-scheduler annotation). The empty string means rr.
func ValidateScheduler(s string) error {
	switch strings.ToLower(s) {
	case "", SchedRR, SchedWRR, SchedSH, SchedRandom:
		return nil
	case SchedLC:
		return ErrLCUnsupported
	}
	return fmt.Errorf("unknown scheduler %q (want rr, wrr, sh or random)", s)
}

// ValidatePersistence checks a persistence timeout: zero, or a positive whole number of
// seconds (xt_recent counts seconds).
func ValidatePersistence(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("persistence %s is negative", d)
	}
	if d%time.Second != 0 {
		return fmt.Errorf("persistence %s is not a whole number of seconds", d)
	}
	return nil
}

// Validate reports every problem with a set of virtual services at once.
func Validate(vss []VirtualService) error {
	var errs []error
	seen := map[string]string{}
	for i, vs := range vss {
		where := fmt.Sprintf("virtual service %d (%s)", i, vs.label())
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, a...)))
		}
		if err := checkName(vs.Name); err != nil {
			bad("name: %v", err)
		}
		if a, err := netip.ParseAddr(vs.VIP); err != nil || !a.Is4() {
			bad("vip %q is not an IPv4 address", vs.VIP)
		}
		if vs.Port < 1 || vs.Port > 65535 {
			bad("port %d is out of range 1..65535", vs.Port)
		}
		if p := vs.proto(); p != ProtoTCP && p != ProtoUDP {
			bad("protocol %q is not TCP or UDP", vs.Protocol)
		}
		if err := ValidateScheduler(vs.Scheduler); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if err := ValidatePersistence(vs.Persistence); err != nil {
			bad("%v", err)
		}
		if r := invalidSourceRanges(vs.SourceRanges); len(r) > 0 {
			bad("source ranges %v are not IPv4 CIDRs", r)
		}
		if other, ok := seen[vs.Key()]; ok {
			bad("duplicates %s (%s)", vs.Key(), other)
		} else {
			seen[vs.Key()] = where
		}
		addrs := map[string]bool{}
		sum := 0
		for j, b := range vs.Backends {
			bwhere := fmt.Sprintf("backend %d (%s)", j, b.Name)
			if err := checkName(b.Name); err != nil {
				bad("%s: name: %v", bwhere, err)
			}
			a, err := netip.ParseAddr(b.IP)
			if err != nil || !a.Is4() {
				bad("%s: ip %q is not an IPv4 address", bwhere, b.IP)
			}
			if b.Port < 1 || b.Port > 65535 {
				bad("%s: port %d is out of range 1..65535", bwhere, b.Port)
			}
			if b.Weight < 0 || b.Weight > MaxWeight {
				bad("%s: weight %d is out of range 0..%d", bwhere, b.Weight, MaxWeight)
			}
			sum += b.Weight
			if err == nil {
				k := fmt.Sprintf("%s:%d", b.IP, b.Port)
				if addrs[k] {
					bad("%s: real server %s is listed twice", bwhere, k)
				}
				addrs[k] = true
			}
		}
		if vs.scheduler() == SchedWRR && sum > MaxWRRSlots {
			bad("wrr weights sum to %d, more than %d", sum, MaxWRRSlots)
		}
	}
	return errors.Join(errs...)
}

// checkName keeps names safe inside a quoted iptables comment.
func checkName(s string) error {
	if len(s) > maxNameLen {
		return fmt.Errorf("longer than %d characters", maxNameLen)
	}
	if strings.ContainsAny(s, "\"\\\n\r\t'") {
		return fmt.Errorf("%q contains a quote, backslash or control character", s)
	}
	return nil
}
