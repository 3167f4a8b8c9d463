package ingress

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Headers the proxy sets.
const (
	HeaderRequestID = "X-Request-Id"
	HeaderNode      = "X-Netlab-Ingress-Node"
)

// ServerName is the Server header of answers whose upstream sent none, and of the
// proxy's own answers (ingress-nginx sends "Server: nginx"; clients and the Ingress
// conformance suite expect one on every response).
const ServerName = "netlab-ingress"

// The Server header, made once: a header-map value shared by every response (never
// appended to in place: its capacity is its length) and the plain server's head line.
var (
	serverHdr  = []string{ServerName}
	serverLine = "Server: " + ServerName + "\r\n"
)

// StatusClientClosed is logged (never sent) when the client went away before the
// response; nginx's convention.
const StatusClientClosed = 499

// Resolver returns the upstream address ("ClusterIP:port") of a Service port given by
// number or name. An error means the Service or port is unknown (the proxy answers 503).
type Resolver func(namespace, service string, port ServiceBackendPort) (upstream string, err error)

// Backends are the ready endpoints ("podIP:port") of one Service port, for the
// endpoints upstream mode. Pick spreads requests over them round-robin; it is safe for
// concurrent use. A Backends value must not be copied after first use.
type Backends struct {
	Addrs []string
	next  atomic.Uint64
}

// Pick returns the next endpoint, or "" when there is none.
func (b *Backends) Pick() string {
	if b == nil || len(b.Addrs) == 0 {
		return ""
	}
	return b.Addrs[(b.next.Add(1)-1)%uint64(len(b.Addrs))]
}

// EndpointsResolver returns the ready endpoints of a Service port given by number or
// name. An error means the Service or port is unknown (the proxy answers 503); a Service
// without ready endpoints returns empty Backends (503 too).
type EndpointsResolver func(namespace, service string, port ServiceBackendPort) (*Backends, error)

// Options configure a Handler. Zero values get the defaults noted.
type Options struct {
	// Node names the node this proxy runs on; it is returned in HeaderNode.
	Node string
	// Resolve maps a route's Service to its upstream address. Required.
	Resolve Resolver
	// Endpoints maps a route's Service to its ready endpoints, for routes in the
	// UpstreamEndpoints mode; nil answers them 503 until SetEndpoints.
	Endpoints EndpointsResolver
	// UpstreamTimeout bounds the wait for the upstream's response headers; past it the
	// client gets 504. Default 30s.
	UpstreamTimeout time.Duration
	// DialTimeout bounds the TCP connect to the upstream; a failed or timed-out connect is
	// 502. Default 2s.
	DialTimeout time.Duration
	// MaxIdleConnsPerHost sizes the keep-alive pool per upstream. Default 1024 (Go's
	// default of 2 collapses throughput under load).
	MaxIdleConnsPerHost int
	// WrapUpstream, when set, wraps each upstream connection once dialled (the agent
	// passes rawio.Wrap: raw socket calls). A wrapped connection must keep SyscallConn
	// for the liveness peek and the body splice.
	WrapUpstream func(net.Conn) net.Conn
	// AccessLog receives one JSON line per request; nil disables the access log.
	AccessLog io.Writer
	// Metrics collects Prometheus metrics; nil creates a fresh set (see Handler.Metrics).
	Metrics *Metrics
	// Logger receives proxy errors at debug level; nil discards them.
	Logger *slog.Logger
	// TrustForwardedHeaders keeps a client's X-Forwarded-For (appending the client's
	// address), for clients behind a proxy of one's own (ingress-nginx's
	// use-forwarded-headers). Off by default: clients are the internet, and the address
	// chain they claim is replaced. (A client's X-Request-ID is kept either way.)
	TrustForwardedHeaders bool
	// Worker numbers the worker process this proxy is (1..N) when a node's ingress runs
	// several; it is written in every access-log line ("worker"). 0 (one process) leaves
	// it out.
	Worker int
}

// Handler is the ingress reverse proxy. It holds its routing table in an atomic pointer:
// Reload swaps it, requests already routed finish with the route they got.
type Handler struct {
	node     string
	worker   int
	routing  atomic.Pointer[routing]
	reloadMu sync.Mutex
	pool     *pool
	timeout  time.Duration // for the upstream's response headers
	log      *accessLogger
	metrics  *Metrics
	logger   *slog.Logger
	nodeHdr  []string // the HeaderNode value, shared by every response
	trustFwd bool
}

// NewHandler returns a proxy serving table (which may be nil: every request is 404 until
// Reload).
func NewHandler(opts Options, table *Table) (*Handler, error) {
	if opts.Resolve == nil {
		return nil, errors.New("ingress handler: a resolver is required")
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = 30 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.MaxIdleConnsPerHost <= 0 {
		opts.MaxIdleConnsPerHost = 1024
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	h := &Handler{
		node:     opts.Node,
		worker:   opts.Worker,
		metrics:  opts.Metrics,
		logger:   opts.Logger,
		trustFwd: opts.TrustForwardedHeaders,
	}
	if opts.AccessLog != nil {
		h.log = newAccessLogger(opts.AccessLog)
	}
	h.nodeHdr = []string{opts.Node}
	h.pool = newPool(opts.DialTimeout, opts.MaxIdleConnsPerHost, opts.WrapUpstream)
	h.timeout = opts.UpstreamTimeout
	h.routing.Store(&routing{table: table, resolve: opts.Resolve, endpoints: opts.Endpoints})
	return h, nil
}

// routing is what a reload swaps as one: the table and the resolver of its Services.
type routing struct {
	table     *Table
	resolve   Resolver
	endpoints EndpointsResolver
}

// update swaps the routing under a lock, so that concurrent Reload and SetEndpoints
// calls do not undo each other; readers never lock.
func (h *Handler) update(f func(next *routing)) {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	next := *h.routing.Load()
	f(&next)
	h.routing.Store(&next)
}

// Reload makes t the routing table for requests that arrive from now on; requests
// already routed finish with the route and upstream they got.
func (h *Handler) Reload(t *Table) {
	h.update(func(n *routing) { n.table = t })
}

// ReloadWith swaps the table and the resolver together (new Ingresses and the Services
// they name arrive at once). A nil resolver keeps the current one.
func (h *Handler) ReloadWith(t *Table, r Resolver) {
	h.update(func(n *routing) {
		n.table = t
		if r != nil {
			n.resolve = r
		}
	})
}

// SetEndpoints swaps the endpoints resolver (the Services' ready endpoints changed).
func (h *Handler) SetEndpoints(e EndpointsResolver) {
	h.update(func(n *routing) { n.endpoints = e })
}

// Table returns the current routing table.
func (h *Handler) Table() *Table { return h.routing.Load().table }

// Metrics returns the handler's metrics.
func (h *Handler) Metrics() *Metrics { return h.metrics }

// MetricsHandler serves the handler's metrics in the Prometheus exposition format.
func (h *Handler) MetricsHandler() http.Handler { return h.metrics.Handler() }

// CloseIdleConnections closes the idle upstream connections.
func (h *Handler) CloseIdleConnections() { h.pool.closeIdle() }

// CloseIdleConnectionsTo closes the idle upstream connections whose address ("IP:port")
// stale reports, and returns how many it closed.
func (h *Handler) CloseIdleConnectionsTo(stale func(addr string) bool) int {
	return h.pool.closeIdleTo(stale)
}

// Close flushes the access log and closes the idle upstream connections; call it after
// the servers using h have shut down.
func (h *Handler) Close() {
	if h.log != nil {
		h.log.close()
	}
	h.pool.closeIdle()
}

// reqState is what a request's handling records for the metrics and the access log.
type reqState struct {
	route         Route
	upstream      string
	mode          string // the route's upstream mode, once routed
	requestID     string
	clientIP      string
	upstreamStart time.Time
	upstreamDur   time.Duration
	status        int // the status to log when it is not the one sent (499, 400)
	err           error
	body          *bodyReader // the client's request body, when it has one
}

// bodyReader remembers why reading the client's body failed (malformed chunking, a body
// shorter than its Content-Length), so the answer is the client's fault (400), not the
// upstream's (502).
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// ServeHTTP routes and proxies one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// A client's request id is kept (printable, at most 128 bytes), as ingress-nginx keeps
	// it ($req_id is $http_x_request_id when set): it names one request, claims nothing.
	inID := r.Header.Get(HeaderRequestID)
	// The request's state and its response recorder come from a pool (nothing holds them
	// once ServeHTTP returns: the header map keeps only its own values).
	scr := scratches.Get().(*scratch)
	st, rec := &scr.st, &scr.rec
	*st = reqState{requestID: requestID(inID)}
	*rec = recorder{ResponseWriter: w}
	st.clientIP = clientIP(r.RemoteAddr)
	hdr := w.Header()
	// A body framed by Transfer-Encoding may also have carried a Content-Length (net/http
	// drops it before we see the request): such a message can smuggle a second request
	// past a proxy that reads the other framing, so the connection is closed after the
	// answer (RFC 9112 section 6.3).
	if len(r.TransferEncoding) > 0 {
		hdr["Connection"] = []string{"close"}
	}
	hdr[HeaderRequestID] = []string{st.requestID}
	if h.node != "" {
		hdr[HeaderNode] = h.nodeHdr
	}

	rt := h.routing.Load()
	host, hostOK := NormalizeHost(r.Host)
	// A Host the server let through but that names no host (a non-numeric or too long
	// port, an unclosed IPv6 bracket, junk after it) is the client's error: 400, and the
	// connection is closed after it (as nginx does), not a 404 from the routing table.
	var route Route
	ok := false
	if hostOK {
		route, ok = rt.table.match(host, cleanRequestPath(r.URL.Path))
	} else {
		hdr["Connection"] = []string{"close"}
	}
	// Log and count even when a response is aborted mid-body (the proxy panics with
	// http.ErrAbortHandler, which net/http turns into a reset stream or closed connection).
	defer func() {
		if p := recover(); p != nil {
			if st.err == nil {
				st.err = fmt.Errorf("response aborted: %v", p)
			}
			if st.status == 0 && rec.status == 0 {
				st.status = http.StatusBadGateway
			}
			h.finish(r, st, rec, ok, start)
			scr.release()
			panic(p)
		}
		h.finish(r, st, rec, ok, start)
		scr.release()
	}()
	switch {
	case !hostOK:
		writeShort(rec, http.StatusBadRequest, "malformed Host header")
	case !ok:
		writeShort(rec, http.StatusNotFound, "no ingress rule matched this host and path")
	default:
		st.route = route
		st.mode = route.Upstream
		up, err := rt.upstream(route)
		if err != nil {
			st.err = err
			writeShort(rec, http.StatusServiceUnavailable, "no upstream for service "+route.Service())
			break
		}
		st.upstream = up
		h.proxy(rec, r, st)
	}
}

// scratch is the per-request memory ServeHTTP reuses.
type scratch struct {
	st  reqState
	rec recorder
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

func (s *scratch) release() {
	*s = scratch{}
	scratches.Put(s)
}

// errNoEndpoints: the Service exists but has no ready endpoint (endpoints mode).
var errNoEndpoints = errors.New("no ready endpoints")

// upstream is where a routed request goes: the Service's ClusterIP:port, or in the
// endpoints mode the next ready endpoint.
func (rt *routing) upstream(route Route) (string, error) {
	if route.Upstream != UpstreamEndpoints {
		return rt.resolve(route.ServiceNamespace, route.ServiceName, route.ServicePort)
	}
	if rt.endpoints == nil {
		return "", errNoEndpoints
	}
	b, err := rt.endpoints(route.ServiceNamespace, route.ServiceName, route.ServicePort)
	if err != nil {
		return "", err
	}
	if up := b.Pick(); up != "" {
		return up, nil
	}
	return "", fmt.Errorf("service %s: %w", route.Service(), errNoEndpoints)
}

// nextEndpoint is where a request that failed on endpoint failed goes again in the
// endpoints mode: the ready endpoint after it in the Service's list (the current one:
// the endpoints may have changed since), failed itself when it is the only one, the
// next one round-robin when failed is no longer listed.
func (rt *routing) nextEndpoint(route Route, failed string) string {
	if rt.endpoints == nil {
		return failed
	}
	b, err := rt.endpoints(route.ServiceNamespace, route.ServiceName, route.ServicePort)
	if err != nil || b == nil || len(b.Addrs) == 0 {
		return failed
	}
	for i, a := range b.Addrs {
		if a == failed {
			return b.Addrs[(i+1)%len(b.Addrs)]
		}
	}
	return b.Pick()
}

// noReadyEndpoints says whether the endpoints list the route's Service port with no ready
// (or serving) endpoint. A ClusterIP refusing the connection (kube-proxy's REJECT) is then
// 503, as in the endpoints mode and as ingress-nginx answers; asked only after a refused
// dial, so a view of the endpoints a moment old never turns away a request kube-proxy
// would carry.
func (rt *routing) noReadyEndpoints(route Route) bool {
	if rt.endpoints == nil {
		return false
	}
	b, err := rt.endpoints(route.ServiceNamespace, route.ServiceName, route.ServicePort)
	return err == nil && (b == nil || len(b.Addrs) == 0)
}

// finish records a request in the metrics and the access log.
func (h *Handler) finish(r *http.Request, st *reqState, rec *recorder, ok bool, start time.Time) {
	status := rec.status
	if st.status != 0 {
		status = st.status
	}
	if status == 0 {
		status = http.StatusOK
	}
	dur := time.Since(start)
	h.metrics.observe(st.route, ok, status, st.upstreamDur)
	if h.log != nil {
		e := accessEntry{
			Time:       start,
			RequestID:  st.requestID,
			Client:     st.clientIP,
			Method:     r.Method,
			Host:       r.Host,
			Path:       r.URL.Path,
			Proto:      r.Proto,
			Upstream:   st.upstream,
			Mode:       st.mode,
			Status:     status,
			Bytes:      rec.bytes,
			DurationMs: float64(dur.Microseconds()) / 1000,
			UpstreamMs: float64(st.upstreamDur.Microseconds()) / 1000,
			Node:       h.node,
			Worker:     h.worker,
			Error:      errString(st.err),
		}
		if ok {
			e.Rule, e.Service = st.route.ruleString(), st.route.serviceString()
		}
		h.log.write(&e)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// proxy sends a routed request to st.upstream and copies the answer back.
func (h *Handler) proxy(w *recorder, r *http.Request, st *reqState) {
	ctx := r.Context()
	// A request has a body unless its framing says it has none. net/http's HTTP/2 server
	// gives every request a Body, also one whose stream ended with its headers (a GET):
	// its length, 0, is what says it is empty (-1 is an unknown length).
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		st.body = &bodyReader{r: r.Body}
	}
	// A request may go again on a fresh connection only when it cannot have had an
	// effect: idempotent, without a body, sent on a reused connection that the upstream
	// ended (EOF, reset) before answering anything. Never after a timeout, in either mode:
	// that upstream has the request, and a second try would double its work and the
	// client's wait (see design-notes.md, "A timeout is not retried").
	replayable := st.body == nil && idempotent(r.Method)
	upgrade := upgradeOf(r)
	st.upstreamStart = time.Now()
	x := exchanges.Get().(*exchange)
	defer x.release()
	for attempt := 0; ; attempt++ {
		// The second try dials: the pool's other connections to the address may belong to
		// the same pod, closing them all as it stops. In the endpoints mode it goes to the
		// next ready endpoint: the one that failed is likely that stopping pod.
		get := h.pool.get
		if attempt > 0 {
			get = h.pool.dial
			if st.mode == UpstreamEndpoints {
				st.upstream = h.routing.Load().nextEndpoint(st.route, st.upstream)
			}
		}
		uc, err := get(ctx, st.upstream)
		if err != nil {
			h.fail(w, r, st, err)
			return
		}
		err = h.roundTrip(ctx, uc, r, st, upgrade, x)
		if err != nil {
			uc.close()
			if attempt == 0 && uc.reused && replayable && x.nothingRead && ctx.Err() == nil && connEnded(err) {
				x.reset()
				continue // the upstream closed the pooled connection as it was used
			}
			h.fail(w, r, st, err)
			return
		}
		st.upstreamDur = time.Since(st.upstreamStart)
		h.respond(w, r, st, uc, upgrade, x)
		return
	}
}

// roundTrip writes the request on uc and reads the response head into x.
func (h *Handler) roundTrip(ctx context.Context, uc *upConn, r *http.Request, st *reqState, upgrade string, x *exchange) error {
	x.nothingRead = true
	// The client leaving ends the wait: the upstream's read deadline moves to the past.
	if li, ok := ctx.(leaveInterrupter); ok { // PlainServer's request context
		li.interruptOnLeave(uc.nc)
		err := h.writeAndRead(uc, r, st, upgrade, x)
		if !li.stopInterrupt() && err == nil {
			err = ctx.Err()
		}
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = uc.nc.SetDeadline(aLongTimeAgo) })
	err := h.writeAndRead(uc, r, st, upgrade, x)
	if !stop() && err == nil {
		// The client left as the answer came: the deadline is gone, and so is the client.
		err = ctx.Err()
	}
	return err
}

func (h *Handler) writeAndRead(uc *upConn, r *http.Request, st *reqState, upgrade string, x *exchange) error {
	if err := h.writeRequest(uc.bw, r, st, upgrade); err != nil {
		if st.body == nil || st.body.err != nil || upgrade != "" {
			return err
		}
		// Sending the body failed on the upstream's side: it may have answered and
		// closed before reading all of it (an early 413, a handler that does not read the
		// body). That answer, when it came, is the client's, with both connections closed
		// after it (RFC 9112 §9.5; Go's Transport does the same); else the write error.
		uc.armDeadline(time.Now(), h.timeout)
		uc.src.max = headReadSize
		rerr := x.readHead(uc.br, r.Method)
		uc.src.max = 0
		if rerr != nil || x.status == http.StatusSwitchingProtocols {
			return err
		}
		x.early = true
		return nil
	}
	if st.body != nil && st.body.err != nil {
		return st.body.err
	}
	// The deadline stays armed after the head (most answers are in the head's buffer
	// already); whoever reads the body from the socket clears it first.
	uc.armDeadline(time.Now(), h.timeout)
	uc.src.max = headReadSize
	err := x.readHead(uc.br, r.Method)
	uc.src.max = 0
	return err
}

var aLongTimeAgo = time.Unix(1, 0)

// connEnded reports whether an upstream exchange failed because the upstream ended the
// connection (its FIN or a reset: EOF, ECONNRESET, EPIPE, ECONNABORTED), which a pooled
// connection meets when the upstream closes it as the request goes out. A timeout is not
// such an end: the upstream took the request and has not answered in time, so sending it
// again would make it run twice and the client wait twice.
func connEnded(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// leaveInterrupter is a request context that interrupts one connection when the client
// leaves (PlainServer's), without context.AfterFunc's cost.
type leaveInterrupter interface {
	interruptOnLeave(nc net.Conn)
	stopInterrupt() bool
}

// idempotent methods (RFC 9110 section 9.2.2).
func idempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// upgradeOf is the protocol an HTTP/1.1 client asks to switch to ("" for none).
func upgradeOf(r *http.Request) string {
	if r.ProtoMajor != 1 {
		return ""
	}
	up := r.Header["Upgrade"]
	if len(up) == 0 || !headerHasToken(r.Header["Connection"], "upgrade") {
		return ""
	}
	return up[0]
}

// headerHasToken reports whether a comma-separated header holds token (any case).
func headerHasToken(vv []string, token string) bool {
	for _, v := range vv {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// hopRequest are the request headers that are not forwarded: hop-by-hop ones, and the
// ones the proxy sets itself (Host and the body framing are written from the request).
var hopRequest = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Expect": true, "Host": true, "Content-Length": true,
	"Forwarded": true, "X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true,
	"X-Forwarded-Port": true, "X-Real-Ip": true, HeaderRequestID: true,
}

// writeRequest writes the request line, the client's end-to-end headers, the forwarding
// headers and the body (with its length, or chunked when the length is unknown).
func (h *Handler) writeRequest(bw *bufio.Writer, r *http.Request, st *reqState, upgrade string) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	uri := r.RequestURI
	if uri == "" || (uri[0] != '/' && uri != "*") {
		uri = r.URL.RequestURI()
	}
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	if r.Host != "" {
		bw.WriteString(r.Host)
	} else {
		bw.WriteString(st.upstream)
	}
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if hopRequest[k] || (len(conn) > 0 && headerHasToken(conn, k)) {
			continue
		}
		for _, v := range vv {
			writeHeader(bw, k, v)
		}
	}
	if upgrade != "" {
		writeHeader(bw, "Connection", "Upgrade")
		writeHeader(bw, "Upgrade", upgrade)
	}
	if headerHasToken(r.Header["Te"], "trailers") {
		writeHeader(bw, "Te", "trailers")
	}
	if st.clientIP != "" {
		bw.WriteString("X-Forwarded-For: ")
		if h.trustFwd {
			for _, v := range r.Header["X-Forwarded-For"] {
				bw.WriteString(v)
				bw.WriteString(", ")
			}
		}
		bw.WriteString(st.clientIP)
		bw.WriteString("\r\n")
		writeHeader(bw, "X-Real-Ip", st.clientIP)
	}
	writeHeader(bw, "X-Forwarded-Host", r.Host)
	if r.TLS != nil {
		writeHeader(bw, "X-Forwarded-Proto", "https")
	} else {
		writeHeader(bw, "X-Forwarded-Proto", "http")
	}
	writeHeader(bw, "X-Forwarded-Port", forwardedPort(r))
	writeHeader(bw, HeaderRequestID, st.requestID)
	b := st.body
	switch {
	case b == nil:
		switch r.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			bw.WriteString("Content-Length: 0\r\n")
		}
		bw.WriteString("\r\n")
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(r.ContentLength, 10))
		bw.WriteString("\r\n\r\n")
		n, err := bw.ReadFrom(io.LimitReader(b, r.ContentLength))
		if err == nil && n < r.ContentLength {
			err = io.ErrUnexpectedEOF
			b.err = err
		}
		if err != nil {
			return err
		}
	default: // length unknown: chunked
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		buf := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(buf)
		for {
			n, err := b.Read(*buf)
			if n > 0 {
				bw.WriteString(strconv.FormatInt(int64(n), 16))
				bw.WriteString("\r\n")
				bw.Write((*buf)[:n])
				bw.WriteString("\r\n")
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
		}
		bw.WriteString("0\r\n\r\n")
	}
	return bw.Flush()
}

func writeHeader(bw *bufio.Writer, k, v string) {
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// respond copies the upstream's response (head in x, body on uc) to the client, then
// pools uc when the exchange ended cleanly.
func (h *Handler) respond(w *recorder, r *http.Request, st *reqState, uc *upConn, upgrade string, x *exchange) {
	hdr := w.Header()
	// The values share one backing array (one allocation, not one per field); each slice
	// is capped at its own element, so a repeated field's append copies instead of
	// overwriting the next field's value.
	vals := make([]string, len(x.fields))
	for i, f := range x.fields {
		if x.dropped(f.k) {
			continue
		}
		if prev, ok := hdr[f.k]; ok {
			hdr[f.k] = append(prev, f.v)
			continue
		}
		vals[i] = f.v
		hdr[f.k] = vals[i : i+1 : i+1]
	}
	if x.status == http.StatusSwitchingProtocols {
		h.switchProtocols(w, r, st, uc, upgrade)
		return
	}
	if _, plain := w.ResponseWriter.(*response); !plain {
		// net/http (TLS, h2) adds no Server header; PlainServer writes one when missing.
		if _, ok := hdr["Server"]; !ok {
			hdr["Server"] = serverHdr
		}
	}
	if x.early {
		hdr["Connection"] = []string{"close"} // the client's body was not all read
	}
	w.WriteHeader(x.status)
	noBody := r.Method == http.MethodHead || x.status == http.StatusNoContent || x.status == http.StatusNotModified
	reuse := !x.close && !x.early
	var err error
	switch {
	case noBody:
	case x.chunked:
		uc.clearDeadline()
		cr := httputil.NewChunkedReader(uc.br)
		err = copyBody(w, cr, true)
		if err == nil {
			err = x.readTrailers(uc.br, hdr)
		}
	case x.contentLength >= 0 && !x.stream:
		err = copyKnownLength(w, r, uc, x.contentLength)
	case x.contentLength >= 0:
		uc.clearDeadline()
		lr := io.LimitedReader{R: uc.br, N: x.contentLength}
		err = copyBody(w, &lr, true)
		if err == nil && lr.N > 0 {
			err = &upstreamBodyError{io.ErrUnexpectedEOF}
		}
	default: // delimited by the upstream closing the connection
		reuse = false
		uc.clearDeadline()
		err = copyBody(w, uc.br, true)
	}
	if err != nil {
		uc.close()
		st.err = fmt.Errorf("response aborted: %w", err)
		panic(http.ErrAbortHandler)
	}
	if reuse {
		h.pool.put(uc)
	} else {
		uc.close()
	}
}

// clientConnKey is the request context's key for the client's net.Conn (Server's
// ConnContext puts it there).
type clientConnKey struct{}

// localPortKey is the request context's key for the local port of a PlainServer
// connection that knows it without a system call (an int; absent otherwise).
type localPortKey struct{}

// writeHolder is a client connection that can keep one write for a ReadFrom right after
// it to send with the body (netlab/rawio's connections).
type writeHolder interface {
	HoldNextWrite()
	ReleaseHeld() error
}

// upstreamBodyError marks a failure to read the upstream's body (not the client's write).
type upstreamBodyError struct{ err error }

func (e *upstreamBodyError) Error() string { return "upstream body: " + e.err.Error() }
func (e *upstreamBodyError) Unwrap() error { return e.err }

// spliceMin: a body with fewer bytes than this left after the head's buffer is copied
// through one 64 KiB buffer (copyBufs): once it has arrived that is one read, and one
// writev that sends it with the response head, where the splice costs a read of the
// head, a write of the head into the pipe and a splice in and out (measured per request
// in docs/performance.md, "L7 path, fifth pass"). Larger bodies are spliced.
const spliceMin = 64<<10 + 1

// copyKnownLength copies a body of n bytes. What the head's read already buffered goes
// first; the rest, when the client side is a plain TCP connection whose writer takes an
// io.ReaderFrom (net/http's HTTP/1 ResponseWriter does), is handed to the kernel: the
// connection's ReadFrom (netlab/rawio's, or *net.TCPConn's) moves it from the upstream socket
// to the client's with splice(2), through a pipe, without a copy into this process, and
// as one write per burst that arrived instead of one per 64 KiB buffer. TLS and h2
// clients get the buffered copy.
func copyKnownLength(w *recorder, r *http.Request, uc *upConn, n int64) error {
	if b := int64(uc.br.Buffered()); b > 0 {
		if b > n {
			b = n
		}
		p, _ := uc.br.Peek(int(b))
		if _, err := w.Write(p); err != nil {
			return fmt.Errorf("client: %w", err)
		}
		_, _ = uc.br.Discard(int(b))
		n -= b
	}
	if n == 0 {
		return nil
	}
	uc.clearDeadline()
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	_, ok2 := uc.nc.(syscall.Conn)
	if !ok || !ok2 || n < spliceMin {
		lr := io.LimitedReader{R: uc.br, N: n}
		err := copyBody(w, &lr, false)
		if err == nil && lr.N > 0 {
			err = &upstreamBodyError{io.ErrUnexpectedEOF}
		}
		return err
	}
	lr := io.LimitedReader{R: uc.nc, N: n}
	// A client connection that can hold the head's write (netlab/rawio's) sends it
	// with the body's first splice: one send instead of two.
	hc, hold := r.Context().Value(clientConnKey{}).(writeHolder)
	if hold {
		hc.HoldNextWrite()
	}
	m, err := rf.ReadFrom(&lr)
	if hold {
		if rerr := hc.ReleaseHeld(); err == nil && rerr != nil {
			err = fmt.Errorf("client: %w", rerr)
		}
	}
	w.bytes += m
	if err != nil {
		return err // either side's: the exchange is aborted all the same
	}
	if lr.N > 0 {
		return &upstreamBodyError{io.ErrUnexpectedEOF}
	}
	return nil
}

// copyBody copies an upstream body to the client; flush sends every piece at once
// (bodies of unknown length, event streams), as nginx does with buffering off.
func copyBody(w *recorder, src io.Reader, flush bool) error {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	for {
		n, rerr := src.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return fmt.Errorf("client: %w", werr)
			}
			if flush {
				w.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return &upstreamBodyError{rerr}
		}
	}
}

// switchProtocols completes an upgrade (WebSocket and the like): the 101 goes to the
// client, then bytes are copied both ways until either side closes.
func (h *Handler) switchProtocols(w *recorder, r *http.Request, st *reqState, uc *upConn, upgrade string) {
	if upgrade == "" {
		uc.close()
		h.fail(w, r, st, errors.New("upstream switched protocols unasked"))
		return
	}
	cc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		uc.close()
		h.fail(w, r, st, fmt.Errorf("upgrade: %w", err))
		return
	}
	w.status = http.StatusSwitchingProtocols
	_ = cc.SetDeadline(time.Time{})
	uc.clearDeadline()
	hdr := w.Header()
	hdr["Connection"] = []string{"Upgrade"}
	hdr["Upgrade"] = []string{upgrade}
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = hdr.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		cc.Close()
		uc.close()
		return
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(uc.nc, brw.Reader) // the client's buffered bytes, then its connection
		// The client's end goes on to the upstream (Go's sockets and netlab/rawio's).
		if tc, ok := uc.nc.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	n, _ := io.Copy(cc, uc.br)
	w.bytes += n
	cc.Close()
	<-done
	uc.close()
}

// fail answers a request whose upstream exchange failed before any response was sent:
// 504 when the upstream did not answer in time, 502 when it could not be reached or
// broke the connection, 400 when the client's own body was unreadable; nothing when the
// client itself went away (logged as 499).
func (h *Handler) fail(w *recorder, r *http.Request, st *reqState, err error) {
	status := classify(r.Context(), err)
	if r.Context().Err() != nil {
		status = StatusClientClosed
	}
	if status == http.StatusBadGateway && st.mode == UpstreamService && errors.Is(err, syscall.ECONNREFUSED) &&
		h.routing.Load().noReadyEndpoints(st.route) {
		status = http.StatusServiceUnavailable
		err = fmt.Errorf("service %s: %w (%v)", st.route.Service(), errNoEndpoints, err)
	}
	st.err = err
	st.status = status
	if !st.upstreamStart.IsZero() {
		st.upstreamDur = time.Since(st.upstreamStart)
	}
	if st.body != nil && st.body.err != nil && status != StatusClientClosed {
		// The client's body could not be read: its fault, and the connection's framing
		// is lost.
		status = http.StatusBadRequest
		st.status, st.err = status, st.body.err
		w.Header()["Connection"] = []string{"close"}
	}
	h.logger.Debug("upstream error", "error", err, "status", status)
	switch status {
	case http.StatusBadRequest:
		writeShort(w, status, "malformed request body")
	case StatusClientClosed:
		return
	case http.StatusGatewayTimeout:
		writeShort(w, status, "upstream timed out")
	case http.StatusServiceUnavailable:
		writeShort(w, status, "no upstream for service "+st.route.Service())
	default:
		writeShort(w, status, "upstream unreachable")
	}
}

// classify maps an upstream error to the status the client gets.
func classify(ctx context.Context, err error) int {
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return StatusClientClosed
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return http.StatusBadGateway
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return http.StatusBadGateway
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// writeShort writes a short plain-text answer.
func writeShort(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	if _, ok := h["Server"]; !ok {
		h["Server"] = serverHdr
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1+len(strconv.Itoa(status))+1))
	w.WriteHeader(status)
	fmt.Fprintf(w, "%d %s\n", status, msg)
}

// requestID keeps a sane inbound X-Request-Id (printable ASCII, at most 128 bytes) or
// makes a new random one (32 hex digits).
func requestID(in string) string {
	if in != "" && len(in) <= 128 {
		ok := true
		for i := 0; i < len(in); i++ {
			if c := in[i]; c < 0x21 || c > 0x7e {
				ok = false
				break
			}
		}
		if ok {
			return in
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

func clientIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return ""
	}
	return host
}

// forwardedPort is the local port the request came in on.
func forwardedPort(r *http.Request) string {
	// PlainServer's connections from netlab/rawio's accept path know their port without
	// the getsockname(2) that their local address costs.
	if p, ok := r.Context().Value(localPortKey{}).(int); ok {
		switch p {
		case 80:
			return "80"
		case 443:
			return "443"
		}
		return strconv.Itoa(p)
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		switch a.Port {
		case 80:
			return "80"
		case 443:
			return "443"
		}
		return strconv.Itoa(a.Port)
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, p, err := net.SplitHostPort(a.String()); err == nil {
			return p
		}
	}
	if r.TLS != nil {
		return "443"
	}
	return "80"
}

// recorder captures the status and size of a response. Unwrap lets ReverseProxy's
// http.ResponseController reach the real writer for flushing and upgrades.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	if code == http.StatusSwitchingProtocols {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// copyBufs recycles the 64 KiB buffers bodies are copied with (one read takes whatever
// a burst brought, up to 64 KiB, and goes out as one write).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}
