package ingress

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The client side of the plain-HTTP listener: a purpose-built HTTP/1.x server loop.
//
// net/http's server costs each keep-alive request a background read (a goroutine woken,
// a 1-byte read, a read deadline moved to the past and back), a fresh request context,
// a header map, a 4 KiB buffered writer and reader per connection, and two or three
// deadline updates. PlainServer serves the same requests with one goroutine per
// connection and memory reused from request to request: the head is parsed from the
// connection's read buffer (one string per head, the fields slices of it), the
// request, its header map and the response's header map are the connection's own, the
// response head and a small body go out in one write, and the read and write deadlines
// are re-armed only when less than their timeout is left. The handler (the proxy) is the
// same http.Handler the TLS listener's net/http server runs. See docs/design-notes.md.

// PlainServer serves HTTP/1.0 and HTTP/1.1 on plain TCP connections (Server.Plain).
type PlainServer struct {
	cfg     Server
	handler http.Handler

	mu      sync.Mutex
	lns     map[net.Listener]struct{}
	conns   map[*h1conn]struct{}
	closing atomic.Bool

	// Connection goroutines are reused: one that has served its connection waits on
	// handoff for the next one (at most maxIdleWorkers wait; quit, closed by Shutdown
	// and Close, ends their wait). A fresh goroutine's stack grows by copying while it
	// serves its first request (morestack was ~3 % of the agent's CPU with a connection
	// per request); a reused one has grown already.
	handoff  chan *h1conn
	idle     atomic.Int32 // goroutines waiting on handoff
	quit     chan struct{}
	quitOnce sync.Once
}

// maxIdleWorkers bounds the connection goroutines kept waiting for a next connection.
const maxIdleWorkers = 256

// Plain returns a server for h with the limits and timeouts of s; serve plain-TCP
// listeners with Serve. It answers what net/http's server would for the requests a
// proxy gets (400 for malformed requests, 431 for heads over MaxHeaderBytes, 501 for a
// transfer coding other than chunked, 505 for HTTP versions other than 1.x, 417 for
// an Expect other than 100-continue), pipelined requests in order, and passes every
// request to h with an http.Request and an http.ResponseWriter that can flush, hijack
// (upgrades) and take a body with ReadFrom (the splice path).
func (s Server) Plain(h http.Handler) *PlainServer {
	return &PlainServer{cfg: s.withDefaults(), handler: h, lns: map[net.Listener]struct{}{}, conns: map[*h1conn]struct{}{},
		handoff: make(chan *h1conn), quit: make(chan struct{})}
}

// work serves c, then the connections handed to it, until none comes (the server
// stops, or enough goroutines wait already).
func (p *PlainServer) work(c *h1conn) {
	for {
		c.serve()
		if p.idle.Add(1) > maxIdleWorkers || p.closing.Load() {
			p.idle.Add(-1)
			return
		}
		select {
		case c = <-p.handoff:
			p.idle.Add(-1)
		case <-p.quit:
			p.idle.Add(-1)
			return
		}
	}
}

// stopWorkers ends the wait of the idle connection goroutines.
func (p *PlainServer) stopWorkers() {
	p.quitOnce.Do(func() { close(p.quit) })
}

// Serve accepts connections on ln until it fails or the server is shut down
// (http.ErrServerClosed). It closes ln when it returns, as net/http's Serve does: a
// Shutdown that came before Serve took ln cannot leave it open.
func (p *PlainServer) Serve(ln net.Listener) error {
	defer ln.Close()
	p.mu.Lock()
	if p.closing.Load() {
		p.mu.Unlock()
		return http.ErrServerClosed
	}
	p.lns[ln] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.lns, ln)
		p.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if p.closing.Load() {
				return http.ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() { // out of descriptors and the like
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				p.cfg.Logger.Debug("accept error; retrying", "error", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		c := newH1conn(p, nc)
		p.mu.Lock()
		if p.closing.Load() {
			p.mu.Unlock()
			_ = nc.Close()
			return http.ErrServerClosed
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		select {
		case p.handoff <- c: // a goroutine that served a connection before takes it
		default:
			go p.work(c)
		}
	}
}

// Shutdown stops accepting, closes idle connections and waits for the others to finish
// their request (they close after it), or for ctx.
func (p *PlainServer) Shutdown(ctx context.Context) error {
	p.closing.Store(true)
	p.closeListeners()
	p.stopWorkers()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		p.mu.Lock()
		for c := range p.conns {
			if c.state.CompareAndSwap(stateIdle, stateClosed) {
				_ = c.nc.Close()
			}
		}
		n := len(p.conns)
		p.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection now.
func (p *PlainServer) Close() error {
	p.closing.Store(true)
	p.closeListeners()
	p.stopWorkers()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.state.Store(stateClosed)
		_ = c.nc.Close()
	}
	return nil
}

func (p *PlainServer) closeListeners() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for ln := range p.lns {
		_ = ln.Close()
	}
}

// Connection states (Shutdown closes idle connections; active ones close after their
// request).
const (
	stateActive int32 = iota
	stateIdle
	stateClosed
)

const (
	// smallReadBuf is a connection's read buffer; a head that does not fit moves to a
	// buffer of the head limit (MaxHeaderBytes + 4 KiB, as net/http allows).
	smallReadBuf = 4 << 10
	// maxPendBody is how much body is held before the response head is sent: a handler
	// that writes less and returns gets a Content-Length instead of chunking.
	maxPendBody = 4 << 10
	// maxOut is the output gathered before a write.
	maxOut = 16 << 10
	// maxDiscard is how much of an unread request body is read and dropped to keep the
	// connection (net/http's 256 KiB); past it the connection is closed.
	maxDiscard = 256 << 10
	// watchAfter: a request still running after this long gets a watch on its client
	// connection, so that a client that leaves ends the wait for the upstream (the request
	// context is cancelled; the proxy logs 499).
	watchAfter = time.Second
	// lingerFor: after an error answer, the connection's input is drained this long
	// before the close, so the client reads the answer instead of a reset.
	lingerFor = 500 * time.Millisecond
)

var smallReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, smallReadBuf) }}

// h1conn is one client connection.
type h1conn struct {
	srv    *PlainServer
	nc     net.Conn
	rc     syscall.RawConn // for the client watch; nil when the conn has none
	br     *bufio.Reader
	big    bool // br is a head-limit buffer of its own (not pooled)
	state  atomic.Int32
	remote string
	laddr  net.Addr

	ctx    connCtx
	cancel context.CancelFunc

	accepted  time.Time // when the connection was accepted
	inHandler bool      // the handler runs (the client watch belongs to it)
	rdl, wdl  time.Time // the read and write deadlines set (zero: none, or unknown)
	rdlExact  bool      // rdl was set for one request (head or body bound), not coarsely
	served    int       // requests served on this connection
	req       http.Request
	url       url.URL
	reqHdr    http.Header
	te        [1]string
	body      reqBody
	w         response
	wbuf      []byte
	closeNext bool          // close after the current response
	finishing bool          // the handler returned: the body held is all of it
	tmpl      *http.Request // carries the connection's context into c.req

	// the client watch (see watchAfter)
	watchMu    sync.Mutex
	watchTimer *time.Timer
	watchStop  bool
	watchDone  chan struct{}
	watching   bool
	clientGone atomic.Bool

	// the connection whose deadline moves to the past when the client leaves (the
	// proxy's wait for its upstream; see interruptOnLeave)
	leaveMu    sync.Mutex
	leaveConn  net.Conn
	leaveFired bool
}

// connCtx is a connection's context: the server's values (the client connection, the
// local address) over a cancellable context that ends when the client leaves or the
// connection closes.
type connCtx struct {
	context.Context
	c *h1conn
}

func (x *connCtx) Value(key any) any {
	switch key {
	case clientConnKey{}:
		return x.c.nc
	case http.LocalAddrContextKey:
		return x.c.localAddr()
	case localPortKey{}:
		if lp, ok := x.c.nc.(interface{ LocalPort() int }); ok {
			if p := lp.LocalPort(); p > 0 {
				return p
			}
		}
		return nil
	}
	return x.Context.Value(key)
}

// localAddr is the connection's local address (looked up at the first call).
func (c *h1conn) localAddr() net.Addr {
	if c.laddr == nil {
		c.laddr = c.nc.LocalAddr()
	}
	return c.laddr
}

// h1conns recycles connection structs (with their request, header maps, buffers and
// context): a client that opens a connection per request then costs no allocation of them.
var h1conns sync.Pool

func newH1conn(p *PlainServer, nc net.Conn) *h1conn {
	c, _ := h1conns.Get().(*h1conn)
	if c == nil {
		c = &h1conn{reqHdr: http.Header{}}
		c.ctx.c = c
		c.w.c = c
		c.w.hdr = http.Header{}
		c.body.c = c
		c.tmpl = new(http.Request).WithContext(&c.ctx)
	}
	if c.ctx.Context == nil || c.ctx.Err() != nil {
		c.ctx.Context, c.cancel = context.WithCancel(context.Background())
	}
	c.srv, c.nc, c.rc = p, nc, nil
	c.state.Store(stateActive)
	c.clientGone.Store(false)
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	c.remote = nc.RemoteAddr().String()
	c.laddr = nil // localAddr, when asked: netlab/rawio's accepted connections make a system call for it
	c.rdl, c.wdl, c.rdlExact = time.Time{}, time.Time{}, false
	c.accepted = time.Now()
	c.served = 0
	c.closeNext, c.finishing, c.watching, c.watchStop = false, false, false, false
	c.wbuf = c.wbuf[:0]
	if c.br == nil {
		c.br = smallReaders.Get().(*bufio.Reader)
	}
	c.br.Reset(nc)
	return c
}

// serve runs the connection's request loop.
func (c *h1conn) serve() {
	hijacked := false
	defer func() {
		if c.watchTimer != nil {
			c.watchTimer.Stop()
		}
		c.srv.mu.Lock()
		delete(c.srv.conns, c)
		c.srv.mu.Unlock()
		if hijacked {
			// The handler has the connection and its read buffer: nothing is recycled.
			c.cancel()
			return
		}
		_ = c.nc.Close()
		if c.big {
			c.br, c.big = nil, false
		} else {
			c.br.Reset(nil)
		}
		if c.clientGone.Load() {
			c.cancel() // done already; a fresh context comes with the next connection
		}
		c.srv, c.nc, c.rc, c.laddr, c.remote = nil, nil, nil, nil, ""
		c.leaveConn, c.leaveFired = nil, false
		c.req = http.Request{}
		c.url = url.URL{}
		clear(c.reqHdr)
		clear(c.w.hdr)
		c.w.req = nil
		if cap(c.wbuf) > 64<<10 {
			c.wbuf = nil
		}
		h1conns.Put(c)
	}()
	for {
		if !c.readRequest() {
			return
		}
		if !c.serveOne() {
			hijacked = c.w.hijacked
			return
		}
		c.served++
		if c.srv.closing.Load() {
			return
		}
	}
}

// errors reading a request head, each answered with its status.
type headError struct {
	status int
	msg    string
}

func (e *headError) Error() string { return e.msg }

var (
	errHeadTooLarge = &headError{http.StatusRequestHeaderFieldsTooLarge, ""}
	errVersion      = &headError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
)

func badRequest(msg string) error { return &headError{http.StatusBadRequest, msg} }

// readRequest reads and parses the next request head into c.req; false ends the
// connection (after an error answer when the head was bad).
func (c *h1conn) readRequest() bool {
	head, err := c.readHead()
	if err != nil {
		var he *headError
		if errors.As(err, &he) {
			c.answerError(he)
		}
		return false
	}
	if err := c.parse(head); err != nil {
		var he *headError
		if !errors.As(err, &he) {
			he = &headError{http.StatusBadRequest, err.Error()}
		}
		c.answerError(he)
		return false
	}
	return true
}

// readHead returns the next request's head (request line and fields, its final empty
// line included) and consumes it from the reader.
func (c *h1conn) readHead() (string, error) {
	cfg := &c.srv.cfg
	limit := cfg.MaxHeaderBytes + 4096
	if c.watching { // never: the watch ends with its request
		c.stopWatch()
	}
	// A new connection has ReadHeaderTimeout from its accept for its whole first head; a
	// keep-alive connection waits IdleTimeout for the next request, whose head then has
	// ReadHeaderTimeout from its first byte.
	first := c.served == 0
	if first {
		c.setReadDeadline(c.accepted.Add(cfg.ReadHeaderTimeout), true)
	}
	for {
		if c.br.Buffered() == 0 {
			if !first {
				c.armRead(cfg.IdleTimeout)
			}
			c.state.Store(stateIdle)
			_, err := c.br.Peek(1)
			if !c.state.CompareAndSwap(stateIdle, stateActive) {
				return "", net.ErrClosed // Shutdown closed the idle connection
			}
			if err != nil {
				return "", err
			}
		}
		// Empty lines before a request line are ignored (RFC 9112 section 2.2: a client
		// may send a CRLF after a POST body).
		b, _ := c.br.Peek(c.br.Buffered())
		i := 0
		for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
			i++
		}
		_, _ = c.br.Discard(i)
		if c.br.Buffered() > 0 {
			break
		}
	}
	start := time.Now()
	scanned := 0
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if end := headEnd(buf, scanned); end > 0 {
			if end > limit {
				return "", errHeadTooLarge
			}
			s := string(buf[:end])
			_, _ = c.br.Discard(end)
			return s, nil
		}
		if len(buf) >= limit {
			return "", errHeadTooLarge
		}
		scanned = max(0, len(buf)-3)
		if len(buf) == c.br.Size() {
			c.grow(limit)
		}
		// The rest of the head comes in more reads: bounded by ReadHeaderTimeout from
		// its first byte (from the accept for a first request).
		if !first {
			c.setReadDeadline(start.Add(cfg.ReadHeaderTimeout), true)
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			if len(buf) > 0 && errors.Is(err, io.EOF) {
				return "", badRequest("incomplete request head")
			}
			return "", err
		}
	}
}

// headEnd returns the length of the head at the start of b (through its empty line), or
// 0 when b does not hold a whole head yet. from is where to resume the search.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return 0
}

// grow moves the connection to a read buffer that holds a head of the limit.
func (c *h1conn) grow(limit int) {
	if c.big {
		return
	}
	buffered, _ := c.br.Peek(c.br.Buffered())
	pre := append([]byte(nil), buffered...)
	old := c.br
	c.br = bufio.NewReaderSize(&prefixReader{pre: pre, r: c.nc}, limit)
	c.big = true
	old.Reset(nil)
	smallReaders.Put(old)
}

// prefixReader reads pre, then r.
type prefixReader struct {
	pre []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.r.Read(b)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// parse fills c.req from a head, with net/http's checks (RFC 9112).
func (c *h1conn) parse(head string) error {
	line, rest, _ := strings.Cut(head, "\n")
	line = strings.TrimSuffix(line, "\r")
	method, rest1, ok1 := strings.Cut(line, " ")
	uri, proto, ok2 := strings.Cut(rest1, " ")
	if !ok1 || !ok2 {
		return badRequest("malformed request line")
	}
	if !validMethod(method) {
		return badRequest("invalid method")
	}
	var major, minor int
	switch proto {
	case "HTTP/1.1":
		major, minor = 1, 1
	case "HTTP/1.0":
		major, minor = 1, 0
	default:
		var ok bool
		if major, minor, ok = http.ParseHTTPVersion(proto); !ok {
			return badRequest("malformed HTTP version")
		}
		if major != 1 {
			return errVersion
		}
	}

	r := &c.req
	// The request's context is the connection's: the template's copy carries it.
	*r = *c.tmpl
	r.Method, r.RequestURI, r.Proto, r.ProtoMajor, r.ProtoMinor, r.RemoteAddr = method, uri, proto, major, minor, c.remote
	hdr := c.reqHdr
	clear(hdr)
	r.Header = hdr

	if err := c.parseURL(uri); err != nil {
		return err
	}
	r.URL = &c.url

	// Count the field lines, so that their values share one backing array.
	n := strings.Count(rest, "\n")
	vals := make([]string, n)
	var hosts, lengths, encodings int
	var host, length string
	var expects, continues int // Expect fields, and those that are 100-continue
	i := 0
	for rest != "" {
		var l string
		l, rest, _ = strings.Cut(rest, "\n")
		l = strings.TrimSuffix(l, "\r")
		if l == "" {
			break
		}
		if l[0] == ' ' || l[0] == '\t' {
			return badRequest("obsolete line folding")
		}
		name, v, ok := strings.Cut(l, ":")
		if !ok || !httpguts.ValidHeaderFieldName(name) {
			return badRequest("invalid header name")
		}
		v = strings.Trim(v, " \t")
		if !httpguts.ValidHeaderFieldValue(v) {
			return badRequest("invalid header value")
		}
		k := canonicalHeaderKey(name)
		switch k {
		case "Host":
			hosts++
			host = v
			continue // net/http keeps the Host in r.Host only
		case "Content-Length":
			if lengths > 0 && length != v {
				return badRequest("multiple Content-Length headers")
			}
			lengths++
			length = v
			if lengths > 1 {
				continue
			}
		case "Transfer-Encoding":
			encodings++
			if encodings > 1 {
				return &headError{http.StatusNotImplemented, "too many transfer encodings"}
			}
			c.te[0] = v
			continue
		case "Expect":
			expects++
			if strings.EqualFold(v, "100-continue") {
				continues++
			}
		}
		vals[i] = v
		if prev, ok := hdr[k]; ok {
			hdr[k] = append(prev, v)
		} else {
			hdr[k] = vals[i : i+1 : i+1]
		}
		i++
	}

	// Host: the absolute-form URI's, else the header's; HTTP/1.1 needs exactly one.
	if hosts > 1 {
		return badRequest("too many Host headers")
	}
	if hosts == 0 && minor >= 1 && method != http.MethodConnect {
		return badRequest("missing required Host header")
	}
	if hosts == 1 && !httpguts.ValidHostHeader(host) {
		return badRequest("malformed Host header")
	}
	r.Host = c.url.Host
	if r.Host == "" {
		r.Host = host
	}

	// Connection semantics.
	conn := hdr["Connection"]
	if minor == 0 {
		// A Transfer-Encoding in HTTP/1.0 is not a framing the server uses: the
		// connection closes after the answer (RFC 9112 section 6.1).
		r.Close = !headerHasToken(conn, "keep-alive") || encodings > 0
	} else {
		r.Close = headerHasToken(conn, "close")
	}

	// Body framing: chunked (HTTP/1.1 only; a Content-Length beside it is dropped, and the
	// proxy closes the connection after such a request), else Content-Length, else none.
	c.body.reset()
	c.body.done = true // until a body is found
	r.ContentLength = 0
	r.Body = http.NoBody
	if encodings > 0 && minor >= 1 {
		if !strings.EqualFold(strings.TrimSpace(c.te[0]), "chunked") {
			return &headError{http.StatusNotImplemented, "unsupported transfer encoding"}
		}
		delete(hdr, "Content-Length")
		r.ContentLength = -1
		r.TransferEncoding = c.te[:]
		c.te[0] = "chunked"
		c.body.chunked = true
		c.body.done = false
		r.Body = &c.body
	} else if lengths > 0 {
		n, err := strconv.ParseUint(length, 10, 63)
		if err != nil || length == "" || length[0] == '+' {
			return badRequest("bad Content-Length")
		}
		r.ContentLength = int64(n)
		if n > 0 {
			c.body.left = int64(n)
			c.body.done = false
			r.Body = &c.body
		}
	}
	if expects > 0 && minor >= 1 {
		// 100-continue on HTTP/1.1 is honoured (the 100 goes out when the handler first
		// reads the body); any other expectation is 417. HTTP/1.0 has none: ignored
		// (RFC 9110 section 10.1.1).
		if continues != expects {
			return &headError{http.StatusExpectationFailed, "unsupported Expect"}
		}
		c.body.expect = r.Body != http.NoBody
	}
	// As net/http: Pragma: no-cache without a Cache-Control means Cache-Control: no-cache
	// (RFC 9111 section 5.4).
	if pv, ok := hdr["Pragma"]; ok && len(pv) > 0 && pv[0] == "no-cache" {
		if _, ok := hdr["Cache-Control"]; !ok {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}
	return nil
}

// parseURL fills c.url from a request target: origin-form paths of plain characters
// without an allocation, everything else with url.ParseRequestURI as net/http does.
func (c *h1conn) parseURL(uri string) error {
	c.url = url.URL{}
	if plainTarget(uri) {
		path, query, q := strings.Cut(uri, "?")
		c.url.Path = path
		c.url.RawQuery = query
		c.url.ForceQuery = q && query == ""
		return nil
	}
	raw := uri
	authority := c.req.Method == http.MethodConnect && !strings.HasPrefix(uri, "/")
	if authority {
		raw = "http://" + uri
	}
	u, err := url.ParseRequestURI(raw)
	if err != nil {
		return badRequest("malformed request target")
	}
	if authority {
		u.Scheme = ""
	}
	c.url = *u
	return nil
}

// plainTarget reports whether uri is an origin-form target ("/..." with an optional
// query) whose path has only characters url.URL keeps as they are (unreserved ones and
// "$&+,/:;=@"); its URL is then the path and the query as they are. Anything else
// (escapes, other characters, absolute or asterisk form) goes through url.ParseRequestURI.
func plainTarget(uri string) bool {
	if uri == "" || uri[0] != '/' {
		return false
	}
	for i := 0; i < len(uri); i++ {
		ch := uri[i]
		if ch == '?' {
			for _, q := range []byte(uri[i+1:]) {
				if q <= ' ' || q >= 0x7f || q == '#' {
					return false
				}
			}
			return true
		}
		if !pathChar[ch] {
			return false
		}
	}
	return true
}

// pathChar are the bytes a path keeps unescaped in url.URL.EscapedPath.
var pathChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// canonicalHeaderKey is textproto's canonical form (no allocation when the name already
// has it, or is a common one).
func canonicalHeaderKey(s string) string {
	switch s {
	case "Host", "host":
		return "Host"
	case "Content-Length", "content-length":
		return "Content-Length"
	case "Connection", "connection":
		return "Connection"
	}
	return http.CanonicalHeaderKey(s)
}

// serveOne runs the handler for c.req and finishes the exchange; false ends the
// connection.
func (c *h1conn) serveOne() (keep bool) {
	cfg := &c.srv.cfg
	r := &c.req
	c.closeNext = r.Close
	c.w.reset(r)
	c.armWrite(cfg.WriteTimeout)
	c.body.start = time.Now()
	c.inHandler = true
	if r.Body == http.NoBody {
		c.startWatch()
	}
	func() {
		defer func() {
			if p := recover(); p != nil {
				c.closeNext = true
				if p != http.ErrAbortHandler {
					c.srv.cfg.Logger.Error("handler panic", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				}
				keep = false
			}
		}()
		c.srv.handler.ServeHTTP(&c.w, r)
		keep = true
	}()
	c.inHandler = false
	c.stopWatch()
	if c.w.hijacked {
		return false
	}
	if !keep {
		c.flush() // whatever the response got before the abort
		return false
	}
	if c.clientGone.Load() && !c.w.committed {
		return false // nobody to answer (the access log has the 499)
	}
	c.w.finish()
	if c.w.err != nil || c.clientGone.Load() {
		return false
	}
	// An unread body: read and dropped when small enough, else the connection closes.
	if !c.body.done && !c.closeNext {
		if !c.body.discard() {
			c.closeNext = true
		}
	}
	if c.closeNext {
		if c.body.err != nil || !c.body.done {
			c.linger()
		}
		return false
	}
	return true
}

// answerError writes an error answer for a bad head and drains the input briefly.
func (c *h1conn) answerError(e *headError) {
	text := http.StatusText(e.status)
	body := strconv.Itoa(e.status) + " " + text
	if e.msg != "" {
		body += ": " + e.msg
	}
	body += "\n"
	c.armWrite(c.srv.cfg.WriteTimeout)
	c.wbuf = fmt.Appendf(c.wbuf[:0], "HTTP/1.1 %d %s\r\n%sContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		e.status, text, serverLine, len(body), body)
	c.flush()
	c.linger()
}

// linger half-closes the connection and reads what the client still sends for a
// moment, so that the answer is read before the close (which, with input unread, would
// reset the connection).
func (c *h1conn) linger() {
	if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	c.setReadDeadline(time.Now().Add(lingerFor), true)
	buf := make([]byte, 4096)
	for {
		if _, err := c.nc.Read(buf); err != nil {
			return
		}
	}
}

// armRead makes the read deadline between d and 17/16 d from now: it is moved only
// when less than d is left or more than 17/16 d (a busy connection moves it about
// once per d/16, not twice per request).
func (c *h1conn) armRead(d time.Duration) {
	now := time.Now()
	if !c.rdlExact && !c.rdl.IsZero() {
		if left := c.rdl.Sub(now); left >= d && left <= d+d/16 {
			return
		}
	}
	c.setReadDeadline(now.Add(d+d/16), false)
}

func (c *h1conn) setReadDeadline(t time.Time, exact bool) {
	if t.Equal(c.rdl) && exact == c.rdlExact {
		return
	}
	c.rdl, c.rdlExact = t, exact
	_ = c.nc.SetReadDeadline(t)
}

// armWrite does for the write deadline what armRead does for the read deadline.
func (c *h1conn) armWrite(d time.Duration) {
	now := time.Now()
	if !c.wdl.IsZero() {
		if left := c.wdl.Sub(now); left >= d && left <= d+d/16 {
			return
		}
	}
	c.wdl = now.Add(d + d/16)
	_ = c.nc.SetWriteDeadline(c.wdl)
}

// flush writes the gathered output.
func (c *h1conn) flush() error {
	if len(c.wbuf) == 0 || c.w.err != nil {
		c.wbuf = c.wbuf[:0]
		return c.w.err
	}
	_, err := c.nc.Write(c.wbuf)
	c.wbuf = c.wbuf[:0]
	if err != nil {
		c.w.err = err
	}
	return err
}

// startWatch arms the client watch for the running request (see watchAfter).
func (c *h1conn) startWatch() {
	if c.rc == nil || c.watching || !c.inHandler {
		return
	}
	c.watching = true
	c.watchStop = false
	if c.watchTimer == nil {
		c.watchDone = make(chan struct{}, 1)
		c.watchTimer = time.AfterFunc(watchAfter, c.watch)
		return
	}
	c.watchTimer.Reset(watchAfter)
}

// stopWatch ends the client watch; a watch that started waits for the client is woken
// (its read deadline moved to the past) and waited for.
func (c *h1conn) stopWatch() {
	if !c.watching {
		return
	}
	c.watching = false
	if c.watchTimer.Stop() {
		return // it never ran
	}
	c.watchMu.Lock()
	c.watchStop = true
	c.watchMu.Unlock()
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-c.watchDone
	c.rdl, c.rdlExact = time.Time{}, false // re-armed by the next read
	_ = c.nc.SetReadDeadline(time.Time{})
}

// watch waits until the client connection has input, an end or an error; an end or an
// error means the client left: the connection's context is cancelled.
func (c *h1conn) watch() {
	defer func() { c.watchDone <- struct{}{} }()
	c.watchMu.Lock()
	if c.watchStop {
		c.watchMu.Unlock()
		return
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	c.watchMu.Unlock()
	gone := false
	var err error
	if p, ok := c.nc.(peeker); ok {
		var n int
		n, err = p.Peek(true)
		gone = err == nil && n == 0
	} else {
		var b [1]byte
		err = c.rc.Read(func(fd uintptr) bool {
			n, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if errors.Is(e, syscall.EAGAIN) {
				return false
			}
			gone = e != nil || n == 0
			return true
		})
	}
	if gone || (err != nil && !isTimeout(err)) {
		c.leave()
	}
}

// leave records that the client left: the request context is cancelled and the
// connection given to interruptOnLeave interrupted.
func (c *h1conn) leave() {
	c.clientGone.Store(true)
	c.cancel()
	c.leaveMu.Lock()
	if c.leaveConn != nil {
		_ = c.leaveConn.SetDeadline(aLongTimeAgo)
		c.leaveConn, c.leaveFired = nil, true
	}
	c.leaveMu.Unlock()
}

// interruptOnLeave makes the client's leaving move nc's deadlines to the past, until
// stopInterrupt: what context.AfterFunc on the request context does, without its
// registration in the context (a map entry, a goroutine's closure and two allocations
// per request, ~2 % of the agent's CPU per small request).
func (x *connCtx) interruptOnLeave(nc net.Conn) {
	c := x.c
	c.leaveMu.Lock()
	c.leaveConn, c.leaveFired = nc, false
	if c.clientGone.Load() {
		_ = nc.SetDeadline(aLongTimeAgo)
		c.leaveConn, c.leaveFired = nil, true
	}
	c.leaveMu.Unlock()
}

// stopInterrupt ends interruptOnLeave; false when the connection was interrupted.
func (x *connCtx) stopInterrupt() bool {
	c := x.c
	c.leaveMu.Lock()
	fired := c.leaveFired
	c.leaveConn, c.leaveFired = nil, false
	c.leaveMu.Unlock()
	return !fired
}

// reqBody is a request's body: Content-Length bytes or chunked.
type reqBody struct {
	c       *h1conn
	left    int64 // bytes of a Content-Length body not read yet
	chunked bool
	cr      io.Reader // the chunked decoder
	expect  bool      // a 100 Continue is owed before the first read
	done    bool      // read to its end
	err     error
	timed   bool // the read deadline is this request's ReadTimeout
	start   time.Time
}

func (b *reqBody) reset() {
	*b = reqBody{c: b.c}
}

func (b *reqBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	c := b.c
	if b.expect {
		b.expect = false
		if !c.w.committed {
			c.wbuf = append(c.wbuf[:0], "HTTP/1.1 100 Continue\r\n\r\n"...)
			if err := c.flush(); err != nil {
				b.err = err
				return 0, err
			}
		}
	}
	if !b.timed && c.br.Buffered() == 0 {
		// The body's reads from the socket end at ReadTimeout after the request began.
		b.timed = true
		c.setReadDeadline(b.start.Add(c.srv.cfg.ReadTimeout), true)
	}
	var n int
	var err error
	if b.chunked {
		if b.cr == nil {
			b.cr = httputil.NewChunkedReader(c.br)
		}
		n, err = b.cr.Read(p)
		if err == io.EOF {
			if terr := skipTrailers(c.br, c.srv.cfg.MaxHeaderBytes); terr != nil {
				err = terr
			}
		}
	} else {
		if int64(len(p)) > b.left {
			p = p[:b.left]
		}
		n, err = c.br.Read(p)
		b.left -= int64(n)
		if b.left == 0 {
			err = io.EOF
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	if err == io.EOF {
		b.done = true
		c.startWatch()
	} else if err != nil {
		b.err = err
		c.closeNext = true
		if peerGone(err) {
			// The client went away mid-body: the request is cancelled (the proxy logs
			// 499 and answers nobody), not a malformed body (400).
			c.leave()
		}
	}
	return n, err
}

// peerGone reports whether a read error means the peer closed or reset the connection.
func peerGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Close is a no-op (the server reads or drops what is left after the handler).
func (b *reqBody) Close() error { return nil }

// discard reads an unread body to its end when it is small enough to be worth keeping
// the connection; false means the connection must close.
func (b *reqBody) discard() bool {
	if b.err != nil || b.expect {
		return false // an error, or the client still waits for a 100 Continue
	}
	if !b.chunked && b.left > maxDiscard {
		return false
	}
	n, _ := io.CopyN(io.Discard, b, maxDiscard+1)
	return b.done && b.err == nil && n <= maxDiscard
}

// skipTrailers reads the trailer fields after a chunked body (the proxy forwards none),
// each checked as a header field is; at most max bytes of them.
func skipTrailers(br *bufio.Reader, max int) error {
	size := 0
	var long []byte // a line longer than the read buffer, gathered
	for {
		frag, err := br.ReadSlice('\n')
		if size += len(frag); size > max {
			return errors.New("request trailers too large")
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, frag...)
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		line := frag
		if long != nil {
			line = append(long, frag...)
			long = nil
		}
		l := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if l == "" {
			return nil
		}
		name, v, ok := strings.Cut(l, ":")
		if !ok || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(strings.Trim(v, " \t")) {
			return errors.New("malformed trailer field")
		}
	}
}

// response is the connection's http.ResponseWriter.
type response struct {
	c           *h1conn
	req         *http.Request
	hdr         http.Header
	status      int
	wroteHeader bool
	committed   bool // the head is in the output
	chunked     bool
	noBody      bool  // HEAD, 204, 304: no body may follow
	length      int64 // declared Content-Length, -1 when none
	written     int64
	pend        []byte // body held before the head is committed
	hijacked    bool
	err         error // a write to the client failed
}

func (w *response) reset(r *http.Request) {
	clear(w.hdr)
	*w = response{c: w.c, req: r, hdr: w.hdr, pend: w.pend[:0], length: -1}
}

func (w *response) Header() http.Header { return w.hdr }

func (w *response) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.informational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
}

// informational sends a 1xx answer with the current header at once.
func (w *response) informational(code int) {
	c := w.c
	c.wbuf = appendStatusLine(c.wbuf, w.req.ProtoMinor == 0, code)
	for k, vv := range w.hdr {
		for _, v := range vv {
			c.wbuf = appendHeaderLine(c.wbuf, k, v)
		}
	}
	c.wbuf = append(c.wbuf, "\r\n"...)
	_ = c.flush()
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.length < 0 {
		if v := w.hdr["Content-Length"]; len(v) > 0 {
			if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
				w.length = n
			}
		}
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if len(w.pend)+len(p) <= maxPendBody {
			w.pend = append(w.pend, p...)
			return len(p), nil
		}
		w.commit()
	}
	if w.noBody {
		return len(p), nil // a HEAD's body is eaten, as net/http does
	}
	return len(p), w.out(p)
}

// out sends body bytes after the head.
func (w *response) out(p []byte) error {
	c := w.c
	if w.chunked {
		c.wbuf = strconv.AppendInt(c.wbuf, int64(len(p)), 16)
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if len(c.wbuf)+len(p) <= maxOut {
		c.wbuf = append(c.wbuf, p...)
	} else if wv, ok := c.nc.(writev); ok && w.err == nil {
		// What is gathered (the head, say) and p in one send (netlab/rawio).
		_, err := wv.Writev(c.wbuf, p)
		c.wbuf = c.wbuf[:0]
		if err != nil {
			w.err = err
			return err
		}
	} else {
		if err := c.flush(); err != nil {
			return err
		}
		if _, err := c.nc.Write(p); err != nil {
			w.err = err
			return err
		}
	}
	if w.chunked {
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if len(c.wbuf) >= maxOut {
		return c.flush()
	}
	return nil
}

// lastWrite marks the next send as the connection's last before its close (netlab/rawio:
// its final packet then carries the FIN).
func (c *h1conn) lastWrite() {
	if lw, ok := c.nc.(interface{ LastWrite() }); ok {
		lw.LastWrite()
	}
}

// writev is a connection that sends two buffers with one system call (netlab/rawio's).
type writev interface {
	Writev(a, b []byte) (int64, error)
}

// Flush sends what the response has so far (its head at least).
func (w *response) Flush() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit()
	}
	_ = w.c.flush()
}

// FlushError is Flush with the error (http.ResponseController).
func (w *response) FlushError() error {
	w.Flush()
	return w.err
}

// ReadFrom takes a body of known length from an upstream connection: after the head
// (which a netlab/rawio connection holds when asked, to send it with the first splice),
// the client connection's own ReadFrom moves it socket to socket.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.committed {
		if len(w.pend) > 0 || w.length >= 0 || w.hdr["Content-Length"] != nil {
			w.commit()
		}
	}
	rf, ok := w.c.nc.(io.ReaderFrom)
	if !ok || !w.committed || w.chunked || w.noBody || w.err != nil {
		buf := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(buf)
		return io.CopyBuffer(writerOnly{w}, src, *buf)
	}
	if w.length >= 0 {
		if lr, ok := src.(*io.LimitedReader); !ok || w.written+lr.N > w.length {
			buf := copyBufs.Get().(*[]byte)
			defer copyBufs.Put(buf)
			return io.CopyBuffer(writerOnly{w}, src, *buf)
		}
	}
	if err := w.c.flush(); err != nil {
		return 0, err
	}
	n, err := rf.ReadFrom(src)
	w.written += n
	if err != nil {
		w.err = err
	}
	return n, err
}

type writerOnly struct{ io.Writer }

// Hijack hands the connection over (upgrades): the reader keeps what the client sent
// beyond the request.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.committed && w.err == nil {
		_ = w.c.flush()
	}
	w.hijacked = true
	c := w.c
	// Hijacked connections are the handler's: Shutdown and Close leave them alone, as
	// net/http's do.
	c.srv.mu.Lock()
	delete(c.srv.conns, c)
	c.srv.mu.Unlock()
	c.stopWatch()
	c.rdl, c.wdl = time.Time{}, time.Time{}
	_ = c.nc.SetDeadline(time.Time{})
	br := c.br
	if !c.big {
		// the pooled buffer goes with the connection
		c.big = true
	}
	return c.nc, bufio.NewReadWriter(br, bufio.NewWriter(c.nc)), nil
}

// bodyAllowed: 1xx, 204 and 304 answers have no body (RFC 9110).
func bodyAllowed(status int) bool {
	return !(status >= 100 && status < 200) && status != http.StatusNoContent && status != http.StatusNotModified
}

// commit writes the response head into the output, choosing the body's framing.
func (w *response) commit() {
	w.committed = true
	c := w.c
	r := w.req
	hdr := w.hdr
	w.noBody = r.Method == http.MethodHead || !bodyAllowed(w.status)
	if w.length < 0 {
		if v := hdr["Content-Length"]; len(v) > 0 {
			if n, err := strconv.ParseInt(strings.TrimSpace(v[0]), 10, 64); err == nil && n >= 0 {
				w.length = n
			}
		}
	}
	closing := c.closeNext || c.srv.closing.Load() || headerHasToken(hdr["Connection"], "close")
	switch {
	case w.noBody:
		if r.Method == http.MethodHead && w.length < 0 && w.finished() && len(w.pend) > 0 {
			w.length = int64(len(w.pend)) // the length a GET would have (net/http's rule)
		}
	case w.length >= 0:
	case w.finished():
		// the handler returned: the held body is all of it
		w.length = int64(len(w.pend))
	case r.ProtoMinor >= 1:
		w.chunked = true
	default:
		closing = true // HTTP/1.0 without a length: the close ends the body
	}
	if !c.body.done && r.Body != http.NoBody {
		// A client waiting for 100 Continue may or may not send its body; a body too large
		// to drop is not read: either way the connection ends with this answer.
		if c.body.expect || (!c.body.chunked && c.body.left > maxDiscard) || c.body.err != nil {
			closing = true
		}
	}
	c.closeNext = closing

	c.wbuf = appendStatusLine(c.wbuf, r.ProtoMinor == 0, w.status)
	for k, vv := range hdr {
		switch k {
		case "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			c.wbuf = appendHeaderLine(c.wbuf, k, v)
		}
	}
	if _, ok := hdr["Server"]; !ok {
		c.wbuf = append(c.wbuf, serverLine...)
	}
	if _, ok := hdr["Date"]; !ok {
		c.wbuf = append(c.wbuf, "Date: "...)
		c.wbuf = append(c.wbuf, httpDate()...)
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if w.length >= 0 && (w.status != http.StatusNoContent && !(w.status >= 100 && w.status < 200)) {
		c.wbuf = append(c.wbuf, "Content-Length: "...)
		c.wbuf = strconv.AppendInt(c.wbuf, w.length, 10)
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if w.chunked {
		c.wbuf = append(c.wbuf, "Transfer-Encoding: chunked\r\n"...)
	}
	switch {
	case closing && r.ProtoMinor >= 1:
		c.wbuf = append(c.wbuf, "Connection: close\r\n"...)
	case !closing && r.ProtoMinor == 0:
		c.wbuf = append(c.wbuf, "Connection: keep-alive\r\n"...)
	}
	c.wbuf = append(c.wbuf, "\r\n"...)
	if len(w.pend) > 0 && !w.noBody {
		p := w.pend
		w.pend = w.pend[:0]
		_ = w.out(p)
		w.pend = p[:0]
	}
}

// finishing is set while finish commits (the body held is all there is).
func (w *response) finished() bool { return w.status != 0 && w.c.finishing }

// finish completes the response after the handler returned and sends it.
func (w *response) finish() {
	c := w.c
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		c.finishing = true
		w.commit()
		c.finishing = false
	}
	if w.chunked && w.err == nil {
		c.wbuf = append(c.wbuf, "0\r\n"...)
		for k, vv := range w.hdr {
			if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidHeaderFieldName(name) {
				for _, v := range vv {
					c.wbuf = appendHeaderLine(c.wbuf, name, v)
				}
			}
		}
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if !w.noBody && w.length >= 0 && w.written < w.length {
		c.closeNext = true // the body came short: the framing is lost
	}
	if c.closeNext {
		c.lastWrite()
	}
	_ = c.flush()
}

// appendStatusLine writes the status line; an HTTP/1.0 request gets an HTTP/1.0 one,
// as net/http does.
func appendStatusLine(b []byte, http10 bool, code int) []byte {
	if http10 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		switch code {
		case http.StatusOK:
			return append(b, "HTTP/1.1 200 OK\r\n"...)
		case http.StatusNotFound:
			return append(b, "HTTP/1.1 404 Not Found\r\n"...)
		}
		b = append(b, "HTTP/1.1 "...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	b = append(b, text...)
	return append(b, "\r\n"...)
}

// appendHeaderLine writes one header line; CR and LF in the value become spaces (as
// net/http writes them), so no value can end the head early.
func appendHeaderLine(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	if strings.IndexByte(v, '\r') < 0 && strings.IndexByte(v, '\n') < 0 {
		b = append(b, v...)
		return append(b, "\r\n"...)
	}
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch == '\r' || ch == '\n' {
			ch = ' '
		}
		b = append(b, ch)
	}
	return append(b, "\r\n"...)
}

// httpDate is the current time in the Date header's format, made once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.sec == now {
		return d.s
	}
	d := &cachedDate{sec: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.s
}

type cachedDate struct {
	sec int64
	s   string
}

var dateCache atomic.Pointer[cachedDate]
