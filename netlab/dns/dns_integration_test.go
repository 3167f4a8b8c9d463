// Integration tests of the cluster DNS: a real lab, its DNS pods behind kube-dns, queries
// from pods of two Kubernetes namespaces over UDP and TCP. Root.
//
// Address plan (scenario below, unique lab name per test):
//
//	wan 203.0.113.0/24      client .2, lb .1, ingress VIP .100 (app.example)
//	fabric 172.18.0.0/24    node-1 .11, node-2 .12
//	pods 10.244.0.0/16      api-1, api-2 (default), cart-1 (shop), coredns-1, coredns-2
//	                        (kube-system): one DNS pod on each node
//	services 10.96.0.0/12   kube-dns .10 (53/UDP dns, 53/TCP dns-tcp), api .11 (http 80),
//	                        cart .12 (shop, 80), cart-hl (shop, headless, no ports; cart's
//	                        pod has hostname cart0, subdomain cart-hl), api-pods (headless,
//	                        http), api-peers (headless, no ports), search (ExternalName
//	                        search.example.com); cluster domain cluster.local
package dns_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// hang bounds a query that should be answered: long enough that a stalled machine does not
// fail a healthy lab (a resolver retries too: glibc waits 5 s, twice), so a query that
// reaches no server is the only way to run into it.
const hang = 10 * time.Second

// query asks the server at addr (ip:port) from inside ns over network (udp or tcp).
func query(ns, network, addr, name string, qtype uint16) (*mdns.Msg, error) {
	return queryWithin(hang, ns, network, addr, name, qtype)
}

// queryWithin is query with its own bound: for a query that should get no answer.
func queryWithin(timeout time.Duration, ns, network, addr, name string, qtype uint16) (*mdns.Msg, error) {
	conn, err := kernel.DialIn(ns, network, addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: network, Timeout: timeout}
	r, _, err := c.ExchangeWithConn(m, &mdns.Conn{Conn: conn})
	return r, err
}

// exchange sends m over UDP from inside ns to addr.
func exchange(ns, addr string, m *mdns.Msg) (*mdns.Msg, error) {
	conn, err := kernel.DialIn(ns, "udp", addr, hang)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c := &mdns.Client{Net: "udp", Timeout: hang}
	r, _, err := c.ExchangeWithConn(m, &mdns.Conn{Conn: conn})
	return r, err
}

// rrs renders a section without TTLs, sorted.
func rrs(section []mdns.RR) string {
	var out []string
	for _, rr := range section {
		f := strings.Fields(rr.String())
		out = append(out, strings.Join(append(f[:1:1], f[3:]...), " "))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

func podsByName(p *plan.Plan) map[string]plan.Pod {
	m := map[string]plan.Pod{}
	for _, pod := range p.Pods {
		m[pod.Name] = pod
	}
	return m
}

func clusterIP(p *plan.Plan, ns, name string) string {
	for _, s := range p.Services {
		if s.Namespace == ns && s.Name == name {
			return s.ClusterIP
		}
	}
	return ""
}

func TestIntegrationClusterDNS(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "dns", labtest.Fixture(t, "dns.yaml"))
	pods := podsByName(p)
	if pods["coredns-1"].Node == pods["coredns-2"].Node {
		t.Errorf("both DNS pods on %s", pods["coredns-1"].Node)
	}
	dnsIP := clusterIP(p, "kube-system", "kube-dns")
	if dnsIP != "10.96.0.10" {
		t.Fatalf("kube-dns ClusterIP %s, want 10.96.0.10", dnsIP)
	}
	server := net.JoinHostPort(dnsIP, "53")
	api, cart := clusterIP(p, "default", "api"), clusterIP(p, "shop", "cart")
	a1, a2 := plan.Addr(pods["api-1"].IP), plan.Addr(pods["api-2"].IP)
	c1 := plan.Addr(pods["cart-1"].IP)
	rev := func(ip string) string { r, _ := mdns.ReverseAddr(ip); return r }
	dash := func(ip string) string { return strings.ReplaceAll(ip, ".", "-") }

	type want struct {
		rcode  int
		answer string
	}
	cases := []struct {
		name  string
		qtype uint16
		want  want
	}{
		{"api.default.svc.cluster.local.", mdns.TypeA, want{0, "api.default.svc.cluster.local. A " + api}},
		{"CART.shop.svc.cluster.local.", mdns.TypeA, want{0, "CART.shop.svc.cluster.local. A " + cart}},
		{"_http._tcp.api.default.svc.cluster.local.", mdns.TypeSRV, want{0,
			"_http._tcp.api.default.svc.cluster.local. SRV 0 100 80 api.default.svc.cluster.local."}},
		{"_dns._udp.kube-dns.kube-system.svc.cluster.local.", mdns.TypeSRV, want{0,
			"_dns._udp.kube-dns.kube-system.svc.cluster.local. SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."}},
		{"api-pods.default.svc.cluster.local.", mdns.TypeA, want{0,
			rrs([]mdns.RR{mustRR(t, "api-pods.default.svc.cluster.local. 5 IN A "+a1), mustRR(t, "api-pods.default.svc.cluster.local. 5 IN A "+a2)})}},
		{"_http._tcp.api-pods.default.svc.cluster.local.", mdns.TypeSRV, want{0, rrs([]mdns.RR{
			mustRR(t, "_http._tcp.api-pods.default.svc.cluster.local. 5 IN SRV 0 50 8080 "+dash(a1)+".api-pods.default.svc.cluster.local."),
			mustRR(t, "_http._tcp.api-pods.default.svc.cluster.local. 5 IN SRV 0 50 8080 "+dash(a2)+".api-pods.default.svc.cluster.local.")})}},
		{dash(a1) + ".api-pods.default.svc.cluster.local.", mdns.TypeA, want{0, dash(a1) + ".api-pods.default.svc.cluster.local. A " + a1}},
		// A headless Service without ports: A records per ready pod, no SRV.
		{"api-peers.default.svc.cluster.local.", mdns.TypeA, want{0,
			rrs([]mdns.RR{mustRR(t, "api-peers.default.svc.cluster.local. 5 IN A "+a1), mustRR(t, "api-peers.default.svc.cluster.local. 5 IN A "+a2)})}},
		{dash(a2) + ".api-peers.default.svc.cluster.local.", mdns.TypeA, want{0, dash(a2) + ".api-peers.default.svc.cluster.local. A " + a2}},
		{"api-peers.default.svc.cluster.local.", mdns.TypeSRV, want{0, ""}},
		// hostname + subdomain name the endpoint, its A and PTR records.
		{"cart0.cart-hl.shop.svc.cluster.local.", mdns.TypeA, want{0, "cart0.cart-hl.shop.svc.cluster.local. A " + c1}},
		// ... and a PTR for the ClusterIP Service cart too (as CoreDNS names every
		// Service's ready endpoints).
		{rev(c1), mdns.TypePTR, want{0, rev(c1) + " PTR " + dash(c1) + ".cart.shop.svc.cluster.local.; " +
			rev(c1) + " PTR cart0.cart-hl.shop.svc.cluster.local."}},
		{dash(c1) + ".cart.shop.svc.cluster.local.", mdns.TypeA, want{0, dash(c1) + ".cart.shop.svc.cluster.local. A " + c1}},
		// An address behind two headless Services and a ClusterIP one: a PTR for each.
		{rev(a1), mdns.TypePTR, want{0, rev(a1) + " PTR " + dash(a1) + ".api-peers.default.svc.cluster.local.; " +
			rev(a1) + " PTR " + dash(a1) + ".api-pods.default.svc.cluster.local.; " +
			rev(a1) + " PTR " + dash(a1) + ".api.default.svc.cluster.local."}},
		// SRV at a Service's own name: one record per port.
		{"api.default.svc.cluster.local.", mdns.TypeSRV, want{0, "api.default.svc.cluster.local. SRV 0 100 80 api.default.svc.cluster.local."}},
		{dash(a2) + ".default.pod.cluster.local.", mdns.TypeA, want{0, dash(a2) + ".default.pod.cluster.local. A " + a2}},
		{"search.default.svc.cluster.local.", mdns.TypeA, want{0, "search.default.svc.cluster.local. CNAME search.example.com."}},
		{"dns-version.cluster.local.", mdns.TypeTXT, want{0, `dns-version.cluster.local. TXT "1.1.0"`}},
		{"kube-public.svc.cluster.local.", mdns.TypeA, want{0, ""}},
		{"default.pod.cluster.local.", mdns.TypeA, want{0, ""}},
		{"99.0.96.10.in-addr.arpa.", mdns.TypePTR, want{mdns.RcodeNameError, ""}},
		{"nope.default.svc.cluster.local.", mdns.TypeA, want{mdns.RcodeNameError, ""}},
		{"example.com.", mdns.TypeA, want{mdns.RcodeRefused, ""}},
	}
	if rev, err := mdns.ReverseAddr(api); err == nil {
		cases = append(cases, struct {
			name  string
			qtype uint16
			want  want
		}{rev, mdns.TypePTR, want{0, rev + " PTR api.default.svc.cluster.local."}})
	}
	// From a pod of each namespace, through the kube-dns ClusterIP, over both transports.
	for _, from := range []string{"api-1", "cart-1"} {
		ns := pods[from].Netns
		for _, network := range []string{"udp", "tcp"} {
			for _, c := range cases {
				r, err := query(ns, network, server, c.name, c.qtype)
				if err != nil {
					t.Errorf("%s %s %s %s: %v", from, network, c.name, mdns.TypeToString[c.qtype], err)
					continue
				}
				if r.Rcode != c.want.rcode || rrs(r.Answer) != c.want.answer {
					t.Errorf("%s %s %s %s: %s [%s], want %s [%s]", from, network, c.name, mdns.TypeToString[c.qtype],
						mdns.RcodeToString[r.Rcode], rrs(r.Answer), mdns.RcodeToString[c.want.rcode], c.want.answer)
				}
				// Inside the cluster domain and the reverse zone: authoritative, and a
				// negative answer carries the zone's SOA.
				if c.want.rcode != mdns.RcodeRefused && (!r.Authoritative || (len(r.Answer) == 0) != (len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == mdns.TypeSOA)) {
					t.Errorf("%s %s %s %s: aa %v, authority %v", from, network, c.name, mdns.TypeToString[c.qtype], r.Authoritative, r.Ns)
				}
			}
		}
	}

	// Protocol corner cases over UDP: a query cut short gets FORMERR with its id, an EDNS
	// version other than 0 BADVERS, a zone transfer REFUSED. The cut query is its header and
	// part of the first label.
	q := new(mdns.Msg)
	q.SetQuestion("api.default.svc.cluster.local.", mdns.TypeA)
	q.Id = 4711
	b, _ := q.Pack()
	if conn, err := kernel.DialIn(pods["api-1"].Netns, "udp", server, hang); err != nil {
		t.Error(err)
	} else {
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(hang))
		buf := make([]byte, 512)
		r := new(mdns.Msg)
		if _, err := conn.Write(b[:20]); err != nil {
			t.Error(err)
		} else if n, err := conn.Read(buf); err != nil || r.Unpack(buf[:n]) != nil || r.Id != 4711 || r.Rcode != mdns.RcodeFormatError {
			t.Errorf("a query cut short: %v %v, want FORMERR with id 4711", r, err)
		}
	}
	q.SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	if r, err := exchange(pods["api-1"].Netns, server, q); err != nil || r.Rcode != mdns.RcodeBadVers {
		t.Errorf("EDNS version 1: %v %v, want BADVERS", r, err)
	}
	if r, err := query(pods["api-1"].Netns, "tcp", server, "cluster.local.", mdns.TypeAXFR); err != nil || r.Rcode != mdns.RcodeRefused {
		t.Errorf("AXFR: %v %v, want REFUSED", r, err)
	}

	// The resolver of pods and nodes: short names through the search path.
	for _, tc := range []struct{ object, want string }{
		{"api-1", "nameserver 10.96.0.10\noptions ndots:5"},
		{"cart-1", "search shop.svc.cluster.local svc.cluster.local cluster.local"},
		{"node-1", "search svc.cluster.local cluster.local"},
	} {
		b, err := os.ReadFile(filepath.Join(rundir.EtcNetns, plan.NetnsName(p.Lab, tc.object), "resolv.conf"))
		if err != nil || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s resolv.conf %q (%v), want it to hold %q", tc.object, b, err, tc.want)
		}
	}
	netnsExec := func(object string, args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", plan.NetnsName(p.Lab, object)}, args...)...).CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct{ from, url, wantPod string }{
		{"api-1", "http://api/", "api-"},
		{"cart-1", "http://cart/", "cart-1"},
		{"cart-1", "http://api.default/", "api-"},
	} {
		out, err := netnsExec(tc.from, "curl", "-sS", "-m", "5", tc.url)
		if err != nil || !strings.Contains(out, `"pod": "`+tc.wantPod) {
			t.Errorf("%s: curl %s: %v\n%s", tc.from, tc.url, err, out)
		}
	}
	if out, err := netnsExec("node-1", "getent", "hosts", "cart.shop"); err != nil || !strings.HasPrefix(out, cart+" ") {
		t.Errorf("node-1: getent hosts cart.shop: %q %v, want %s", out, err, cart)
	}
	// A client stands for the internet: Ingress hosts resolve, cluster names do not, and
	// it cannot reach kube-dns.
	if out, err := netnsExec("client", "getent", "hosts", "app.example"); err != nil || !strings.HasPrefix(out, p.LB.VIP+" ") {
		t.Errorf("client: getent hosts app.example: %q %v, want the VIP %s", out, err, p.LB.VIP)
	}
	if out, err := netnsExec("client", "getent", "hosts", "api.default.svc.cluster.local"); err == nil {
		t.Errorf("client resolved a cluster name: %q", out)
	}
	// (no answer is expected: a short bound keeps the test short; an answer fails it whenever it comes)
	if r, err := queryWithin(2*time.Second, p.Clients[0].Netns, "udp", server, "api.default.svc.cluster.local.", mdns.TypeA); err == nil {
		t.Errorf("client got an answer from kube-dns: %v", r)
	}

	// status shows the DNS pods, kube-dns, the headless Service's ready pods and the CNAME.
	st, err := lab.GetStatus(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, ps := range st.Pods {
		if ps.Name == "coredns-1" || ps.Name == "coredns-2" {
			seen[ps.Name] = fmt.Sprint(ps.Ready)
		}
	}
	for _, ss := range st.Services {
		ready := 0
		for _, e := range ss.Endpoints {
			if e.Ready {
				ready++
			}
		}
		seen[ss.Namespace+"/"+ss.Name] = fmt.Sprintf("%s %s %d", ss.ClusterIP, ss.ExternalName, ready)
	}
	for k, v := range map[string]string{"coredns-1": "true", "coredns-2": "true", "kube-system/kube-dns": "10.96.0.10  4",
		"default/api-pods": "None  2", "default/api-peers": "None  2", "default/search": " search.example.com 0"} {
		if seen[k] != v {
			t.Errorf("status %s: %q, want %q", k, seen[k], v)
		}
	}

	// trace from a pod by short name: the DNS query and its answer come first.
	tr, err := lab.TraceRequest(context.Background(), p.Lab, "cart-1", "http://api.default/")
	if err != nil {
		t.Fatalf("trace: %v", err)
	}
	if h := tr.Hops[0]; h.Component != "dns" || h.Step != 1 || !strings.Contains(h.Summary, "A? api.default.svc.cluster.local. → "+api) ||
		!strings.Contains(h.Summary, "DNAT "+server+" → coredns-") {
		t.Errorf("trace's first hop: %+v, want the DNS query of api.default answered %s by a coredns pod", h, api)
	}
	if tr.Status != 200 {
		t.Errorf("trace status %d", tr.Status)
	}

	// Answers follow endpoints: api-2 killed leaves the headless Service's records.
	if _, err := lab.KillPod(p.Lab, "api-2"); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"api-pods", "api-peers"} {
		name := svc + ".default.svc.cluster.local."
		var last string
		waitFor(t, "api-2 to leave "+svc+" (last answer: "+"%s)", func() bool {
			r, err := query(pods["cart-1"].Netns, "udp", server, name, mdns.TypeA)
			if err != nil {
				last = err.Error()
				return false
			}
			last = rrs(r.Answer)
			return last == name+" A "+a1
		}, &last)
	}

	// One DNS pod killed: once its endpoint is gone, every query still succeeds.
	if _, err := lab.KillPod(p.Lab, "coredns-1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "coredns-1's endpoint to be removed", func() bool {
		ef, err := rundir.ForLab(p.Lab).ReadEndpoints()
		if err != nil {
			return false
		}
		ready := 0
		for _, sp := range ef.Ports {
			if sp.Namespace == "kube-system" && sp.Name == "kube-dns" {
				for _, ep := range sp.Endpoints {
					if ep.Ready {
						ready++
					}
					if ep.Ready && ep.Pod == "coredns-1" {
						return false
					}
				}
			}
		}
		return ready == 2 // coredns-2's UDP and TCP endpoints
	}, nil)
	// The endpoints file is written before the nodes apply it: wait for the rules too,
	// and for every node to report that generation (kube-proxy reports it once the UDP
	// conntrack entries that led to coredns-1 are deleted as well: a query from a reused
	// source port would otherwise still follow one).
	waitFor(t, "the nodes to program kube-dns without coredns-1", func() bool {
		for _, n := range p.Nodes {
			out, err := labtest.Exec(n.Netns, "iptables-save", "-t", "nat")
			if err != nil || strings.Contains(out, plan.Addr(pods["coredns-1"].IP)+":53") {
				return false
			}
		}
		return true
	}, nil)
	labtest.WaitSynced(t, p)
	for i := 0; i < 20; i++ {
		network := []string{"udp", "tcp"}[i%2]
		r, err := query(pods["api-1"].Netns, network, server, "cart.shop.svc.cluster.local.", mdns.TypeA)
		if err != nil || r.Rcode != 0 || rrs(r.Answer) != "cart.shop.svc.cluster.local. A "+cart {
			t.Errorf("query %d (%s) with one DNS pod down: %v %v", i, network, r, err)
		}
	}

	// down removes the resolver files with the rest.
	if err := lab.Down(p.Lab, nil); err != nil {
		t.Fatal(err)
	}
	for _, object := range []string{"api-1", "node-1", "client"} {
		if _, err := os.Stat(filepath.Join(rundir.EtcNetns, plan.NetnsName(p.Lab, object))); !os.IsNotExist(err) {
			t.Errorf("/etc/netns of %s left after down: %v", object, err)
		}
	}
}

func TestIntegrationDNSDisabled(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "nodns", `apiVersion: netlab.dev/v1alpha1
kind: Lab
spec: {nodes: 1, dns: {enabled: false}}
---
`+strings.SplitN(labtest.Fixture(t, "dns.yaml"), "---", 2)[0])
	if p.DNS != nil {
		t.Errorf("plan has a cluster DNS: %+v", p.DNS)
	}
	for _, pod := range p.Pods {
		if pod.Namespace == "kube-system" {
			t.Errorf("pod %s/%s", pod.Namespace, pod.Name)
		}
		noClusterResolver(t, pod.Netns)
	}
	for _, s := range p.Services {
		if s.Name == "kube-dns" {
			t.Errorf("Service %s/%s", s.Namespace, s.Name)
		}
	}
	if left, _ := kernel.ListNetns(plan.NetnsName(p.Lab, "coredns")); len(left) > 0 {
		t.Errorf("DNS pod namespaces: %v", left)
	}
	noClusterResolver(t, p.Nodes[0].Netns)
}

// noClusterResolver checks that a pod or node of a lab without cluster DNS asks its own
// loopback, not the host's resolver (an address outside the lab): a lookup fails at once.
func noClusterResolver(t *testing.T, netns string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rundir.EtcNetns, netns, "resolv.conf"))
	if err != nil {
		t.Errorf("%s: %v", netns, err)
		return
	}
	var servers []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "nameserver" {
			servers = append(servers, f[1])
		}
	}
	if len(servers) != 1 || servers[0] != "127.0.0.1" {
		t.Errorf("%s's resolv.conf names %v, want only 127.0.0.1:\n%s", netns, servers, b)
	}
}

func mustRR(t *testing.T, s string) mdns.RR {
	t.Helper()
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// waitFor polls cond until it holds, failing the test after 20 s (a bound on a wait,
// not a timed assertion). what may hold a %s for *last, what cond last saw.
func waitFor(t *testing.T, what string, cond func() bool, last *string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			if last != nil {
				what = fmt.Sprintf(what, *last)
			}
			t.Fatalf("gave up waiting 20 s for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
