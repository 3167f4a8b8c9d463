package podagent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The pod's HTTP/1.x server. It is not net/http's: importing net/http brings crypto/tls and
// every crypto package's initialisation into the process (about a third of a pod's start-up
// CPU, paid by each of a big lab's thousand pods), and a pod needs only what this file
// does. It follows net/http's server where a client can tell: request parsing
// (net/textproto's header reader, net/url's request-target parser, Host from the target
// or the header, the Host and Transfer-Encoding headers not among the request's headers),
// keep-alive (HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with "Connection:
// keep-alive"), pipelining, no "100 Continue" (the echo never reads a body: as net/http
// does then, a request that expected one gets its answer and the connection closes), a
// body left unread discarded up to 256 KiB after the answer (more, and the connection
// closes once the client had time to read the answer), 400/431/501/505 for what net/http
// refuses, the header and idle timeouts, and graceful shutdown (idle connections closed,
// active ones finished). Answers carry Content-Length (net/http chunks those over 2 KiB).

// handlerFunc answers one request: it returns the status, content type and body, and the
// extra response headers (key, value pairs).
type handlerFunc func(r *request) (status int, contentType string, body []byte, extra []string)

// request is what the echo reads from a request.
type request struct {
	Method, Host, Path, RawQuery, Proto string
	Header                              map[string][]string
	RemoteAddr                          string
}

const (
	maxHeaderBytes      = 1 << 20 // net/http's DefaultMaxHeaderBytes
	headerSlack         = 4096    // net/http reads this much more before it answers 431
	maxPostHandlerRead  = 256 << 10
	httpTimeFormat      = "Mon, 02 Jan 2006 15:04:05 GMT"
	errHeaderTooLargeSt = 431
)

// connState is a connection's place in its life, for closing the idle ones.
type connState int32

const (
	stateNew connState = iota
	stateActive
	stateIdle
	stateClosed
)

type echoServer struct {
	handler           handlerFunc
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration

	noKeepAlive atomic.Bool
	inShutdown  atomic.Bool

	mu    sync.Mutex
	ln    net.Listener
	conns map[*echoConn]struct{}
	wg    sync.WaitGroup
}

type echoConn struct {
	srv   *echoServer
	rwc   net.Conn
	state atomic.Int32
	// lim bounds what one request head may read (reset per request).
	lim int64
}

var errServerClosed = errors.New("pod server closed")

// serve accepts connections on ln until shutdown; it returns errServerClosed then.
func (s *echoServer) serve(ln net.Listener) error {
	s.mu.Lock()
	if s.inShutdown.Load() { // shut down before it began: as net/http's Serve after Shutdown
		s.mu.Unlock()
		ln.Close()
		return errServerClosed
	}
	s.ln = ln
	if s.conns == nil {
		s.conns = map[*echoConn]struct{}{}
	}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return errServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
				errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		ec := &echoConn{srv: s, rwc: c}
		s.mu.Lock()
		if s.inShutdown.Load() {
			s.mu.Unlock()
			c.Close()
			return errServerClosed
		}
		s.conns[ec] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go ec.serve()
	}
}

// setKeepAlivesEnabled(false) answers every request from now on with "Connection: close"
// and closes the idle connections, as net/http's does.
func (s *echoServer) setKeepAlivesEnabled(on bool) {
	s.noKeepAlive.Store(!on)
	if !on {
		s.closeIdle()
	}
}

func (s *echoServer) closeIdle() (active int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		// A new connection (its first request on the way) counts as active, as net/http
		// counts one younger than 5 s.
		st := connState(c.state.Load())
		if st == stateIdle && c.state.CompareAndSwap(int32(st), int32(stateClosed)) {
			c.rwc.Close()
			continue
		}
		if st != stateClosed {
			active++
		}
	}
	return active
}

// shutdown closes the listener and the idle connections, then waits for the active ones
// to finish their request (each closes once it is idle) until ctx ends.
func (s *echoServer) shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.closeIdle() > 0 {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				c.rwc.Close()
			}
			s.mu.Unlock()
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func (c *echoConn) setState(st connState) bool {
	for {
		old := c.state.Load()
		if connState(old) == stateClosed {
			return false
		}
		if c.state.CompareAndSwap(old, int32(st)) {
			return true
		}
	}
}

func (c *echoConn) Read(p []byte) (int, error) {
	if c.lim <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > c.lim {
		p = p[:c.lim]
	}
	n, err := c.rwc.Read(p)
	c.lim -= int64(n)
	return n, err
}

var errHeadTooLarge = errors.New("request head too large")

func (c *echoConn) serve() {
	s := c.srv
	defer func() {
		c.state.Store(int32(stateClosed))
		c.rwc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	c.lim = maxHeaderBytes + headerSlack
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c.rwc, 4096)
	tp := textproto.NewReader(br)
	first := true
	for {
		// Waiting for a request: the idle timeout (the header timeout for the first).
		if first {
			_ = c.rwc.SetReadDeadline(time.Now().Add(s.readHeaderTimeout))
		} else {
			if !c.setState(stateIdle) || s.inShutdown.Load() || s.noKeepAlive.Load() {
				return
			}
			_ = c.rwc.SetReadDeadline(time.Now().Add(s.idleTimeout))
		}
		c.lim = maxHeaderBytes + headerSlack
		if _, err := br.Peek(1); err != nil {
			return
		}
		if !c.setState(stateActive) {
			return
		}
		if !first {
			_ = c.rwc.SetReadDeadline(time.Now().Add(s.readHeaderTimeout))
		}
		first = false
		req, body, status, err := readRequest(tp, br)
		if err != nil {
			if status != 0 {
				writeError(bw, status, err)
			}
			return
		}
		_ = c.rwc.SetReadDeadline(time.Time{})
		c.lim = 1<<63 - 1 // the body has no size limit
		req.RemoteAddr = c.rwc.RemoteAddr().String()
		keep := keepAlive(req) && !s.noKeepAlive.Load() && !s.inShutdown.Load()
		// The handler never reads the body. As net/http does then: a body is read and
		// dropped before the answer, up to 256 KiB (more, and the answer closes the
		// connection); a request that expected "100 Continue" gets its answer without
		// one, with "Connection: close", and its body (which the client may still send)
		// is read and dropped after it, before the connection closes.
		tooBig := false
		if !body.empty() {
			if body.expectContinue {
				keep = false
			} else {
				switch body.discard(br, maxPostHandlerRead) {
				case discardTooBig:
					tooBig, keep = true, false
				case discardFailed:
					keep = false
				}
			}
		}
		code, ctype, out, extra := s.handler(req)
		writeResponse(bw, req, code, ctype, out, extra, keep)
		if err := bw.Flush(); err != nil {
			return
		}
		switch {
		case tooBig:
			c.closeWriteAndWait(br)
			return
		case body.expectContinue && !body.empty():
			if body.discard(br, maxPostHandlerRead) == discardTooBig {
				c.closeWriteAndWait(br)
			}
			return
		case !keep:
			return
		}
	}
}

// closeWriteAndWait ends the connection's sending side and reads what the client still
// sends for a moment before the connection closes: closed with unread data, it would be
// reset, and the client could lose the answer it has not read yet.
func (c *echoConn) closeWriteAndWait(br *bufio.Reader) {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.rwc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.Copy(io.Discard, io.LimitReader(br, maxPostHandlerRead))
}

// keepAlive says whether the client keeps the connection after this request.
func keepAlive(r *request) bool {
	conn := r.Header["Connection"]
	has := func(tok string) bool {
		for _, v := range conn {
			for _, f := range strings.Split(v, ",") {
				if strings.EqualFold(strings.TrimSpace(f), tok) {
					return true
				}
			}
		}
		return false
	}
	if r.Proto == "HTTP/1.0" {
		return has("keep-alive")
	}
	return !has("close")
}

// reqBody is how a request's body is framed, for discarding it after the answer.
type reqBody struct {
	length         int64 // -1: chunked
	expectContinue bool
}

func (b reqBody) empty() bool { return b.length == 0 }

// What discard did with a body.
type discardResult int

const (
	discardDone   discardResult = iota // read to its end
	discardTooBig                      // longer than the limit: left on the wire
	discardFailed                      // malformed, or the connection failed
)

// discard reads and drops the body, at most limit bytes of it.
func (b reqBody) discard(br *bufio.Reader, limit int64) discardResult {
	if b.length >= 0 {
		if b.length >= limit {
			return discardTooBig
		}
		if n, err := br.Discard(int(b.length)); err != nil || int64(n) != b.length {
			return discardFailed
		}
		return discardDone
	}
	var read int64
	for {
		line, err := readLine(br)
		if err != nil {
			return discardFailed
		}
		if i := strings.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
		if err != nil || size < 0 {
			return discardFailed
		}
		if size == 0 {
			break
		}
		if read += size; read > limit {
			return discardTooBig
		}
		if _, err := br.Discard(int(size)); err != nil {
			return discardFailed
		}
		if crlf, err := readLine(br); err != nil || crlf != "" {
			return discardFailed
		}
	}
	for { // trailers, up to the empty line
		line, err := readLine(br)
		if err != nil {
			return discardFailed
		}
		if line == "" {
			return discardDone
		}
		if read += int64(len(line)); read > limit {
			return discardTooBig
		}
	}
}

func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// readRequest reads a request head. On an error, status is the answer (0: none, the
// connection just ends).
func readRequest(tp *textproto.Reader, br *bufio.Reader) (*request, reqBody, int, error) {
	var body reqBody
	line, err := tp.ReadLine()
	if err != nil {
		if errors.Is(err, errHeadTooLarge) {
			return nil, body, errHeaderTooLargeSt, err
		}
		return nil, body, 0, err
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return nil, body, 400, errors.New("malformed HTTP request")
	}
	if !validToken(method) {
		return nil, body, 400, errors.New("invalid method")
	}
	// Any HTTP/1.x is served (as 1.1 when x > 1, as net/http does); another major
	// version is refused.
	if len(proto) != 8 || !strings.HasPrefix(proto, "HTTP/") || proto[6] != '.' ||
		proto[5] < '0' || proto[5] > '9' || proto[7] < '0' || proto[7] > '9' {
		return nil, body, 400, errors.New("malformed HTTP version")
	}
	if proto[5] != '1' {
		return nil, body, 505, errors.New("unsupported protocol version")
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, body, 400, err
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, errHeadTooLarge):
			return nil, body, errHeaderTooLargeSt, err
		case errors.As(err, &ne) && ne.Timeout():
			return nil, body, 0, err // the client stalled: the connection just ends
		}
		// (A head cut by the end of the stream is a 400, as net/http answers it.)
		return nil, body, 400, err
	}
	for k, vs := range hdr {
		if !validToken(k) {
			return nil, body, 400, errors.New("invalid header name")
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return nil, body, 400, errors.New("invalid header value")
			}
		}
	}
	r := &request{Method: method, Path: u.Path, RawQuery: u.RawQuery, Proto: proto, Header: hdr}
	hosts := hdr["Host"]
	if len(hosts) > 1 {
		return nil, body, 400, errors.New("too many Host headers")
	}
	if proto != "HTTP/1.0" && len(hosts) == 0 {
		return nil, body, 400, errors.New("missing required Host header")
	}
	if len(hosts) == 1 && !validHost(hosts[0]) {
		return nil, body, 400, errors.New("malformed Host header")
	}
	r.Host = u.Host
	if r.Host == "" && len(hosts) == 1 {
		r.Host = hosts[0]
	}
	delete(hdr, "Host")
	if exp := strings.Join(hdr["Expect"], ","); exp != "" {
		if !strings.EqualFold(exp, "100-continue") {
			return nil, body, 417, errors.New("unsupported expectation")
		}
		body.expectContinue = proto != "HTTP/1.0"
	}
	if te, ok := hdr["Transfer-Encoding"]; ok && proto == "HTTP/1.0" {
		delete(hdr, "Transfer-Encoding") // ignored on HTTP/1.0, as net/http does
	} else if ok {
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return nil, body, 501, errors.New("unsupported transfer encoding")
		}
		delete(hdr, "Transfer-Encoding")
		delete(hdr, "Content-Length")
		delete(hdr, "Trailer") // net/http moves it to the request's trailer
		body.length = -1
		return r, body, 0, nil
	}
	if cl := hdr["Content-Length"]; len(cl) > 0 {
		for _, v := range cl[1:] {
			if strings.TrimSpace(v) != strings.TrimSpace(cl[0]) {
				return nil, body, 400, errors.New("conflicting Content-Length")
			}
		}
		n, err := strconv.ParseUint(strings.TrimSpace(cl[0]), 10, 63)
		if err != nil {
			return nil, body, 400, errors.New("bad Content-Length")
		}
		body.length = int64(n)
	}
	return r, body, 0, nil
}

// validHost says whether a Host header holds only what a host and port may (RFC 3986's
// unreserved and sub-delimiter characters, ':' and '[' ']' for a port and an IPv6 literal,
// '%' for escapes).
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:[]%", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validToken says whether s is an RFC 7230 token (a method).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue says whether v holds no control byte but tab (RFC 7230 field-value).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

var statusText = map[int]string{200: "OK", 400: "Bad Request", 417: "Expectation Failed", errHeaderTooLargeSt: "Request Header Fields Too Large",
	501: "Not Implemented", 505: "HTTP Version Not Supported"}

func writeResponse(bw *bufio.Writer, r *request, code int, ctype string, body []byte, extra []string, keep bool) {
	proto := "HTTP/1.1 "
	if r.Proto == "HTTP/1.0" {
		proto = "HTTP/1.0 "
	}
	bw.WriteString(proto)
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	bw.WriteString(statusText[code])
	bw.WriteString("\r\nContent-Type: ")
	bw.WriteString(ctype)
	for i := 0; i+1 < len(extra); i += 2 {
		bw.WriteString("\r\n")
		bw.WriteString(extra[i])
		bw.WriteString(": ")
		bw.WriteString(extra[i+1])
	}
	bw.WriteString("\r\nDate: ")
	bw.WriteString(time.Now().UTC().Format(httpTimeFormat))
	bw.WriteString("\r\nContent-Length: ")
	bw.WriteString(strconv.Itoa(len(body)))
	switch {
	case !keep:
		bw.WriteString("\r\nConnection: close")
	case r.Proto == "HTTP/1.0":
		bw.WriteString("\r\nConnection: keep-alive")
	}
	bw.WriteString("\r\n\r\n")
	if r.Method != "HEAD" {
		bw.Write(body)
	}
}

// writeError answers a request net/http would refuse, as it does, and the connection ends.
func writeError(bw *bufio.Writer, code int, err error) {
	text := strconv.Itoa(code) + " " + statusText[code]
	msg := text
	if code == 400 {
		msg += ": " + err.Error()
	}
	bw.WriteString("HTTP/1.1 " + text + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" + msg)
	_ = bw.Flush()
}
