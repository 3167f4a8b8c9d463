package ingress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/rawio"
)

func proxyTo(t *testing.T, upstream string) *proxyServer {
	t.Helper()
	return proxyToWith(t, startProxy, upstream)
}

// proxyToWith is proxyTo served by start (forEachFront's).
func proxyToWith(t *testing.T, start front, upstream string) *proxyServer {
	t.Helper()
	table, _ := Build([]Ingress{mkIngress("default", "i", mkRule("app.example", mkPath("/", prefix, "web")))}, "")
	h, err := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": upstream})}, table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return start(t, h)
}

// Bodies of unknown length are streamed piece by piece (each piece reaches the client
// before the upstream sends the next), trailers follow, and request bodies of unknown
// length go upstream chunked with their content intact.
func TestProxyStreamsBodiesAndTrailers(t *testing.T) {
	forEachFront(t, testProxyStreamsBodiesAndTrailers)
}

func testProxyStreamsBodiesAndTrailers(t *testing.T, start front) {
	next := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Got", string(body)+" "+strings.Join(r.TransferEncoding, ","))
		_, _ = io.WriteString(w, "one\n")
		w.(http.Flusher).Flush()
		<-next
		_, _ = io.WriteString(w, "two\n")
		w.Header().Set("X-Sum", "2 lines")
	}))
	t.Cleanup(up.Close)
	px := proxyToWith(t, start, hostOf(up))
	req, _ := http.NewRequest("POST", px.URL+"/", io.MultiReader(strings.NewReader("a"), strings.NewReader("b")))
	req.Host = "app.example"
	req.ContentLength = -1
	resp, err := px.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("X-Got"); got != "ab chunked" {
		t.Errorf("upstream got body and framing %q, want \"ab chunked\"", got)
	}
	br := bufio.NewReader(resp.Body)
	if l, err := br.ReadString('\n'); l != "one\n" {
		t.Fatalf("first piece: %q %v", l, err)
	}
	close(next) // the second piece is sent only now: the first was streamed
	rest, _ := io.ReadAll(br)
	if string(rest) != "two\n" || resp.Trailer.Get("X-Sum") != "2 lines" {
		t.Errorf("rest %q, trailer %q", rest, resp.Trailer.Get("X-Sum"))
	}
}

// A pooled connection the upstream has closed while idle is noticed before use, so a
// POST after it goes on a fresh connection and succeeds (and is sent once).
func TestProxyDropsConnectionsClosedWhileIdle(t *testing.T) {
	var posts atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			posts.Add(1)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	up.Config.IdleTimeout = 50 * time.Millisecond
	up.Start()
	t.Cleanup(up.Close)
	// With Go's sockets, and with netlab/rawio's (the agent's), whose raw peek checks them.
	for _, wrap := range []bool{false, true} {
		posts.Store(0)
		px := proxyToWeb(t, up, wrap)
		if resp, _ := doReq(t, px.Client(), "GET", px.URL+"/", "app.example", nil, nil); resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		time.Sleep(300 * time.Millisecond) // the upstream closes the idle pooled connection
		resp, body := doReq(t, px.Client(), "POST", px.URL+"/", "app.example", nil, strings.NewReader("x=1"))
		if resp.StatusCode != 200 || string(body) != "ok" || posts.Load() != 1 {
			t.Errorf("raw upstream sockets %v: POST after the upstream closed the idle connection: %s %q, upstream saw %d POSTs",
				wrap, resp.Status, body, posts.Load())
		}
	}
}

// An upgrade (WebSocket-like) is passed through: 101, then bytes both ways.
func TestProxyUpgrade(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "no upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		l, _ := brw.ReadString('\n')
		_, _ = io.WriteString(c, "echo: "+l)
	}))
	t.Cleanup(up.Close)
	px := proxyTo(t, hostOf(up))
	c, br := upgradeEcho(t, px)
	defer c.Close()
	_, _ = io.WriteString(c, "hello\n")
	if l, err := br.ReadString('\n'); l != "echo: hello\n" {
		t.Errorf("after the upgrade: %q %v", l, err)
	}
}

// A client that half-closes an upgraded connection: the upstream reads the end (the
// proxy half-closes its side too, with Go's sockets and with netlab/rawio's), and what it
// sends after it still reaches the client.
func TestProxyUpgradeHalfClose(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(brw) // until the client's end
		if err != nil {
			return
		}
		_, _ = io.WriteString(c, "got "+string(b)+", bye")
	}))
	t.Cleanup(up.Close)
	for _, wrap := range []bool{false, true} {
		px := proxyToWeb(t, up, wrap)
		c, br := upgradeEcho(t, px)
		_, _ = io.WriteString(c, "hello")
		_ = c.(*net.TCPConn).CloseWrite()
		if b, err := io.ReadAll(br); string(b) != "got hello, bye" || err != nil {
			t.Errorf("raw upstream sockets %v: after the client's half-close read %q, %v; want the upstream's answer to the end", wrap, b, err)
		}
		c.Close()
	}
}

// The upstream's framing and hop-by-hop headers stay on its side; 204 and HEAD have no
// body; a malformed upstream head is a 502.
func TestProxyResponseHeads(t *testing.T) { forEachFront(t, testProxyResponseHeads) }

func testProxyResponseHeads(t *testing.T, start front) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					switch req.URL.Path {
					case "/hop":
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok")
					case "/multi":
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nx-app-tag: a\r\nSet-Cookie: s1\r\nX-APP-TAG: b\r\nset-cookie: s2\r\nx-other: o\r\nContent-Length: 0\r\n\r\n")
					case "/nocontent":
						_, _ = io.WriteString(c, "HTTP/1.1 204 No Content\r\nX-Kept: yes\r\n\r\n")
					case "/bad":
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n")
						return
					}
				}
			}(c)
		}
	}()
	px := proxyToWith(t, start, ln.Addr().String())
	c := px.Client()
	resp, body := doReq(t, c, "GET", px.URL+"/hop", "app.example", nil, nil)
	if resp.StatusCode != 200 || string(body) != "ok" || resp.Header.Get("X-Kept") != "yes" || resp.Header.Get("X-Secret") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("/hop: %s %q %v", resp.Status, body, resp.Header)
	}
	// Field names are canonicalized whatever their spelling (the second time from the
	// proxy's cache), repeated fields keep their values in order.
	for range 2 {
		resp, _ = doReq(t, c, "GET", px.URL+"/multi", "app.example", nil, nil)
		h := resp.Header
		if fmt.Sprint(h["X-App-Tag"]) != "[a b]" || fmt.Sprint(h["Set-Cookie"]) != "[s1 s2]" || fmt.Sprint(h["X-Other"]) != "[o]" {
			t.Errorf("/multi: %v", h)
		}
	}
	resp, body = doReq(t, c, "GET", px.URL+"/nocontent", "app.example", nil, nil)
	if resp.StatusCode != 204 || len(body) != 0 || resp.Header.Get("X-Kept") != "yes" {
		t.Errorf("/nocontent: %s %q", resp.Status, body)
	}
	resp, body = doReq(t, c, "HEAD", px.URL+"/hop", "app.example", nil, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 2 {
		t.Errorf("HEAD /hop: %s %q length %d", resp.Status, body, resp.ContentLength)
	}
	if resp, body := doReq(t, c, "GET", px.URL+"/bad", "app.example", nil, nil); resp.StatusCode != 502 {
		t.Errorf("/bad: %s %q, want 502", resp.Status, body)
	}
}

// Bodies of known length larger than the head's buffer go from the upstream socket to the
// client's through the kernel (splice on plain TCP), or up to 64 KiB through one buffer:
// they arrive intact, the access log counts every byte, the upstream connection is reused
// afterwards, and a body cut short by the upstream aborts the client's response instead
// of completing it.
func TestProxyLargeKnownLengthBodies(t *testing.T) {
	forEachFront(t, func(t *testing.T, start front) {
		for _, size := range []int{1 << 20, 60 << 10} {
			t.Run(strconv.Itoa(size), func(t *testing.T) { testKnownLengthBodies(t, start, size) })
		}
	})
}

func testKnownLengthBodies(t *testing.T, start front, size int) {
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	var conns atomic.Int32
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		if r.URL.Path == "/short" {
			_, _ = w.Write(body[:size/2])
			w.(http.Flusher).Flush()
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
			return
		}
		_, _ = w.Write(body)
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	var logBuf syncBuffer
	h, _ := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(up)}), AccessLog: &logBuf}, webAPITable(t))
	t.Cleanup(h.Close)
	px := start(t, h)
	for i := range 2 {
		resp, got := doReq(t, px.Client(), "GET", px.URL+"/", "app.example", nil, nil)
		if resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("request %d: %s, %d bytes, intact %v", i, resp.Status, len(got), bytes.Equal(got, body))
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("two sequential requests used %d upstream connections, want 1 (reused)", n)
	}
	req, _ := http.NewRequest("GET", px.URL+"/short", nil)
	req.Host = "app.example"
	resp, err := px.Client().Do(req)
	if err == nil {
		var got []byte
		got, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("client read a complete response (%d bytes) from one cut at half", len(got))
		}
	}
	lines := logBuf.WaitLines(3)
	if len(lines) != 3 {
		t.Fatalf("access log: %q", lines)
	}
	for i, l := range lines {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		switch {
		case i < 2 && (e["bytes"] != float64(size) || e["error"] != nil):
			t.Errorf("line %d: %v, want %d bytes and no error", i, e, size)
		case i == 2 && (e["status"] != float64(200) || !strings.Contains(fmt.Sprint(e["error"]), "aborted")):
			t.Errorf("cut body logged as %v", e)
		}
	}
}

// proxyToWeb is a proxy routing app.example/ to the upstream server up (Service
// default/web), with Go's upstream sockets or, when wrap is set, netlab/rawio's (the
// agent's).
func proxyToWeb(t *testing.T, up *httptest.Server, wrap bool) *proxyServer {
	t.Helper()
	opts := Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(up)})}
	if wrap {
		opts.WrapUpstream = rawio.Wrap
	}
	table, _ := Build([]Ingress{mkIngress("default", "i", mkRule("app.example", mkPath("/", prefix, "web")))}, "")
	h, err := NewHandler(opts, table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return startProxy(t, h)
}

// upgradeEcho asks the proxy px for an upgrade to the "echo" protocol on app.example and
// returns the connection (deadline 5 s) and its reader once the 101 has been read.
func upgradeEcho(t *testing.T, px *proxyServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", hostOf(px))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		c.Close()
		t.Fatalf("upgrade answer: %v %v", resp, err)
	}
	return c, br
}

// A request without a body goes upstream without one: no Transfer-Encoding (a GET that
// net/http's HTTP/2 server hands over with an empty Body was sent chunked, and was not
// replayable), and a POST with an empty body gets "Content-Length: 0".
func TestProxyBodilessRequestsGoWithoutABody(t *testing.T) {
	forEachFront(t, func(t *testing.T, start front) {
		var mu sync.Mutex
		got := map[string]string{} // method → framing the upstream saw
		up := rawUpstream(t, func() func(*http.Request) bool {
			return func(req *http.Request) bool {
				mu.Lock()
				got[req.Method] = fmt.Sprintf("te=%q cl=%q", req.TransferEncoding, req.Header.Get("Content-Length"))
				mu.Unlock()
				return true
			}
		})
		px := proxyToWith(t, start, up)
		for _, m := range []string{"GET", "POST"} {
			if resp, body := doReq(t, px.Client(), m, px.URL+"/", "app.example", nil, nil); resp.StatusCode != 200 {
				t.Fatalf("%s: %s %q", m, resp.Status, body)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for m, want := range map[string]string{"GET": `te=[] cl=""`, "POST": `te=[] cl="0"`} {
			if got[m] != want {
				t.Errorf("%s without a body reached the upstream with %s, want %s", m, got[m], want)
			}
		}
	})
}
