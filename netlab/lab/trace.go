package lab

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
)

// Trace is one request followed through the lab, hop by hop.
type Trace struct {
	URL      string        `json:"url"`
	From     string        `json:"from"`
	Status   int           `json:"status"`
	Duration time.Duration `json:"durationNs"`
	Hops     []Hop         `json:"hops"`
}

// Hop is one place the request passed, what happened to it there, and how to watch it.
type Hop struct {
	Step      string   `json:"step"`      // client, load balancer, ingress, kube-proxy, network, pod
	Namespace string   `json:"namespace"` // where it happened
	Summary   string   `json:"summary"`
	Details   []string `json:"details,omitempty"`
	Watch     string   `json:"watch,omitempty"` // a command that shows this hop's packets
}

// TraceRequest sends one HTTP(S) request from a lab object's namespace (a client, by
// default the first) and reconstructs the path it took from what the lab recorded: the
// LB's and the node's conntrack entries (each NAT rewrite), the ingress's access log
// (matched rule, Service, upstream) and the pod's echo (who answered, whom it saw).
// Each hop is written by its own function, in the order a request crosses them.
func TraceRequest(ctx context.Context, labName, from, rawURL string) (*Trace, error) {
	t, err := newTracer(labName, from, rawURL)
	if err != nil {
		return nil, err
	}
	defer t.h.Close()
	if err := t.send(ctx); err != nil {
		return nil, err
	}
	t.clientHop()
	t.loadBalancerHop()
	t.ingressHop()
	if t.echo.Pod != "" && t.entryNS != "" {
		t.kubeProxyHop()
		t.networkHop()
	}
	t.answerHop()
	return t.tr, nil
}

// tracer is one traced request: where it starts, what came back, and what the hops found
// so far (the node the request entered the cluster on).
type tracer struct {
	labName string
	p       *plan.Plan
	u       *url.URL
	from    string
	fromNS  string
	host    string
	dst     netip.Addr
	target  netip.AddrPort
	reqID   string
	h       *kernel.Handles
	tr      *Trace

	// Filled by send.
	local netip.AddrPort
	resp  *http.Response
	body  []byte
	echo  podEcho

	// Filled by the hops: the node whose rules handled the request.
	entryNode string
	entryNS   string
}

// podEcho is the part of the pod's echo response a trace uses.
type podEcho struct {
	Pod, Node, PodIP, ClientIP string
	Port, ClientPort           int
}

func newTracer(labName, from, rawURL string) (*tracer, error) {
	p, err := LoadPlan(labName)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("trace needs an http:// or https:// URL, got %q", rawURL)
	}
	if from == "" {
		if len(p.Clients) == 0 {
			return nil, fmt.Errorf("lab %s has no client to trace from", labName)
		}
		from = p.Clients[0].Name
	}
	fromNS := plan.NetnsName(labName, from)
	if !kernel.NetnsExists(fromNS) {
		return nil, fmt.Errorf("lab %s has no object %q", labName, from)
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	dst, err := resolveInLab(p, fromNS, host)
	if err != nil {
		return nil, err
	}
	dstPort, _ := strconv.Atoi(port)
	return &tracer{
		labName: labName, p: p, u: u, from: from, fromNS: fromNS, host: host, dst: dst,
		target: netip.AddrPortFrom(dst, uint16(dstPort)),
		reqID:  "trace-" + randomHex(8),
		h:      kernel.NewHandles(),
		tr:     &Trace{URL: rawURL, From: from},
	}, nil
}

// send makes the request from the sender's namespace and reads the answer.
func (t *tracer) send(ctx context.Context) error {
	start := time.Now()
	conn, err := kernel.DialIn(t.fromNS, "tcp", t.target.String(), 3*time.Second)
	if err != nil {
		return fmt.Errorf("connect from %s to %s: %w", t.from, t.target, err)
	}
	defer conn.Close()
	t.local = netip.MustParseAddrPort(conn.LocalAddr().String())
	var rw net.Conn = conn
	if t.u.Scheme == "https" {
		pool := x509.NewCertPool()
		if pem, err := os.ReadFile(filepath.Join(Dir(t.labName), "ca", "ca.crt")); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		tc := tls.Client(conn, &tls.Config{ServerName: t.host, RootCAs: pool, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS with %s: %w", t.host, err)
		}
		rw = tc
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.tr.URL, nil)
	req.Header.Set("X-Request-ID", t.reqID)
	req.Header.Set("User-Agent", "netlab-trace")
	req.Close = true
	rw.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(rw); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(rw), req)
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	t.body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	t.resp = resp
	t.tr.Status, t.tr.Duration = resp.StatusCode, time.Since(start)
	_ = json.Unmarshal(t.body, &t.echo)
	return nil
}

// clientHop: the sender's own connection.
func (t *tracer) clientHop() {
	t.tr.Hops = append(t.tr.Hops, Hop{Step: "client", Namespace: t.fromNS,
		Summary: fmt.Sprintf("%s %s → %s %s %s", t.from, t.local, t.target, t.u.Scheme, t.host),
		Details: []string{fmt.Sprintf("X-Request-ID %s", t.reqID)},
		Watch:   fmt.Sprintf("ip netns exec %s tcpdump -ni %s host %s", t.fromNS, "eth0", t.dst)})
}

// loadBalancerHop: a DNAT from the VIP to a node, if the target is a VIP. It also decides
// which node the request entered the cluster on.
func (t *tracer) loadBalancerHop() {
	p := t.p
	entryNode := ""
	if vs, ok := findVIP(p, t.target); ok {
		hop := Hop{Step: "load balancer", Namespace: p.LB.Netns,
			Watch: fmt.Sprintf("ip netns exec %s tcpdump -ni any host %s", p.LB.Netns, t.local.Addr())}
		if f, ok := findFlow(t.h, p.LB.Netns, func(f kernel.Flow) bool { return f.OrigSrc == t.local && f.OrigDst == t.target }); ok {
			entry := f.ReplySrc
			entryNode = nodeByIP(p, entry.Addr())
			hop.Summary = fmt.Sprintf("virtual service %s (%s): DNAT %s → %s (%s)", vs.Name, vs.Scheduler, t.target, entry, entryNode)
			hop.Details = append(hop.Details, fmt.Sprintf("conntrack: %s → %s, reply from %s; the client's address is kept", f.OrigSrc, f.OrigDst, f.ReplySrc))
		} else {
			hop.Summary = fmt.Sprintf("virtual service %s (%s): no conntrack entry found", vs.Name, vs.Scheduler)
		}
		t.tr.Hops = append(t.tr.Hops, hop)
	} else if n := nodeByIP(p, t.target.Addr()); n != "" {
		entryNode = n
	} else {
		// From inside the cluster (a node, or a pod: its node) to a ClusterIP or a pod:
		// the sender's own node holds the NAT.
		entryNode = nodeOf(p, t.from)
	}
	t.setEntry(entryNode)
}

func (t *tracer) setEntry(node string) {
	t.entryNode, t.entryNS = node, ""
	for _, n := range t.p.Nodes {
		if n.Name == node {
			t.entryNS = n.Netns
		}
	}
}

// ingressHop: the ingress's access-log line for this request id.
func (t *tracer) ingressHop() {
	line, node, ok := ingressLogLine(t.labName, t.p, t.reqID)
	if !ok {
		return
	}
	t.tr.Hops = append(t.tr.Hops, Hop{Step: "ingress", Namespace: plan.NetnsName(t.labName, node),
		Summary: fmt.Sprintf("ingress on %s: %s %s%s matched %s → Service %s (upstream %s), %d in %.1f ms",
			node, line.Method, line.Host, line.Path, orNone(line.Rule), orNone(line.Service), orNone(line.Upstream), line.Status, line.DurationMs),
		Details: []string{fmt.Sprintf("the ingress saw client %s; it opens its own connection to the Service", line.Client)},
		Watch:   fmt.Sprintf("netlab logs ingress %s", node)})
	t.entryNode = node
	t.entryNS = plan.NetnsName(t.labName, node)
}

// kubeProxyHop: the entry node's conntrack entry whose reply comes from the pod to the
// address the pod saw as its client. Its original destination is the ClusterIP or NodePort.
func (t *tracer) kubeProxyHop() {
	p, echo := t.p, t.echo
	podAP := netip.AddrPortFrom(mustAddr(echo.PodIP), uint16(echo.Port))
	seen := netip.AddrPortFrom(mustAddr(echo.ClientIP), uint16(echo.ClientPort))
	hop := Hop{Step: "kube-proxy", Namespace: t.entryNS,
		Watch: fmt.Sprintf("netlab rules %s", t.entryNode)}
	if f, ok := findFlow(t.h, t.entryNS, func(f kernel.Flow) bool { return f.ReplySrc == podAP && f.ReplyDst == seen }); ok {
		svc, sp := serviceFor(p, f.OrigDst, t.entryNode)
		hop.Summary = fmt.Sprintf("on %s: DNAT %s → %s (pod %s)", t.entryNode, f.OrigDst, podAP, echo.Pod)
		if svc != nil {
			spn := svc.Namespace + "/" + svc.Name
			if sp.Name != "" {
				spn += ":" + sp.Name
			}
			hop.Summary = fmt.Sprintf("on %s: Service %s %s: DNAT %s → %s (pod %s)", t.entryNode, spn, svcKind(svc, f.OrigDst), f.OrigDst, podAP, echo.Pod)
			hop.Details = append(hop.Details, kubeProxyRulePath(p, t.entryNode, f, svc, spn, sp.Protocol, podAP))
		}
		if f.OrigSrc != f.ReplyDst {
			hop.Details = append(hop.Details, fmt.Sprintf("masqueraded: source %s → %s (%s)", f.OrigSrc, f.ReplyDst, masqChains(p)))
		} else {
			hop.Details = append(hop.Details, fmt.Sprintf("source %s kept (no masquerade)", f.OrigSrc))
		}
	} else {
		hop.Summary = fmt.Sprintf("on %s: no conntrack entry from %s to %s found", t.entryNode, podAP, seen)
	}
	t.tr.Hops = append(t.tr.Hops, hop)
}

// networkHop: how the packet got from the entry node to the pod's node: bridged on cni0,
// routed (host-gw) or encapsulated (vxlan) across the fabric.
func (t *tracer) networkHop() {
	echo := t.echo
	if echo.Node == t.entryNode {
		t.tr.Hops = append(t.tr.Hops, Hop{Step: "network", Namespace: t.entryNS,
			Summary: fmt.Sprintf("pod %s is on %s itself: bridged on cni0", echo.Pod, t.entryNode),
			Watch:   fmt.Sprintf("ip netns exec %s tcpdump -ni cni0 host %s", t.entryNS, echo.PodIP)})
		return
	}
	via, watch := "", fmt.Sprintf("ip netns exec %s tcpdump -ni eth0 host %s", t.entryNS, echo.PodIP)
	for _, n := range t.p.Nodes {
		if n.Name != echo.Node {
			continue
		}
		if v := n.VTEP; v != nil {
			via = fmt.Sprintf("route %s via %s dev %s onlink (vxlan: VNI %d in UDP %d to %s)",
				n.PodCIDR, plan.Addr(v.Addr), v.Dev, v.VNI, v.Port, plan.Addr(n.IP))
			watch = fmt.Sprintf("ip netns exec %s tcpdump -ni eth0 udp port %d", t.entryNS, v.Port)
		} else {
			via = fmt.Sprintf("route %s via %s (host-gw)", n.PodCIDR, plan.Addr(n.IP))
		}
	}
	t.tr.Hops = append(t.tr.Hops, Hop{Step: "network", Namespace: t.entryNS,
		Summary: fmt.Sprintf("%s → %s across the fabric: %s, then cni0 on %s", t.entryNode, echo.Node, via, echo.Node),
		Watch:   watch})
}

// answerHop: the pod that answered and whom it saw, or what answered when no pod did.
func (t *tracer) answerHop() {
	echo := t.echo
	if echo.Pod == "" {
		t.tr.Hops = append(t.tr.Hops, Hop{Step: "answer", Namespace: t.entryNS,
			Summary: fmt.Sprintf("%s, not from a pod: %s", t.resp.Status, firstLine(t.body))})
		return
	}
	ns := plan.NetnsName(t.labName, echo.Pod)
	t.tr.Hops = append(t.tr.Hops, Hop{Step: "pod", Namespace: ns,
		Summary: fmt.Sprintf("pod %s on %s (%s:%d) answered %d; it saw client %s:%d", echo.Pod, echo.Node, echo.PodIP, echo.Port, t.resp.StatusCode, echo.ClientIP, echo.ClientPort),
		Watch:   fmt.Sprintf("ip netns exec %s tcpdump -ni eth0 port %d", ns, echo.Port)})
}

// resolveInLab turns a host into an address as the tracing namespace would: an IP as is,
// else the namespace's /etc/netns hosts file (Ingress hosts → the ingress VIP).
func resolveInLab(p *plan.Plan, ns, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	if b, err := os.ReadFile(filepath.Join(EtcNetns, ns, "hosts")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			for _, name := range f[min(1, len(f)):] {
				if strings.EqualFold(name, host) {
					if a, err := netip.ParseAddr(f[0]); err == nil {
						return a, nil
					}
				}
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("%s does not resolve in %s (Ingress hosts resolve to the VIP %s in clients)", host, ns, p.LB.VIP)
}

func findVIP(p *plan.Plan, ap netip.AddrPort) (plan.VirtualServ, bool) {
	for _, vs := range p.LB.VIPs {
		if vs.IP == ap.Addr().String() && int(vs.Port) == int(ap.Port()) {
			return vs, true
		}
	}
	return plan.VirtualServ{}, false
}

// nodeOf is the node an object lives on: a node itself, or a pod's node.
func nodeOf(p *plan.Plan, object string) string {
	for _, n := range p.Nodes {
		if n.Name == object {
			return n.Name
		}
	}
	for _, pod := range p.Pods {
		if pod.Name == object {
			return pod.Node
		}
	}
	return ""
}

func nodeByIP(p *plan.Plan, a netip.Addr) string {
	for _, n := range p.Nodes {
		if plan.Addr(n.IP) == a.String() {
			return n.Name
		}
	}
	return ""
}

// findFlow looks for a conntrack entry, a few times: the kernel may still be writing it.
func findFlow(h *kernel.Handles, ns string, match func(kernel.Flow) bool) (kernel.Flow, bool) {
	for i := 0; i < 3; i++ {
		flows, err := h.Flows(ns)
		if err != nil {
			return kernel.Flow{}, false
		}
		for _, f := range flows {
			if match(f) {
				return f, true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return kernel.Flow{}, false
}

type accessLine struct {
	RequestID  string  `json:"requestID"`
	Client     string  `json:"client"`
	Method     string  `json:"method"`
	Host       string  `json:"host"`
	Path       string  `json:"path"`
	Rule       string  `json:"rule"`
	Service    string  `json:"service"`
	Upstream   string  `json:"upstream"`
	Status     int     `json:"status"`
	DurationMs float64 `json:"durationMs"`
	Node       string  `json:"node"`
}

// ingressLogLine finds the access-log line of a request id in the nodes' ingress logs.
func ingressLogLine(labName string, p *plan.Plan, id string) (accessLine, string, bool) {
	for try := 0; try < 5; try++ {
		for _, n := range p.Nodes {
			f, err := os.Open(LogPath(labName, "ingress", n.Name))
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if !strings.Contains(sc.Text(), id) {
					continue
				}
				var l accessLine
				if json.Unmarshal(sc.Bytes(), &l) == nil && l.RequestID == id {
					f.Close()
					return l, n.Name, true
				}
			}
			f.Close()
		}
		time.Sleep(20 * time.Millisecond) // the access log is written after the response
	}
	return accessLine{}, "", false
}

// serviceFor finds the Service port an address belongs to: a ClusterIP, a NodePort on the
// node, or a LoadBalancer/external IP.
func serviceFor(p *plan.Plan, dst netip.AddrPort, node string) (*plan.Service, plan.ServicePort) {
	for i := range p.Services {
		s := &p.Services[i]
		for _, sp := range s.Ports {
			switch {
			case s.ClusterIP == dst.Addr().String() && int(sp.Port) == int(dst.Port()):
				return s, sp
			case sp.NodePort != 0 && int(sp.NodePort) == int(dst.Port()) && nodeByIP(p, dst.Addr()) != "":
				return s, sp
			case s.LoadBalancerIP == dst.Addr().String() && int(sp.Port) == int(dst.Port()):
				return s, sp
			}
		}
	}
	return nil, plan.ServicePort{}
}

// chainPath is the way kube-proxy's rules take a packet to an endpoint, by chain name.
func chainPath(s *plan.Service, spn, proto, kind, endpoint string) []string {
	path := []string{kubeproxy.ChainServices}
	local := s.InternalTrafficLocal
	if kind != "cluster IP" {
		if kind == "node port" {
			path = append(path, kubeproxy.ChainNodePorts)
		}
		path = append(path, kubeproxy.EXTChain(spn, proto))
		local = s.ExternalTrafficLocal
	}
	if local {
		path = append(path, kubeproxy.SVLChain(spn, proto))
	} else {
		path = append(path, kubeproxy.SVCChain(spn, proto))
	}
	return append(path, kubeproxy.SEPChain(spn, proto, endpoint))
}

func svcKind(s *plan.Service, dst netip.AddrPort) string {
	if s.ClusterIP == dst.Addr().String() {
		return "cluster IP"
	}
	if s.LoadBalancerIP == dst.Addr().String() {
		return "load balancer IP"
	}
	return "node port"
}

func mustAddr(s string) netip.Addr {
	a, _ := netip.ParseAddr(s)
	return a
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
