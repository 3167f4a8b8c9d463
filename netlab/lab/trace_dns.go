package lab

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// resolvConf is what a namespace's /etc/netns/<ns>/resolv.conf says.
type resolvConf struct {
	nameserver string
	search     []string
	ndots      int
}

func readResolvConf(ns string) (resolvConf, bool) {
	f, err := os.Open(filepath.Join(rundir.EtcNetnsDir(ns), "resolv.conf"))
	if err != nil {
		return resolvConf{}, false
	}
	defer f.Close()
	rc := resolvConf{ndots: 1}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		switch fs[0] {
		case "nameserver":
			if rc.nameserver == "" {
				rc.nameserver = fs[1]
			}
		case "search":
			rc.search = fs[1:]
		case "options":
			for _, o := range fs[1:] {
				if v, ok := strings.CutPrefix(o, "ndots:"); ok {
					rc.ndots, _ = strconv.Atoi(v)
				}
			}
		}
	}
	return rc, rc.nameserver != ""
}

// candidates are the names a stub resolver asks for host, in order (resolv.conf(5)).
func (rc resolvConf) candidates(host string) []string {
	if strings.HasSuffix(host, ".") {
		return []string{host}
	}
	var out []string
	for _, s := range rc.search {
		out = append(out, mdns.Fqdn(host+"."+s))
	}
	if strings.Count(host, ".") >= rc.ndots {
		return append([]string{mdns.Fqdn(host)}, out...)
	}
	return append(out, mdns.Fqdn(host))
}

// ClusterDNSHop resolves host from object's namespace ns the way its resolver does when
// it uses the lab's cluster DNS (resolv.conf's search path and ndots, A queries over UDP
// to kube-dns's ClusterIP), and returns the address with the trace hop that shows the
// queries, the answer, and the DNS pod kube-proxy's rules sent them to. ok is false when
// ns does not use the cluster DNS.
func ClusterDNSHop(p *plan.Plan, object, ns, host string) (addr netip.Addr, hop *Hop, ok bool, err error) {
	if p.DNS == nil {
		return netip.Addr{}, nil, false, nil
	}
	rc, found := readResolvConf(ns)
	if !found || rc.nameserver != p.DNS.ServiceIP {
		return netip.Addr{}, nil, false, nil
	}
	server := net.JoinHostPort(rc.nameserver, "53")
	// Part of the article's first step: the client finding where to send the request.
	hop = &Hop{Step: stepClient, Component: "dns", Object: object, Namespace: ns, Packets: []TracePacket{},
		Watch: Hint(p.Lab, fmt.Sprintf("capture %s -- udp port 53", object))}
	var tried []string
	for _, name := range rc.candidates(host) {
		r, local, qerr := queryIn(ns, server, name)
		if qerr != nil {
			return netip.Addr{}, nil, true, fmt.Errorf("%s: query %s to %s from %s: %w", host, name, server, object, qerr)
		}
		var addrs, chain []string
		for _, rr := range r.Answer {
			switch v := rr.(type) {
			case *mdns.A:
				addrs = append(addrs, v.A.String())
			case *mdns.CNAME:
				chain = append(chain, "CNAME "+v.Target)
			}
		}
		if len(addrs) == 0 {
			what := mdns.RcodeToString[r.Rcode]
			if len(chain) > 0 {
				what += ", " + strings.Join(chain, ", ") + " (not resolved inside the lab)"
			} else if r.Rcode == mdns.RcodeSuccess {
				what += ", no A record"
			}
			tried = append(tried, fmt.Sprintf("A? %s → %s", name, what))
			continue
		}
		addr, _ = netip.ParseAddr(addrs[0])
		via := dnsBackend(p, object, local, server)
		hop.Summary = fmt.Sprintf("A? %s → %s (%s), from kube-dns %s/UDP%s", name, strings.Join(addrs, ", "),
			mdns.RcodeToString[r.Rcode], server, via)
		hop.Details = append(tried, fmt.Sprintf("resolv.conf: nameserver %s, search %s, ndots:%d", rc.nameserver, strings.Join(rc.search, " "), rc.ndots))
		if len(chain) > 0 {
			hop.Details = append(hop.Details, "via "+strings.Join(chain, ", "))
		}
		if len(r.Answer) > 0 {
			hop.Details = append(hop.Details, fmt.Sprintf("TTL %ds", r.Answer[0].Header().Ttl))
		}
		return addr, hop, true, nil
	}
	return netip.Addr{}, nil, true, fmt.Errorf("%s does not resolve in %s through the cluster DNS %s: %s", host, ns, server, strings.Join(tried, "; "))
}

// queryIn sends one A query from inside ns and returns the answer and the local address
// the query left from.
func queryIn(ns, server, name string) (*mdns.Msg, netip.AddrPort, error) {
	conn, err := kernel.DialIn(ns, "udp", server, 2*time.Second)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	defer conn.Close()
	local, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.ExchangeWithConn(m, &mdns.Conn{Conn: conn})
	return r, local, err
}

// dnsBackend names the DNS pod that answered, from the conntrack entry of the query on
// the sender's node (kube-proxy's DNAT of kube-dns).
func dnsBackend(p *plan.Plan, object string, local netip.AddrPort, server string) string {
	node := nodeOf(p, object)
	if node == "" || !local.IsValid() {
		return ""
	}
	dst, err := netip.ParseAddrPort(server)
	if err != nil {
		return ""
	}
	h := kernel.NewHandles()
	defer h.Close()
	nodeNS := plan.NetnsName(p.Lab, node)
	f, ok := findFlow(h, nodeNS, func(f kernel.Flow) bool { return f.OrigSrc == local && f.OrigDst == dst })
	if !ok {
		return ""
	}
	pod := ""
	for _, po := range p.Pods {
		if plan.Addr(po.IP) == f.ReplySrc.Addr().String() {
			pod = po.Name + " "
		}
	}
	return fmt.Sprintf("; kube-proxy on %s: DNAT %s → %s%s", node, dst, pod, f.ReplySrc)
}
