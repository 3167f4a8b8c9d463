package lab

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/capture"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"golang.org/x/sys/unix"
)

// Trace is one request followed through the lab, hop by hop.
type Trace struct {
	URL      string        `json:"url"`
	From     string        `json:"from"`
	Status   int           `json:"-"` // HTTP status; 0 when none came back (JSON: null)
	Duration time.Duration `json:"durationNs"`
	Hops     []Hop         `json:"hops"`
	// Drop is where and why a failed request died (nil when it did not fail).
	Drop *TraceDrop `json:"drop"`
	// Error is what the sender saw when the request failed ("connection refused").
	Error string `json:"error,omitempty"`
	// Notes say what this trace could not see (no BPF, no packets captured).
	Notes []string `json:"notes,omitempty"`
	// Answer is the pod that answered and whom it saw (nil when no pod answered).
	Answer *TraceAnswer `json:"answer,omitempty"`
}

// TraceAnswer is the answering pod's echo: who answered, and the source address it saw.
type TraceAnswer struct {
	Pod      string `json:"pod"`
	Node     string `json:"node"`
	PodIP    string `json:"podIP"`
	Port     int    `json:"port"`
	ClientIP string `json:"clientIP"`
}

// MarshalJSON writes status as null when no HTTP status came back.
func (t Trace) MarshalJSON() ([]byte, error) {
	type plain Trace
	var status *int
	if t.Status != 0 {
		status = &t.Status
	}
	return json.Marshal(struct {
		plain
		Status *int `json:"status"`
	}{plain(t), status})
}

// Failed says whether the request got no answer.
func (t *Trace) Failed() bool { return t.Error != "" }

// Hop is one place the request passed, what happened to it there, the packets seen there,
// and how to watch it.
type Hop struct {
	Step      int           `json:"step"`      // 1–6 as in the article: client, LB, ingress, kube-proxy, network, pod
	Component string        `json:"component"` // client, load balancer, ingress, kube-proxy, network, pod (or answer)
	Object    string        `json:"object"`    // the lab object: client, lb, node-1, web-1
	Namespace string        `json:"namespace"` // where it happened
	Summary   string        `json:"summary"`
	Details   []string      `json:"details,omitempty"`
	Watch     string        `json:"watch,omitempty"` // a command that shows this hop's packets
	Packets   []TracePacket `json:"packets"`
	// Rules are the netfilter rules that acted on the first packet of the request's flows
	// in this hop's namespace, in the order they did.
	Rules []TraceRule `json:"rules,omitempty"`
	// UpstreamMode is, on the ingress hop, how the ingress reached the Service:
	// "service" (its cluster IP; kube-proxy picked the pod) or "endpoints" (the ingress
	// picked the pod), from its access log.
	UpstreamMode string `json:"upstreamMode,omitempty"`
}

// TracePacket is one packet of the traced request as seen on one interface, with the
// addresses as they are at that point (after every rewrite before it).
type TracePacket struct {
	Time      float64 `json:"time"`      // milliseconds since the trace's first packet
	Interface string  `json:"interface"` // <object>/<ifname>
	Direction string  `json:"direction"` // in | out, as that namespace sees it
	Src       string  `json:"src"`
	Dst       string  `json:"dst"`
	Proto     string  `json:"proto"`
	Flags     string  `json:"flags,omitempty"` // SYN, SYN-ACK, PSH-ACK...; ICMP type
	Len       int     `json:"len"`             // L4 payload bytes
	Encap     string  `json:"encap,omitempty"` // the VXLAN header it travelled in
}

// TraceDrop is where a failed request died, and why.
type TraceDrop struct {
	Object    string `json:"object"`
	Namespace string `json:"namespace"`
	Interface string `json:"interface"`
	Reason    string `json:"reason"` // the kernel's drop reason, or what the packets show
	Rule      string `json:"rule"`   // the rule that rejected or dropped it, when one did
	Detail    string `json:"detail,omitempty"`
}

// The article's six steps.
const (
	stepClient = 1 + iota
	stepLB
	stepIngress
	stepKubeProxy
	stepNetwork
	stepPod
)

// TraceOptions is one trace's request and what to record of it.
type TraceOptions struct {
	From    string      // the sender: a client (default: the first), pod or node
	URL     string      // http(s)://host[:port]/path, tcp://IP:PORT or udp://IP:PORT
	Method  string      // HTTP method (default GET)
	Headers http.Header // extra request headers
	Packets bool        // capture the request's packets on every lab interface
	Pcap    io.Writer   // also write them as pcapng (implies Packets)
	// ExpectFailure loads the kernel's drop program for the first attempt already (a
	// check whose request must fail): a dropped SYN ends the dial at once instead of after
	// its timeout, and no second attempt is needed.
	ExpectFailure bool
}

// TraceRequest sends one request from a lab object's namespace and follows it, capturing
// its packets (see Trace).
func TraceRequest(ctx context.Context, labName, from, rawURL string) (*Trace, error) {
	return TraceWith(ctx, labName, TraceOptions{From: from, URL: rawURL, Packets: true})
}

// TraceWith sends one request from a lab object's namespace (a client, by default the
// first) and reconstructs the path it took: the packets on every lab interface it crossed
// (when asked), the LB's and the node's conntrack entries (each NAT rewrite), the
// ingress's access log (matched rule, Service, upstream) and the pod's echo (who answered,
// whom it saw). Each hop is written by its own function, in the order a request crosses
// them. A request that got no answer returns the trace, ending with where it died, and an
// error.
func TraceWith(ctx context.Context, labName string, o TraceOptions) (*Trace, error) {
	t, err := newTracer(labName, o)
	if err != nil {
		return nil, err
	}
	defer t.h.Close()
	var kernelDrops []LabDrop
	drops := o.ExpectFailure && (o.Packets || o.Pcap != nil)
	sendErr := t.attempt(ctx, drops)
	if drops {
		kernelDrops = t.kernelDrops
	} else if sendErr != nil && (o.Packets || o.Pcap != nil) && !t.droppedByRule() {
		// Loading the kernel's drop program costs a few hundred milliseconds, which a
		// request that goes through does not need: a failed one is sent once more with
		// it loaded, to learn where and why it dies.
		first := sendErr
		sendErr = t.attempt(ctx, true)
		kernelDrops = t.kernelDrops
		if sendErr == nil {
			t.tr.Notes = append(t.tr.Notes, fmt.Sprintf("a first attempt failed (%v); this second one went through", first))
		}
	}
	t.clientHop()
	t.loadBalancerHop()
	t.ingressHop()
	if t.echo.Pod != "" && t.entryNS != "" {
		t.kubeProxyHop()
		t.networkHop()
	}
	t.answerHop()
	t.attachPackets()
	t.attachRules()
	if t.dns != nil {
		// The sender's lookup of the name through the cluster DNS comes first.
		t.tr.Hops = append([]Hop{*t.dns}, t.tr.Hops...)
	}
	if o.Pcap != nil {
		if err := t.writePcap(o.Pcap); err != nil {
			return t.tr, err
		}
	}
	if sendErr != nil {
		t.findDrop(sendErr, kernelDrops)
		return t.tr, &RequestFailedError{Err: sendErr}
	}
	return t.tr, nil
}

// attempt sends the request once, capturing its packets (and with drops, the kernel's
// drops) while it runs. It starts from a clean slate: only the last attempt is reported.
func (t *tracer) attempt(ctx context.Context, drops bool) error {
	t.local, t.resp, t.body, t.echo, t.status = netip.AddrPort{}, nil, nil, podEcho{}, ""
	t.localPort.Store(0)
	t.tr.Error, t.tr.Status, t.packets, t.kernelDrops, t.rt = "", 0, nil, nil, nil
	t.reqID = "trace-" + randomHex(8)
	if t.o.Packets || t.o.Pcap != nil {
		loaded := make(chan struct{})
		go func() {
			if drops {
				t.startDrops()
			}
			close(loaded)
		}()
		if err := t.startCapture(); err != nil {
			t.tr.Notes = append(t.tr.Notes, "no packets: "+err.Error())
		}
		<-loaded
		if t.dropsNote != "" {
			t.tr.Notes = append(t.tr.Notes, t.dropsNote)
		}
	}
	err := t.send(ctx)
	if err != nil {
		t.tr.Error = err.Error()
	}
	t.stopRuleTrace()
	t.stopCapture()
	t.kernelDrops = t.stopDrops()
	return err
}

// RequestFailedError is returned with the trace of a request that got no answer.
type RequestFailedError struct{ Err error }

func (e *RequestFailedError) Error() string { return "request failed: " + e.Err.Error() }
func (e *RequestFailedError) Unwrap() error { return e.Err }

// tracer is one traced request: where it starts, what came back, and what the hops found
// so far (the node the request entered the cluster on).
type tracer struct {
	labName string
	p       *plan.Plan
	o       TraceOptions
	u       *url.URL
	from    string
	fromNS  string
	host    string
	dst     netip.Addr
	target  netip.AddrPort
	reqID   string
	h       *kernel.Handles
	tr      *Trace

	// dns is the cluster DNS lookup of the URL's host, when the sender resolved it so.
	dns *Hop

	// Filled by send.
	local  netip.AddrPort
	resp   *http.Response
	status string // "200 OK", or for L4 what came back
	body   []byte
	echo   podEcho

	// Filled by the hops: the node whose rules handled the request, and each address pair
	// the request had on its way (the flow before and after every rewrite).
	entryNode  string
	entryNS    string
	viaIngress bool
	// ingressMode is the ingress's upstream mode for this request (service, endpoints).
	ingressMode string
	flows       map[capture.Flow]bool
	inner       map[capture.Flow]bool // the ingress's own connection to the Service

	// The packet capture (see trace_wire.go).
	session     *capture.Session
	packets     []capture.Packet
	ifaces      []capture.Iface
	drops       *traceDrops
	dropsNote   string
	kernelDrops []LabDrop
	rt          *ruleTrace // nf_tables tracing of the request's flow (trace_rules.go)

	// A kernel drop of the connection's first packet ends the dial at once.
	mu         sync.Mutex
	cancelDial context.CancelCauseFunc
	localPort  atomic.Uint32
}

// podEcho is the part of the pod's echo response a trace uses.
type podEcho struct {
	Pod, Node, PodIP, ClientIP string
	Port, ClientPort           int
}

func newTracer(labName string, o TraceOptions) (*tracer, error) {
	p, err := LoadPlan(labName)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("trace needs an http://, https://, tcp:// or udp:// URL, got %q", o.URL)
	}
	switch u.Scheme {
	case "http", "https":
	case "tcp", "udp":
		if u.Port() == "" {
			return nil, fmt.Errorf("%s needs a port: %s://IP:PORT", u.Scheme, u.Scheme)
		}
	default:
		return nil, fmt.Errorf("trace needs an http://, https://, tcp:// or udp:// URL, got %q", o.URL)
	}
	from := o.From
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
	var dnsHop *Hop
	if err != nil {
		// Not an address nor in the hosts file: the cluster DNS, as the sender's resolver.
		var viaDNS bool
		var derr error
		if dst, dnsHop, viaDNS, derr = ClusterDNSHop(p, from, fromNS, host); viaDNS {
			err = derr
		}
	}
	if err != nil {
		return nil, err
	}
	dstPort, err := strconv.Atoi(port)
	if err != nil || dstPort < 1 || dstPort > 65535 {
		return nil, fmt.Errorf("bad port %q in %s", port, o.URL)
	}
	return &tracer{
		labName: labName, p: p, o: o, u: u, from: from, fromNS: fromNS, host: host, dst: dst,
		target: netip.AddrPortFrom(dst, uint16(dstPort)),
		reqID:  "trace-" + randomHex(8),
		h:      kernel.NewHandles(),
		tr:     &Trace{URL: o.URL, From: from},
		flows:  map[capture.Flow]bool{},
		inner:  map[capture.Flow]bool{},
		dns:    dnsHop,
	}, nil
}

// dial connects from the sender's namespace. The socket is bound before it connects, so
// its address is known even when the connection then fails.
func (t *tracer) dial(parent context.Context, network string) (net.Conn, error) {
	var conn net.Conn
	d := net.Dialer{Timeout: 3 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var berr error
		err := rc.Control(func(fd uintptr) {
			if berr = unix.Bind(int(fd), &unix.SockaddrInet4{}); berr != nil {
				return
			}
			if sa, err := unix.Getsockname(int(fd)); err == nil {
				if in, ok := sa.(*unix.SockaddrInet4); ok {
					t.local = netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port))
					t.localPort.Store(uint32(in.Port))
				}
			}
		})
		if berr == nil && (t.o.Packets || t.o.Pcap != nil) {
			// Its port known, the rules that trace its packets go in before it connects.
			if src := t.routeSource(); src.IsValid() {
				t.startRuleTrace(netip.AddrPortFrom(src, t.local.Port()))
			}
		}
		return errors.Join(err, berr)
	}}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	t.mu.Lock()
	t.cancelDial = cancel
	t.mu.Unlock()
	err := kernel.Do(t.fromNS, func() error {
		var err error
		conn, err = d.DialContext(ctx, network, t.target.String())
		return err
	})
	t.mu.Lock()
	t.cancelDial = nil
	t.mu.Unlock()
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if err != nil {
		if !t.local.Addr().IsUnspecified() {
			return nil, err
		}
		if a := objectIP(t.p, t.from); a.IsValid() {
			t.local = netip.AddrPortFrom(a, t.local.Port()) // bound, never routed
		}
		return nil, err
	}
	t.local = netip.MustParseAddrPort(conn.LocalAddr().String())
	return conn, nil
}

// send makes the request from the sender's namespace and reads the answer.
func (t *tracer) send(ctx context.Context) error {
	start := time.Now()
	defer func() { t.tr.Duration = time.Since(start) }()
	network := "tcp"
	if t.u.Scheme == "udp" {
		network = "udp"
	}
	conn, err := t.dial(ctx, network)
	if err != nil {
		return fmt.Errorf("connect from %s to %s: %w", t.from, t.target, err)
	}
	defer conn.Close()
	// Interrupted (Ctrl-C): stop waiting for the answer at once, so the trace's rules and
	// sockets go now.
	defer context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })()
	if network == "udp" {
		return t.sendUDP(conn)
	}
	var rw net.Conn = conn
	if t.u.Scheme == "https" {
		pool := x509.NewCertPool()
		if pem, err := os.ReadFile(rundir.ForLab(t.labName).CACert()); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		for _, e := range t.p.TLS {
			pool.AppendCertsFromPEM(e.Cert) // a Secret's own certificate, as curl --cacert would take it
		}
		tc := tls.Client(conn, &tls.Config{ServerName: t.host, RootCAs: pool, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS with %s: %w", t.host, err)
		}
		rw = tc
	}
	reqURL := t.o.URL
	if t.u.Scheme == "tcp" {
		// Lab pods answer HTTP on their TCP ports: ask who they are.
		reqURL = "http://" + t.u.Host + "/"
	}
	method := t.o.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, reqURL, nil)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	for k, vs := range t.o.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h
	}
	req.Header.Set("X-Request-ID", t.reqID)
	req.Header.Set("User-Agent", "netlab-trace")
	req.Close = true
	rw.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(rw); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(rw), req)
	if err != nil {
		if t.u.Scheme == "tcp" {
			t.status = "connected (no HTTP answer)"
			return nil
		}
		return fmt.Errorf("read response: %w", err)
	}
	t.body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	// The ingress keeps a client's X-Request-ID (a new one when it is not printable or
	// over 128 bytes) and returns the one it used: that is the id in its access log.
	if id := resp.Header.Get("X-Request-ID"); id != "" {
		t.reqID = id
	}
	t.resp, t.status = resp, resp.Status
	if t.u.Scheme != "tcp" {
		t.tr.Status = resp.StatusCode
	}
	_ = json.Unmarshal(t.body, &t.echo)
	return nil
}

// sendUDP sends one datagram and waits for the pod's echo.
func (t *tracer) sendUDP(conn net.Conn) error {
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("netlab trace " + t.reqID)); err != nil {
		return fmt.Errorf("send datagram: %w", err)
	}
	buf := make([]byte, 64<<10)
	n, err := conn.Read(buf)
	if err != nil {
		return fmt.Errorf("no answer from %s: %w", t.target, err)
	}
	t.body = buf[:n]
	t.status = "answered"
	_ = json.Unmarshal(t.body, &t.echo)
	return nil
}

func (t *tracer) addHop(h Hop) {
	if h.Packets == nil {
		h.Packets = []TracePacket{}
	}
	if cmd, ok := strings.CutPrefix(h.Watch, "netlab "); ok {
		h.Watch = Hint(t.labName, cmd) // with --name when other labs are up
	}
	t.tr.Hops = append(t.tr.Hops, h)
}

func (t *tracer) addFlow(a, b netip.AddrPort) {
	if a.IsValid() && b.IsValid() {
		t.flows[capture.Flow{A: a, B: b}.Key()] = true
	}
}

// clientHop: the sender's own connection.
func (t *tracer) clientHop() {
	t.addFlow(t.local, t.target)
	details := []string{fmt.Sprintf("X-Request-ID %s", t.reqID)}
	if t.u.Scheme == "udp" || t.u.Scheme == "tcp" {
		details = nil
	}
	t.addHop(Hop{Step: stepClient, Component: "client", Object: t.from, Namespace: t.fromNS,
		Summary: fmt.Sprintf("%s %s → %s %s %s", t.from, t.local, t.target, t.u.Scheme, t.host),
		Details: details,
		Watch:   fmt.Sprintf("netlab capture %s -- host %s", t.from, t.dst)})
}

// loadBalancerHop: a DNAT from the VIP to a node, if the target is a VIP. It also decides
// which node the request entered the cluster on.
func (t *tracer) loadBalancerHop() {
	p := t.p
	entryNode := ""
	if vs, ok := findVIP(p, t.target); ok {
		hop := Hop{Step: stepLB, Component: "load balancer", Object: "lb", Namespace: p.LB.Netns,
			Watch: fmt.Sprintf("netlab capture lb -- host %s", t.local.Addr())}
		if f, ok := findFlow(t.h, p.LB.Netns, func(f kernel.Flow) bool { return f.OrigSrc == t.local && f.OrigDst == t.target }); ok {
			entry := f.ReplySrc
			entryNode = nodeByIP(p, entry.Addr())
			t.addFlow(f.OrigSrc, entry)
			hop.Summary = fmt.Sprintf("virtual service %s (%s): DNAT %s → %s (%s)", vs.Name, vs.Scheduler, t.target, entry, entryNode)
			hop.Details = append(hop.Details, fmt.Sprintf("conntrack: %s → %s, reply from %s; the client's address is kept", f.OrigSrc, f.OrigDst, f.ReplySrc))
		} else {
			hop.Summary = fmt.Sprintf("virtual service %s (%s): no conntrack entry found", vs.Name, vs.Scheduler)
		}
		t.addHop(hop)
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
	if t.u.Scheme != "http" && t.u.Scheme != "https" {
		return
	}
	if port := int(t.target.Port()); port != int(t.p.Ingress.HTTPPort) && port != int(t.p.Ingress.HTTPSPort) {
		return // not an ingress port: no access-log line to wait for
	}
	if !ingressAddr(t.p, t.target.Addr()) {
		return // not the ingress VIP or a node's address (a ClusterIP, a LoadBalancer IP): no ingress on the way
	}
	line, node, ok := ingressLogLine(t.labName, t.p, t.reqID)
	if !ok {
		t.tr.Notes = append(t.tr.Notes, fmt.Sprintf("no ingress hop: no node's ingress access log had request ID %s within half a second", t.reqID))
		return
	}
	t.ingressMode = line.Mode
	mode, conn := "", "it opens its own connection to the Service"
	switch line.Mode {
	case "endpoints":
		mode = ", endpoints mode"
		conn = "in endpoints mode it picks a ready endpoint of the Service for every request and connects to the pod itself (kube-proxy does not balance)"
	case "service":
		mode = ", service mode"
		conn = "in service mode it connects to the Service's cluster IP, and kube-proxy picks the pod once per connection (keep-alive requests stay on it)"
	}
	on := node
	if line.Worker > 0 {
		on = fmt.Sprintf("%s (worker %d)", node, line.Worker)
	}
	t.addHop(Hop{Step: stepIngress, Component: "ingress", Object: node, Namespace: plan.NetnsName(t.labName, node),
		Summary: fmt.Sprintf("ingress on %s: %s %s%s matched %s → Service %s (upstream %s%s), %d in %.1f ms",
			on, line.Method, line.Host, line.Path, orNone(line.Rule), orNone(line.Service), orNone(line.Upstream), mode, line.Status, line.DurationMs),
		Details:      []string{fmt.Sprintf("the ingress saw client %s; %s", line.Client, conn)},
		Watch:        fmt.Sprintf("netlab logs ingress %s", node),
		UpstreamMode: line.Mode})
	t.entryNode = node
	t.entryNS = plan.NetnsName(t.labName, node)
	t.viaIngress = true
}

// kubeProxyHop: the entry node's conntrack entry whose reply comes from the pod to the
// address the pod saw as its client. Its original destination is the ClusterIP or NodePort.
func (t *tracer) kubeProxyHop() {
	p, echo := t.p, t.echo
	podAP := netip.AddrPortFrom(mustAddr(echo.PodIP), uint16(echo.Port))
	seen := netip.AddrPortFrom(mustAddr(echo.ClientIP), uint16(echo.ClientPort))
	t.addFlow(seen, podAP)
	hop := Hop{Step: stepKubeProxy, Component: "kube-proxy", Object: t.entryNode, Namespace: t.entryNS,
		Watch: fmt.Sprintf("netlab rules %s", t.entryNode)}
	if f, ok := findFlow(t.h, t.entryNS, func(f kernel.Flow) bool { return f.ReplySrc == podAP && f.ReplyDst == seen }); ok {
		for _, fl := range []capture.Flow{{A: f.OrigSrc, B: f.OrigDst}, {A: f.OrigSrc, B: podAP}, {A: seen, B: podAP}} {
			t.addFlow(fl.A, fl.B)
			if t.viaIngress {
				t.inner[fl.Key()] = true // the ingress's own connection, not the client's
			}
		}
		svc, sp := serviceFor(p, f.OrigDst, t.entryNode)
		hop.Summary = fmt.Sprintf("on %s: DNAT %s → %s (pod %s)", t.entryNode, f.OrigDst, podAP, echo.Pod)
		if f.OrigDst == podAP && t.ingressMode == "endpoints" {
			hop.Summary = fmt.Sprintf("on %s: no DNAT: the ingress (endpoints mode) picked pod %s and connected to %s itself", t.entryNode, echo.Pod, podAP)
		} else if svc != nil {
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
	t.addHop(hop)
}

// networkHop: how the packet got from the entry node to the pod's node: bridged on cni0,
// routed (host-gw) or encapsulated (vxlan) across the fabric.
func (t *tracer) networkHop() {
	echo := t.echo
	if echo.Node == t.entryNode {
		t.addHop(Hop{Step: stepNetwork, Component: "network", Object: t.entryNode, Namespace: t.entryNS,
			Summary: fmt.Sprintf("pod %s is on %s itself: bridged on cni0", echo.Pod, t.entryNode),
			Watch:   fmt.Sprintf("netlab capture %s -i cni0 -- host %s", t.entryNode, echo.PodIP)})
		return
	}
	via, watch := "", fmt.Sprintf("netlab capture %s -i eth0 -- host %s", t.entryNode, echo.PodIP)
	podNodeNS := t.entryNS
	for _, n := range t.p.Nodes {
		if n.Name != echo.Node {
			continue
		}
		podNodeNS = n.Netns
		if v := n.VTEP; v != nil {
			via = fmt.Sprintf("route %s via %s dev %s onlink (vxlan: VNI %d in UDP %d to %s)",
				n.PodCIDR, plan.Addr(v.Addr), v.Dev, v.VNI, v.Port, plan.Addr(n.IP))
			watch = fmt.Sprintf("netlab capture %s -i eth0 -- udp port %d", t.entryNode, v.Port)
		} else {
			via = fmt.Sprintf("route %s via %s (host-gw)", n.PodCIDR, plan.Addr(n.IP))
		}
	}
	t.addHop(Hop{Step: stepNetwork, Component: "network", Object: echo.Node, Namespace: podNodeNS,
		Summary: fmt.Sprintf("%s → %s across the fabric: %s, then cni0 on %s", t.entryNode, echo.Node, via, echo.Node),
		Watch:   watch})
}

// answerHop: the pod that answered and whom it saw, or what answered when no pod did.
func (t *tracer) answerHop() {
	echo := t.echo
	if t.status == "" {
		return // no answer: the trace ends with the drop
	}
	if echo.Pod == "" {
		t.addHop(Hop{Step: stepPod, Component: "answer", Object: t.entryNode, Namespace: t.entryNS,
			Summary: fmt.Sprintf("%s, not from a pod: %s", t.status, firstLine(t.body))})
		return
	}
	t.tr.Answer = &TraceAnswer{Pod: echo.Pod, Node: echo.Node, PodIP: echo.PodIP, Port: echo.Port, ClientIP: echo.ClientIP}
	ns := plan.NetnsName(t.labName, echo.Pod)
	what := "answered " + t.status
	if t.resp != nil {
		what = fmt.Sprintf("answered %d", t.resp.StatusCode)
	}
	t.addHop(Hop{Step: stepPod, Component: "pod", Object: echo.Pod, Namespace: ns,
		Summary: fmt.Sprintf("pod %s on %s (%s:%d) %s; it saw client %s:%d", echo.Pod, echo.Node, echo.PodIP, echo.Port, what, echo.ClientIP, echo.ClientPort),
		Watch:   fmt.Sprintf("netlab capture %s -- port %d", echo.Pod, echo.Port)})
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

// objectIP is a client's, pod's or node's own address.
func objectIP(p *plan.Plan, object string) netip.Addr {
	var cidr string
	for _, c := range p.Clients {
		if c.Name == object {
			cidr = c.IP
		}
	}
	for _, n := range p.Nodes {
		if n.Name == object {
			cidr = n.IP
		}
	}
	for _, pod := range p.Pods {
		if pod.Name == object {
			cidr = pod.IP
		}
	}
	a, _ := netip.ParseAddr(plan.Addr(cidr))
	return a
}

// ingressAddr says whether the ingress may answer at a: the ingress VIP (the LB sends it to
// a node's ingress) or an address of a node (the ingress listens on all of them: the
// fabric's and its pods' gateway).
func ingressAddr(p *plan.Plan, a netip.Addr) bool {
	if a.String() == plan.Addr(p.LB.VIP) {
		return true
	}
	for _, n := range p.Nodes {
		if a.String() == plan.Addr(n.IP) || n.Gateway != "" && a.String() == plan.Addr(n.Gateway) {
			return true
		}
	}
	return false
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
	Mode       string  `json:"upstreamMode"`
	Status     int     `json:"status"`
	DurationMs float64 `json:"durationMs"`
	Node       string  `json:"node"`
	Worker     int     `json:"worker"` // the node's ingress worker that served it (0: one process)
}

// ingressLogLine finds the access-log line of a request id in the nodes' ingress logs.
func ingressLogLine(labName string, p *plan.Plan, id string) (accessLine, string, bool) {
	for try := 0; try < 25; try++ {
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
		time.Sleep(20 * time.Millisecond) // the access log is written after the response (later on a loaded machine)
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
