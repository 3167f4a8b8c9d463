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
	"github.com/netlabdev/netlab/netlab/rundir"
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
func TraceRequest(ctx context.Context, labName, from, rawURL string) (*Trace, error) {
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
	target := netip.AddrPortFrom(dst, uint16(dstPort))

	tr := &Trace{URL: rawURL, From: from}
	reqID := "trace-" + randomHex(8)
	start := time.Now()
	conn, err := kernel.DialIn(fromNS, "tcp", target.String(), 3*time.Second)
	if err != nil {
		return nil, fmt.Errorf("connect from %s to %s: %w", from, target, err)
	}
	defer conn.Close()
	local := netip.MustParseAddrPort(conn.LocalAddr().String())
	var rw net.Conn = conn
	if u.Scheme == "https" {
		pool := x509.NewCertPool()
		if pem, err := os.ReadFile(rundir.ForLab(labName).CACert()); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: pool, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS with %s: %w", host, err)
		}
		rw = tc
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	req.Header.Set("X-Request-ID", reqID)
	req.Header.Set("User-Agent", "netlab-trace")
	req.Close = true
	rw.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(rw); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(rw), req)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	tr.Status, tr.Duration = resp.StatusCode, time.Since(start)

	var echo struct {
		Pod, Node, PodIP, ClientIP string
		Port, ClientPort           int
	}
	_ = json.Unmarshal(body, &echo)

	h := kernel.NewHandles()
	defer h.Close()
	fromIface := "eth0"
	tr.Hops = append(tr.Hops, Hop{Step: "client", Namespace: fromNS,
		Summary: fmt.Sprintf("%s %s → %s %s %s", from, local, target, u.Scheme, host),
		Details: []string{fmt.Sprintf("X-Request-ID %s", reqID)},
		Watch:   fmt.Sprintf("ip netns exec %s tcpdump -ni %s host %s", fromNS, fromIface, dst)})

	// The load balancer: a DNAT from the VIP to a node, if the target is a VIP.
	entry := target
	entryNode := ""
	if vs, ok := findVIP(p, target); ok {
		hop := Hop{Step: "load balancer", Namespace: p.LB.Netns,
			Watch: fmt.Sprintf("ip netns exec %s tcpdump -ni any host %s", p.LB.Netns, local.Addr())}
		if f, ok := findFlow(h, p.LB.Netns, func(f kernel.Flow) bool { return f.OrigSrc == local && f.OrigDst == target }); ok {
			entry = f.ReplySrc
			entryNode = nodeByIP(p, entry.Addr())
			hop.Summary = fmt.Sprintf("virtual service %s (%s): DNAT %s → %s (%s)", vs.Name, vs.Scheduler, target, entry, entryNode)
			hop.Details = append(hop.Details, fmt.Sprintf("conntrack: %s → %s, reply from %s; the client's address is kept", f.OrigSrc, f.OrigDst, f.ReplySrc))
		} else {
			hop.Summary = fmt.Sprintf("virtual service %s (%s): no conntrack entry found", vs.Name, vs.Scheduler)
		}
		tr.Hops = append(tr.Hops, hop)
	} else if n := nodeByIP(p, target.Addr()); n != "" {
		entryNode = n
	} else {
		// From inside the cluster (a node, or a pod: its node) to a ClusterIP or a pod:
		// the sender's own node holds the NAT.
		entryNode = nodeOf(p, from)
	}
	var entryNS string
	for _, n := range p.Nodes {
		if n.Name == entryNode {
			entryNS = n.Netns
		}
	}

	// The ingress: its access log line for this request id.
	if line, node, ok := ingressLogLine(labName, p, reqID); ok {
		hop := Hop{Step: "ingress", Namespace: plan.NetnsName(labName, node),
			Summary: fmt.Sprintf("ingress on %s: %s %s%s matched %s → Service %s (upstream %s), %d in %.1f ms",
				node, line.Method, line.Host, line.Path, orNone(line.Rule), orNone(line.Service), orNone(line.Upstream), line.Status, line.DurationMs),
			Details: []string{fmt.Sprintf("the ingress saw client %s; it opens its own connection to the Service", line.Client)},
			Watch:   fmt.Sprintf("netlab logs ingress %s", node)}
		tr.Hops = append(tr.Hops, hop)
		entryNode = node
		entryNS = plan.NetnsName(labName, node)
	}

	// kube-proxy: the node's conntrack entry whose reply comes from the pod to the address
	// the pod saw as its client. Its original destination is the ClusterIP or NodePort.
	if echo.Pod != "" && entryNS != "" {
		podAP := netip.AddrPortFrom(mustAddr(echo.PodIP), uint16(echo.Port))
		seen := netip.AddrPortFrom(mustAddr(echo.ClientIP), uint16(echo.ClientPort))
		hop := Hop{Step: "kube-proxy", Namespace: entryNS,
			Watch: fmt.Sprintf("netlab rules %s", entryNode)}
		if f, ok := findFlow(h, entryNS, func(f kernel.Flow) bool { return f.ReplySrc == podAP && f.ReplyDst == seen }); ok {
			svc, sp := serviceFor(p, f.OrigDst, entryNode)
			hop.Summary = fmt.Sprintf("on %s: DNAT %s → %s (pod %s)", entryNode, f.OrigDst, podAP, echo.Pod)
			if svc != nil {
				spn := svc.Namespace + "/" + svc.Name
				if sp.Name != "" {
					spn += ":" + sp.Name
				}
				hop.Summary = fmt.Sprintf("on %s: Service %s %s: DNAT %s → %s (pod %s)", entryNode, spn, svcKind(svc, f.OrigDst), f.OrigDst, podAP, echo.Pod)
				hop.Details = append(hop.Details, "iptables: "+strings.Join(chainPath(svc, spn, sp.Protocol, svcKind(svc, f.OrigDst), podAP.String()), " → "))
			}
			if f.OrigSrc != f.ReplyDst {
				hop.Details = append(hop.Details, fmt.Sprintf("masqueraded: source %s → %s (KUBE-MARK-MASQ, KUBE-POSTROUTING)", f.OrigSrc, f.ReplyDst))
			} else {
				hop.Details = append(hop.Details, fmt.Sprintf("source %s kept (no masquerade)", f.OrigSrc))
			}
		} else {
			hop.Summary = fmt.Sprintf("on %s: no conntrack entry from %s to %s found", entryNode, podAP, seen)
		}
		tr.Hops = append(tr.Hops, hop)

		if echo.Node != entryNode {
			via, watch := "", fmt.Sprintf("ip netns exec %s tcpdump -ni eth0 host %s", entryNS, echo.PodIP)
			for _, n := range p.Nodes {
				if n.Name != echo.Node {
					continue
				}
				if v := n.VTEP; v != nil {
					via = fmt.Sprintf("route %s via %s dev %s onlink (vxlan: VNI %d in UDP %d to %s)",
						n.PodCIDR, plan.Addr(v.Addr), v.Dev, v.VNI, v.Port, plan.Addr(n.IP))
					watch = fmt.Sprintf("ip netns exec %s tcpdump -ni eth0 udp port %d", entryNS, v.Port)
				} else {
					via = fmt.Sprintf("route %s via %s (host-gw)", n.PodCIDR, plan.Addr(n.IP))
				}
			}
			tr.Hops = append(tr.Hops, Hop{Step: "network", Namespace: entryNS,
				Summary: fmt.Sprintf("%s → %s across the fabric: %s, then cni0 on %s", entryNode, echo.Node, via, echo.Node),
				Watch:   watch})
		} else {
			tr.Hops = append(tr.Hops, Hop{Step: "network", Namespace: entryNS,
				Summary: fmt.Sprintf("pod %s is on %s itself: bridged on cni0", echo.Pod, entryNode),
				Watch:   fmt.Sprintf("ip netns exec %s tcpdump -ni cni0 host %s", entryNS, echo.PodIP)})
		}
	}
	if echo.Pod != "" {
		tr.Hops = append(tr.Hops, Hop{Step: "pod", Namespace: plan.NetnsName(labName, echo.Pod),
			Summary: fmt.Sprintf("pod %s on %s (%s:%d) answered %d; it saw client %s:%d", echo.Pod, echo.Node, echo.PodIP, echo.Port, resp.StatusCode, echo.ClientIP, echo.ClientPort),
			Watch:   fmt.Sprintf("ip netns exec %s tcpdump -ni eth0 port %d", plan.NetnsName(labName, echo.Pod), echo.Port)})
	} else {
		tr.Hops = append(tr.Hops, Hop{Step: "answer", Namespace: entryNS,
			Summary: fmt.Sprintf("%s, not from a pod: %s", resp.Status, firstLine(body))})
	}
	return tr, nil
}

// resolveInLab turns a host into an address as the tracing namespace would: an IP as is,
// else the namespace's /etc/netns hosts file (Ingress hosts → the ingress VIP).
func resolveInLab(p *plan.Plan, ns, host string) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	if b, err := os.ReadFile(filepath.Join(rundir.EtcNetnsDir(ns), "hosts")); err == nil {
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
			f, err := os.Open(rundir.ForLab(labName).Log("ingress", n.Name))
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
