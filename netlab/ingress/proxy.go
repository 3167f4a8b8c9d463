package ingress

import (
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

	networkingv1 "k8s.io/api/networking/v1"
)

// Headers the proxy sets.
const (
	HeaderRequestID = "X-Request-Id"
	HeaderNode      = "X-Netlab-Ingress-Node"
)

// StatusClientClosed is logged (never sent) when the client went away before the
// response; nginx's convention.
const StatusClientClosed = 499

// Resolver returns the upstream address ("ClusterIP:port") of a Service port given by
// number or name. An error means the Service or port is unknown (the proxy answers 503).
type Resolver func(namespace, service string, port networkingv1.ServiceBackendPort) (upstream string, err error)

// Options configure a Handler. Zero values get the defaults noted.
type Options struct {
	// Node names the node this proxy runs on; it is returned in HeaderNode.
	Node string
	// Resolve maps a route's Service to its upstream address. Required.
	Resolve Resolver
	// UpstreamTimeout bounds the wait for the upstream's response headers; past it the
	// client gets 504. Default 30s.
	UpstreamTimeout time.Duration
	// DialTimeout bounds the TCP connect to the upstream; a failed or timed-out connect is
	// 502. Default 2s.
	DialTimeout time.Duration
	// MaxIdleConnsPerHost sizes the keep-alive pool per upstream. Default 1024 (Go's
	// default of 2 collapses throughput under load).
	MaxIdleConnsPerHost int
	// AccessLog receives one JSON line per request; nil disables the access log.
	AccessLog io.Writer
	// Metrics collects Prometheus metrics; nil creates a fresh set (see Handler.Metrics).
	Metrics *Metrics
	// Logger receives proxy errors at debug level; nil discards them.
	Logger *slog.Logger
	// Transport replaces the built-in upstream transport (tests, benchmarks).
	Transport http.RoundTripper
	// TrustForwardedHeaders keeps a client's X-Forwarded-For (appending the client's
	// address) and X-Request-ID, for clients behind a proxy of one's own
	// (ingress-nginx's use-forwarded-headers). Off by default: clients are the internet,
	// and what they claim there is replaced.
	TrustForwardedHeaders bool
}

// Handler is the ingress reverse proxy. It holds its routing table in an atomic pointer:
// Reload swaps it, requests already routed finish with the route they got.
type Handler struct {
	node      string
	routing   atomic.Pointer[routing]
	proxy     *httputil.ReverseProxy
	transport *http.Transport // nil when Options.Transport was given
	log       *accessLogger
	metrics   *Metrics
	logger    *slog.Logger
	trustFwd  bool
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
		metrics:  opts.Metrics,
		logger:   opts.Logger,
		trustFwd: opts.TrustForwardedHeaders,
	}
	if opts.AccessLog != nil {
		h.log = &accessLogger{w: opts.AccessLog}
	}
	rt := opts.Transport
	if rt == nil {
		h.transport = NewTransport(opts.DialTimeout, opts.UpstreamTimeout, opts.MaxIdleConnsPerHost)
		rt = h.transport
	}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      rt,
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.errorHandler,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	h.routing.Store(&routing{table: table, resolve: opts.Resolve})
	return h, nil
}

// NewTransport is the upstream transport: HTTP/1.1 only (upstreams are ClusterIPs), no
// proxy from the environment, no transparent compression, a large keep-alive pool, a
// dial timeout and a response-header timeout.
func NewTransport(dialTimeout, headerTimeout time.Duration, idlePerHost int) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          0, // no global cap; the per-host cap applies
		MaxIdleConnsPerHost:   idlePerHost,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: 1 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		WriteBufferSize:       32 << 10,
		ReadBufferSize:        32 << 10,
	}
}

// routing is what a reload swaps as one: the table and the resolver of its Services.
type routing struct {
	table   *Table
	resolve Resolver
}

// Reload makes t the routing table for requests that arrive from now on; requests
// already routed finish with the route and upstream they got.
func (h *Handler) Reload(t *Table) {
	h.routing.Store(&routing{table: t, resolve: h.routing.Load().resolve})
}

// ReloadWith swaps the table and the resolver together (new Ingresses and the Services
// they name arrive at once). A nil resolver keeps the current one.
func (h *Handler) ReloadWith(t *Table, r Resolver) {
	if r == nil {
		r = h.routing.Load().resolve
	}
	h.routing.Store(&routing{table: t, resolve: r})
}

// Table returns the current routing table.
func (h *Handler) Table() *Table { return h.routing.Load().table }

// Metrics returns the handler's metrics.
func (h *Handler) Metrics() *Metrics { return h.metrics }

// MetricsHandler serves the handler's metrics in the Prometheus exposition format.
func (h *Handler) MetricsHandler() http.Handler { return h.metrics.Handler() }

// CloseIdleConnections closes idle upstream connections of the built-in transport.
func (h *Handler) CloseIdleConnections() {
	if h.transport != nil {
		h.transport.CloseIdleConnections()
	}
}

// reqState travels with a proxied request through the ReverseProxy callbacks.
type reqState struct {
	route         Route
	upstream      string
	requestID     string
	clientIP      string
	fwdPort       string
	upstreamStart time.Time
	upstreamDur   time.Duration
	status        int // set by errorHandler
	err           error
	body          *bodyReader // the client's request body, when it has one
}

// bodyReader remembers why reading the client's body failed (malformed chunking, a body
// shorter than its Content-Length), so the answer is the client's fault (400), not the
// upstream's (502).
type bodyReader struct {
	io.ReadCloser
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

type stateKey struct{}

// ServeHTTP routes and proxies one request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	inID := ""
	if h.trustFwd {
		inID = r.Header.Get(HeaderRequestID)
	}
	st := &reqState{requestID: requestID(inID)}
	st.clientIP = clientIP(r.RemoteAddr)
	hdr := w.Header()
	// A body framed by Transfer-Encoding may also have carried a Content-Length (net/http
	// drops it before we see the request): such a message can smuggle a second request
	// past a proxy that reads the other framing, so the connection is closed after the
	// answer (RFC 9112 section 6.3).
	if len(r.TransferEncoding) > 0 {
		hdr.Set("Connection", "close")
	}
	if r.Body != nil && r.Body != http.NoBody {
		st.body = &bodyReader{ReadCloser: r.Body}
		r.Body = st.body
	}
	hdr.Set(HeaderRequestID, st.requestID)
	if h.node != "" {
		hdr.Set(HeaderNode, h.node)
	}
	rec := &recorder{ResponseWriter: w}

	rt := h.routing.Load()
	host, _ := NormalizeHost(r.Host)
	route, ok := rt.table.match(host, cleanRequestPath(r.URL.Path))
	// Log and count even when ReverseProxy aborts a response mid-body (it panics with
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
			panic(p)
		}
		h.finish(r, st, rec, ok, start)
	}()
	switch {
	case !ok:
		writeShort(rec, http.StatusNotFound, "no ingress rule matched this host and path")
	default:
		st.route = route
		up, err := rt.resolve(route.ServiceNamespace, route.ServiceName, route.ServicePort)
		if err != nil {
			st.err = err
			writeShort(rec, http.StatusServiceUnavailable, "no upstream for service "+route.Service())
			break
		}
		st.upstream = up
		st.fwdPort = forwardedPort(r)
		h.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	}
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
		h.log.write(accessEntry{
			Time:       start.UTC().Format(time.RFC3339Nano),
			RequestID:  st.requestID,
			Client:     st.clientIP,
			Method:     r.Method,
			Host:       r.Host,
			Path:       r.URL.Path,
			Proto:      r.Proto,
			Rule:       ruleOf(st.route, ok),
			Service:    serviceOf(st.route, ok),
			Upstream:   st.upstream,
			Status:     status,
			Bytes:      rec.bytes,
			DurationMs: float64(dur.Microseconds()) / 1000,
			UpstreamMs: float64(st.upstreamDur.Microseconds()) / 1000,
			Node:       h.node,
			Error:      errString(st.err),
		})
	}
}

func ruleOf(r Route, ok bool) string {
	if !ok {
		return ""
	}
	return r.Rule()
}

func serviceOf(r Route, ok bool) string {
	if !ok {
		return ""
	}
	return r.Service()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// rewrite builds the upstream request: the Service's ClusterIP:port, the client's Host
// kept, the forwarding headers set. ReverseProxy has already removed hop-by-hop headers
// and the inbound Forwarded/X-Forwarded-* headers from pr.Out.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*reqState)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = st.upstream
	pr.Out.Host = pr.In.Host

	oh := pr.Out.Header
	xff := st.clientIP
	if prior := pr.In.Header["X-Forwarded-For"]; h.trustFwd && len(prior) > 0 && st.clientIP != "" {
		xff = strings.Join(prior, ", ") + ", " + st.clientIP
	}
	if xff != "" {
		oh.Set("X-Forwarded-For", xff)
		oh.Set("X-Real-Ip", st.clientIP)
	} else {
		oh.Del("X-Real-Ip")
	}
	oh.Set("X-Forwarded-Host", pr.In.Host)
	if pr.In.TLS != nil {
		oh.Set("X-Forwarded-Proto", "https")
	} else {
		oh.Set("X-Forwarded-Proto", "http")
	}
	if st.fwdPort != "" {
		oh.Set("X-Forwarded-Port", st.fwdPort)
	}
	oh.Set(HeaderRequestID, st.requestID)
	st.upstreamStart = time.Now()
}

// modifyResponse times the upstream and drops the headers the proxy owns from the
// upstream response (the client gets the proxy's values, set before proxying).
func (h *Handler) modifyResponse(resp *http.Response) error {
	if st, ok := resp.Request.Context().Value(stateKey{}).(*reqState); ok {
		st.upstreamDur = time.Since(st.upstreamStart)
	}
	resp.Header.Del(HeaderRequestID)
	resp.Header.Del(HeaderNode)
	return nil
}

// errorHandler answers a failed upstream exchange: 504 when the upstream did not answer
// in time, 502 when it could not be reached or broke the connection; nothing when the
// client itself went away (logged as 499).
func (h *Handler) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(stateKey{}).(*reqState)
	status := classify(r.Context(), err)
	if st != nil {
		st.err = err
		st.status = status
		if !st.upstreamStart.IsZero() {
			st.upstreamDur = time.Since(st.upstreamStart)
		}
	}
	if st != nil && st.body != nil && st.body.err != nil && status != StatusClientClosed {
		// The client's body could not be read: its fault, and the connection's framing
		// is lost.
		status = http.StatusBadRequest
		st.status, st.err = status, st.body.err
		w.Header().Set("Connection", "close")
	}
	h.logger.Debug("upstream error", "error", err, "status", status)
	switch status {
	case http.StatusBadRequest:
		writeShort(w, status, "malformed request body")
	case StatusClientClosed:
		return
	case http.StatusGatewayTimeout:
		writeShort(w, status, "upstream timed out")
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

// bufferPool recycles the 32 KiB copy buffers of ReverseProxy.
type bufferPool struct{}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(copyBufs.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBufs.Put(&b) }
