package ingress

// Address plan: the proxy (PlainServer on rawio, as the agent serves plain HTTP) and its
// upstreams listen on 127.0.0.1 with kernel-chosen ports; raw TCP clients write the
// requests byte for byte. No root, no namespaces.

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/rawio"
)

// plainProxy is the proxy with the web and api echo upstreams of webAPITable, served by
// PlainServer with cfg.
func plainProxy(t *testing.T, cfg Server, opts Options) (*proxyServer, *Handler) {
	t.Helper()
	web, api := echoUpstream(t, "web"), echoUpstream(t, "api")
	opts.Resolve = staticResolver(map[string]string{"default/web": hostOf(web), "default/api": hostOf(api)})
	h, err := NewHandler(opts, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return startProxyWith(t, cfg, h), h
}

// rawConn is one client connection read response by response.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawClient) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// read returns the next response and its whole body.
func (r *rawClient) read(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("reading a body: %v", err)
	}
	resp.Body.Close()
	return resp, string(b)
}

// closed reports whether the server closed the connection (EOF with nothing more).
func (r *rawClient) closed() bool {
	_ = r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	n, err := r.br.Read(make([]byte, 1))
	return n == 0 && err == io.EOF
}

func TestPlainMalformedRequests(t *testing.T) {
	px, _ := plainProxy(t, Server{MaxHeaderBytes: 4 << 10}, Options{})
	addr := hostOf(px)
	cases := []struct{ name, req, want string }{
		{"no spaces in the request line", "GET\r\n\r\n", "HTTP/1.1 400 "},
		{"bad method", "G(T / HTTP/1.1\r\nHost: app.example\r\n\r\n", "HTTP/1.1 400 "},
		{"bad version", "GET / HTTP/x\r\nHost: app.example\r\n\r\n", "HTTP/1.1 400 "},
		{"HTTP/2 on a plain port", "GET / HTTP/2.0\r\nHost: app.example\r\n\r\n", "HTTP/1.1 505 "},
		{"space before the colon", "GET / HTTP/1.1\r\nHost : app.example\r\n\r\n", "HTTP/1.1 400 "},
		{"obsolete line folding", "GET / HTTP/1.1\r\nHost: app.example\r\nX-A: 1\r\n 2\r\n\r\n", "HTTP/1.1 400 "},
		{"control character in a value", "GET / HTTP/1.1\r\nHost: app.example\r\nX-A: a\x01b\r\n\r\n", "HTTP/1.1 400 "},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: app.example\r\nHost: other.example\r\n\r\n", "HTTP/1.1 400 "},
		{"Host with a non-numeric port", "GET / HTTP/1.1\r\nHost: app.example:http\r\n\r\n", "HTTP/1.1 400 "},
		{"Host with an empty label", "GET / HTTP/1.1\r\nHost: app..example\r\n\r\n", "HTTP/1.1 400 "},
		{"Host with two trailing dots", "GET / HTTP/1.1\r\nHost: app.example..\r\n\r\n", "HTTP/1.1 400 "},
		{"Host that is only a dot", "GET / HTTP/1.1\r\nHost: .\r\n\r\n", "HTTP/1.1 400 "},
		{"Host with an unclosed bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "HTTP/1.1 400 "},
		{"absolute-form URI with a bad port", "GET http://app.example:x/ HTTP/1.1\r\nHost: app.example\r\n\r\n", "HTTP/1.1 400 "},
		{"bad Content-Length", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: +3\r\n\r\nabc", "HTTP/1.1 400 "},
		{"two different Content-Lengths", "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400 "},
		{"control character in the target", "GET /a\x7fb HTTP/1.1\r\nHost: app.example\r\n\r\n", "HTTP/1.1 400 "},
		{"transfer coding other than chunked", "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501 "},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: app.example\r\nExpect: magic\r\n\r\n", "HTTP/1.1 417 "},
		{"head over the limit", "GET / HTTP/1.1\r\nHost: app.example\r\nX-Big: " + strings.Repeat("a", 9<<10) + "\r\n\r\n", "HTTP/1.1 431 "},
		{"many fields over the limit", "GET / HTTP/1.1\r\nHost: app.example\r\n" + strings.Repeat("X-Many: aaaaaaaaaaaaaaaaaaaa\r\n", 400) + "\r\n", "HTTP/1.1 431 "},
	}
	for _, c := range cases {
		out, closed := rawConnExchange(t, addr, c.req)
		if !strings.HasPrefix(out, c.want) || !closed {
			first, _, _ := strings.Cut(out, "\r\n")
			t.Errorf("%s: got %q (closed %v), want %q and a close", c.name, first, closed, c.want)
		}
	}
	// One trailing dot (a fully qualified name) and a leading one are hosts, as for nginx.
	for _, host := range []string{"app.example.", ".app.example"} {
		rc := dialRaw(t, addr)
		rc.send("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
		if resp, _ := rc.read("GET"); resp.StatusCode == http.StatusBadRequest {
			t.Errorf("Host %q: 400", host)
		}
	}
	// A head between the read buffer (4 KiB) and the limit is served.
	rc := dialRaw(t, addr)
	rc.send("GET /big HTTP/1.1\r\nHost: app.example\r\nX-Big: " + strings.Repeat("b", 6<<10) + "\r\n\r\n")
	resp, body := rc.read("GET")
	if resp.StatusCode != 200 || decodeEcho(t, []byte(body)).Headers.Get("X-Big") != strings.Repeat("b", 6<<10) {
		t.Errorf("a 6 KiB head: %d", resp.StatusCode)
	}
}

// Requests sent back to back on one connection are answered in order, bodies included,
// and an unread body (a 404) is skipped to the next request.
func TestPlainPipelining(t *testing.T) {
	px, _ := plainProxy(t, DefaultServer, Options{})
	rc := dialRaw(t, hostOf(px))
	rc.send("GET /one HTTP/1.1\r\nHost: app.example\r\n\r\n" +
		"POST /api/two HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /nowhere HTTP/1.1\r\nHost: nowhere.example\r\nContent-Length: 3\r\n\r\nxyz" +
		"GET /three?q=1 HTTP/1.1\r\nHost: app.example\r\n\r\n" +
		"HEAD /four HTTP/1.1\r\nHost: app.example\r\n\r\n" +
		"GET /five HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
	want := []struct {
		method, path, name string
		status             int
	}{
		{"GET", "/one", "web", 200}, {"POST", "/api/two", "api", 200}, {"POST", "", "", 404},
		{"GET", "/three?q=1", "web", 200}, {"HEAD", "", "", 200}, {"GET", "/five", "web", 200},
	}
	for i, w := range want {
		resp, body := rc.read(w.method)
		if resp.StatusCode != w.status {
			t.Fatalf("response %d: status %d, want %d", i+1, resp.StatusCode, w.status)
		}
		if w.path == "" {
			if w.method == "HEAD" && body != "" {
				t.Errorf("HEAD answered with a body %q", body)
			}
			continue
		}
		e := decodeEcho(t, []byte(body))
		if e.Path != w.path || e.Name != w.name || e.Method != w.method {
			t.Errorf("response %d: %s %s from %s, want %s %s from %s", i+1, e.Method, e.Path, e.Name, w.method, w.path, w.name)
		}
	}
	if !rc.closed() {
		t.Error("the connection stays open after Connection: close")
	}
}

// Keep-alive and close, as RFC 9112 section 9.3 has them for HTTP/1.1 and HTTP/1.0.
func TestPlainConnectionSemantics(t *testing.T) {
	px, _ := plainProxy(t, DefaultServer, Options{})
	addr := hostOf(px)

	// HTTP/1.1 keeps the connection by default.
	rc := dialRaw(t, addr)
	for i := range 3 {
		rc.send("GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
		if resp, _ := rc.read("GET"); resp.StatusCode != 200 || resp.Close {
			t.Fatalf("HTTP/1.1 request %d: %d, close %v", i, resp.StatusCode, resp.Close)
		}
	}
	// Connection: close is answered with Connection: close, then the close.
	rc.send("GET / HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
	if resp, _ := rc.read("GET"); !resp.Close { // (Go's reader drops the Connection: close it saw)
		t.Error("Connection: close answered without Connection: close")
	}
	if !rc.closed() {
		t.Error("still open after Connection: close")
	}

	// HTTP/1.0 closes unless it asks to keep the connection; then the answer says so.
	rc = dialRaw(t, addr)
	rc.send("GET / HTTP/1.0\r\nHost: app.example\r\nConnection: keep-alive\r\n\r\n")
	resp, body := rc.read("GET")
	if resp.StatusCode != 200 || resp.Header.Get("Connection") != "keep-alive" || resp.ContentLength != int64(len(body)) {
		t.Errorf("HTTP/1.0 keep-alive: %d Connection %q length %d", resp.StatusCode, resp.Header.Get("Connection"), resp.ContentLength)
	}
	rc.send("GET / HTTP/1.0\r\n\r\n") // no Host: allowed in HTTP/1.0 (no route either: 404)
	if resp, _ := rc.read("GET"); resp.StatusCode != 404 {
		t.Errorf("HTTP/1.0 without keep-alive: %d", resp.StatusCode)
	}
	if !rc.closed() {
		t.Error("HTTP/1.0 connection still open")
	}
}

// Chunked bodies through the loop: a request body whose chunks arrive in separate
// reads reaches the upstream whole, and a response of unknown length is streamed to the
// client chunk by chunk (its first piece arrives while the upstream still holds the
// second).
func TestPlainChunkedBodiesStream(t *testing.T) {
	next := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		_, _ = io.WriteString(w, "got "+string(b)+"\n")
		w.(http.Flusher).Flush()
		<-next
		_, _ = io.WriteString(w, "second piece\n")
	}))
	t.Cleanup(up.Close)
	px := proxyTo(t, hostOf(up))
	rc := dialRaw(t, hostOf(px))
	rc.send("POST /echo HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
	time.Sleep(50 * time.Millisecond)
	rc.send("1\r\n+\r\n6;ext=1\r\nsecond\r\n0\r\nX-Trailer: t\r\n\r\n")
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("status %d, transfer encoding %v", resp.StatusCode, resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "got first+second\n" {
		t.Fatalf("first piece: %q %v", line, err)
	}
	close(next)
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "second piece\n" {
		t.Fatalf("second piece: %q %v", rest, err)
	}
	// The proxy ends a connection after a chunked request (RFC 9112 section 6.3: the
	// framing a smuggler relies on is not trusted for a next request).
	if !resp.Close || !rc.closed() {
		t.Error("the connection stays open after a chunked request")
	}
}

// Expect: 100-continue: the 100 comes when the proxy reads the body, then the answer.
func TestPlainExpectContinue(t *testing.T) {
	px, _ := plainProxy(t, DefaultServer, Options{})
	rc := dialRaw(t, hostOf(px))
	rc.send("POST /api/upload HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, err := rc.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("first line %q %v, want a 100 Continue", line, err)
	}
	if blank, _ := rc.br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue carries fields: %q", blank)
	}
	rc.send("data")
	resp, body := rc.read("POST")
	if resp.StatusCode != 200 || decodeEcho(t, []byte(body)).Name != "api" {
		t.Errorf("after the body: %d %s", resp.StatusCode, body)
	}
	// Answered without reading the body (no route): no 100, and the connection closes
	// (the client may or may not send the body).
	rc = dialRaw(t, hostOf(px))
	rc.send("POST / HTTP/1.1\r\nHost: nowhere.example\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := rc.read("POST"); resp.StatusCode != 404 || !resp.Close {
		t.Errorf("unrouted expect-continue: %d close %v", resp.StatusCode, resp.Close)
	}
	if !rc.closed() {
		t.Error("still open after an unread expect-continue body")
	}
}

// A client that leaves while the upstream has not answered ends the upstream exchange:
// the access log records 499.
func TestPlainClientLeavesDuringUpstreamWait(t *testing.T) {
	h, logBuf, arrived, gone := hangingUpstream(t)
	px := startProxy(t, h)
	c, err := net.Dial("tcp", hostOf(px))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: hang.example\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-arrived
	c.Close()
	assertLeftAnd499(t, gone, logBuf)
}

// Shutdown closes idle connections at once and lets a running request finish.
func TestPlainShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(slow.Close)
	h, err := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/hang": hostOf(slow)})}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	px := startProxy(t, h)
	idle := dialRaw(t, hostOf(px))
	busy := dialRaw(t, hostOf(px))
	busy.send("GET / HTTP/1.1\r\nHost: hang.example\r\n\r\n")
	<-started // the request is with the upstream
	done := make(chan error, 1)
	go func() { done <- px.srv.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Error("an idle connection stays open during Shutdown")
	}
	close(release)
	resp, body := busy.read("GET")
	if resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Errorf("the running request: %d %q close %v", resp.StatusCode, body, resp.Close)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", hostOf(px)); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
}

// Serve closes its listener when it returns, also when the server was shut down before
// Serve took it (the agent hands the listener over in the serving goroutine).
func TestPlainServeAfterShutdownClosesListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := DefaultServer.Plain(http.NotFoundHandler())
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(rawio.Listener(ln)); err != http.ErrServerClosed {
		t.Fatalf("Serve after Shutdown: %v; want http.ErrServerClosed", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the listener given to Serve after Shutdown still accepts connections")
	}
}

// FuzzPlainParse checks the loop's request parser against net/http's: a head the loop
// accepts must be one net/http reads too, with the same method, target, Host, body
// framing and fields (the loop may reject more: obsolete line folding, for one).
func FuzzPlainParse(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /p?q=1 HTTP/1.0\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 3\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
		"PUT http://h.example/abs HTTP/1.1\r\nHost: other\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /%41%2f?x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET /a? HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a!b?c#d HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, head string) {
		end := headEnd([]byte(head), 0)
		if end == 0 {
			return
		}
		head = head[:end]
		c := &h1conn{reqHdr: http.Header{}}
		c.tmpl = new(http.Request)
		c.body.c = c
		if err := c.parse(head); err != nil {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("accepted %q; net/http: %v", head, err)
		}
		got := &c.req
		if got.Method != want.Method || got.RequestURI != want.RequestURI || got.Host != want.Host ||
			got.URL.String() != want.URL.String() || got.ProtoMinor != want.ProtoMinor {
			t.Fatalf("%q: got %s %s host %q url %q, net/http %s %s host %q url %q", head,
				got.Method, got.RequestURI, got.Host, got.URL, want.Method, want.RequestURI, want.Host, want.URL)
		}
		if got.ContentLength != want.ContentLength || len(got.TransferEncoding) != len(want.TransferEncoding) {
			t.Fatalf("%q: length %d %v, net/http %d %v", head, got.ContentLength, got.TransferEncoding, want.ContentLength, want.TransferEncoding)
		}
		delete(want.Header, "Host")
		for k, vv := range want.Header {
			if strings.Join(got.Header[k], "\x00") != strings.Join(vv, "\x00") {
				t.Fatalf("%q: field %s = %q, net/http %q", head, k, got.Header[k], vv)
			}
		}
		if len(got.Header) != len(want.Header) {
			t.Fatalf("%q: fields %v, net/http %v", head, got.Header, want.Header)
		}
	})
}

// closedWithin reports whether the server closes the connection before the test's own
// safety deadline (generous: the server's timeouts are well below it).
func (r *rawClient) closedWithin(d time.Duration) bool {
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, r.br)
	return err == nil // EOF from the server, not our deadline
}

// After a request whose body the proxy never read (an early answer: the loop reads and
// drops the body), the connection keeps every read timeout: idle, head and body.
func TestPlainTimeoutsAfterDroppedBody(t *testing.T) {
	const early = "POST / HTTP/1.1\r\nHost: nowhere.example\r\nContent-Length: 3\r\n\r\nxyz"
	// Timeouts a little longer than the client watch's start (watchAfter), which must not
	// outlive its request and clear them.
	cfg := Server{IdleTimeout: 1500 * time.Millisecond, ReadHeaderTimeout: 1500 * time.Millisecond, ReadTimeout: 2 * time.Second}
	px, _ := plainProxy(t, cfg, Options{})
	for _, c := range []struct{ name, then string }{
		{"idle", ""},
		{"half a head", "GET / HTTP/1.1\r\nHost: app.example\r\n"},
		{"a stalled body", "POST /api/x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 10\r\n\r\nabc"},
	} {
		rc := dialRaw(t, hostOf(px))
		rc.send(early)
		if resp, _ := rc.read("POST"); resp.StatusCode != 404 {
			t.Fatalf("%s: early answer %d", c.name, resp.StatusCode)
		}
		if c.then != "" {
			rc.send(c.then)
		}
		if !rc.closedWithin(8 * time.Second) {
			t.Errorf("%s: the connection is still open 8 s later (timeouts 1.5–2 s)", c.name)
		}
	}
}

// RFC 9112 section 2.2: an empty line before a request line (a CRLF after a POST body)
// is ignored.
func TestPlainEmptyLineBeforeRequest(t *testing.T) {
	px, _ := plainProxy(t, DefaultServer, Options{})
	rc := dialRaw(t, hostOf(px))
	rc.send("POST /api/x HTTP/1.1\r\nHost: app.example\r\nContent-Length: 3\r\n\r\nabc\r\n" +
		"GET /two HTTP/1.1\r\nHost: app.example\r\n\r\n")
	for _, want := range []string{"/api/x", "/two"} {
		resp, body := rc.read("GET")
		if resp.StatusCode != 200 || decodeEcho(t, []byte(body)).Path != want {
			t.Errorf("want %s: %d %s", want, resp.StatusCode, body)
		}
	}
}

// Expectations: HTTP/1.0 has none (ignored); on HTTP/1.1 every Expect field must be
// 100-continue.
func TestPlainExpectRules(t *testing.T) {
	px, _ := plainProxy(t, DefaultServer, Options{})
	out, _ := rawConnExchange(t, hostOf(px), "POST /api/x HTTP/1.0\r\nHost: app.example\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
	if !strings.HasPrefix(out, "HTTP/1.0 200 ") || strings.Contains(out, " 100 ") {
		t.Errorf("HTTP/1.0 with Expect: %q", firstLine(out))
	}
	out, _ = rawConnExchange(t, hostOf(px), "POST /api/x HTTP/1.1\r\nHost: app.example\r\nExpect: foo\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi")
	if !strings.HasPrefix(out, "HTTP/1.1 417 ") {
		t.Errorf("two Expect fields, one unknown: %q", firstLine(out))
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\r\n"); return l }

// A client that leaves in the middle of its upload is logged 499 (it went away), not 400
// (a malformed body), and nothing is written to it.
func TestPlainClientLeavesMidUpload(t *testing.T) {
	var logBuf syncBuffer
	px, _ := plainProxy(t, DefaultServer, Options{AccessLog: &logBuf})
	c, err := net.Dial("tcp", hostOf(px))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "POST /api/up HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100000\r\n\r\npart"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	c.Close()
	lines := logBuf.WaitLines(1)
	var e struct{ Status int }
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &e) != nil || e.Status != StatusClientClosed {
		t.Errorf("access log %q, want status %d", lines, StatusClientClosed)
	}
}

// A client that half-closes after its request while the upstream takes its time is
// logged 499 and gets no made-up answer; HTTP/1.0 with a Transfer-Encoding closes.
func TestPlainHalfClosedClientAndHTTP10Encoding(t *testing.T) {
	started := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)
	var logBuf syncBuffer
	h, err := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/hang": hostOf(slow)}), AccessLog: &logBuf}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	px := startProxy(t, h)
	rc := dialRaw(t, hostOf(px))
	rc.send("GET / HTTP/1.1\r\nHost: hang.example\r\n\r\n")
	<-started
	_ = rc.c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(rc.br)
	if len(b) != 0 {
		t.Errorf("a half-closed client got %q", b)
	}
	lines := logBuf.WaitLines(1)
	var e struct{ Status int }
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &e) != nil || e.Status != StatusClientClosed {
		t.Errorf("access log %q, want status %d", lines, StatusClientClosed)
	}

	px2, _ := plainProxy(t, DefaultServer, Options{})
	rc = dialRaw(t, hostOf(px2))
	rc.send("GET / HTTP/1.0\r\nHost: app.example\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n")
	if resp, _ := rc.read("GET"); resp.StatusCode != 200 || !rc.closed() {
		t.Errorf("HTTP/1.0 with Transfer-Encoding: %d, connection not closed", resp.StatusCode)
	}
}

// Request trailers are checked like header fields, long ones included.
func TestPlainRequestTrailers(t *testing.T) {
	px, _ := plainProxy(t, DefaultServer, Options{})
	head := "POST /api/t HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"
	out, _ := rawConnExchange(t, hostOf(px), head+"garbage line\x00\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 400 ") {
		t.Errorf("malformed trailer: %q", firstLine(out))
	}
	out, _ = rawConnExchange(t, hostOf(px), head+"X-Long: "+strings.Repeat("l", 6<<10)+"\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 200 ") {
		t.Errorf("a 6 KiB trailer: %q", firstLine(out))
	}
}

// Shutdown does not wait for upgraded connections (they are the handler's), and a HEAD
// answer carries the length a GET would have.
func TestPlainShutdownLeavesUpgradesAndHEADLength(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			_, _ = io.WriteString(w, "hello")
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_, _ = brw.ReadString('\n')
	}))
	t.Cleanup(up.Close)
	px := proxyTo(t, hostOf(up))
	// HEAD through a handler that writes a body without a length
	hd := dialRaw(t, hostOf(px))
	hd.send("HEAD / HTTP/1.1\r\nHost: app.example\r\n\r\n")
	if resp, _ := hd.read("HEAD"); resp.StatusCode != 200 || resp.ContentLength != 5 {
		t.Errorf("HEAD: %d, length %d, want 5", resp.StatusCode, resp.ContentLength)
	}
	ws := dialRaw(t, hostOf(px))
	ws.send("GET / HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	if resp, err := http.ReadResponse(ws.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := px.srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with an upgraded connection open: %v", err)
	}
	ws.send("still here\n") // the upgraded stream still works after the shutdown
}

// A connection goroutine that has served its connection serves the next one (here, one
// connection per request, as with Connection: close); Shutdown ends the wait of those
// left idle.
func TestPlainReusesConnectionGoroutines(t *testing.T) {
	var px *proxyServer
	idleDuring := make(chan int32, 1) // the idle goroutines while a request is with the upstream
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idleDuring <- px.srv.idle.Load()
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(up.Close)
	h, err := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(up)})}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	px = startProxy(t, h)
	waitIdle := func(want int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); px.srv.idle.Load() != want; {
			if time.Now().After(deadline) {
				t.Fatalf("%d idle connection goroutines, want %d", px.srv.idle.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range 3 {
		rc := dialRaw(t, hostOf(px))
		rc.send("GET / HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n")
		if resp, body := rc.read("GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		if n := <-idleDuring; i > 0 && n != 0 {
			t.Errorf("request %d: %d goroutines idle while it ran, want 0 (the idle one took the connection)", i, n)
		}
		if !rc.closed() {
			t.Fatalf("request %d: the connection stays open after Connection: close", i)
		}
		waitIdle(1) // the goroutine waits for the next connection
	}
	if err := px.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitIdle(0)
}
