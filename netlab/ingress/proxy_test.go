package ingress

// Address plan: everything listens on 127.0.0.1 with kernel-chosen ports — the proxy
// (httptest servers or a Server on a 127.0.0.1:0 listener) and its upstreams
// (httptest servers standing in for Service ClusterIP:port). No root, no namespaces.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/netlabdev/netlab/netlab/rawio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// echoed is what the echo upstream returns: who answered and what it received.
type echoed struct {
	Name    string      `json:"name"`
	Method  string      `json:"method"`
	Host    string      `json:"host"`
	Path    string      `json:"path"`
	Headers http.Header `json:"headers"`
}

func echoUpstream(t *testing.T, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(HeaderRequestID, "upstream-must-not-leak")
		_ = json.NewEncoder(w).Encode(echoed{Name: name, Method: r.Method, Host: r.Host, Path: r.URL.RequestURI(), Headers: r.Header})
	}))
	t.Cleanup(s.Close)
	return s
}

// staticResolver maps "namespace/service" to an upstream address.
func staticResolver(m map[string]string) Resolver {
	return func(ns, svc string, _ ServiceBackendPort) (string, error) {
		if a, ok := m[ns+"/"+svc]; ok {
			return a, nil
		}
		return "", fmt.Errorf("service %s/%s not found", ns, svc)
	}
}

// hostOf is the host:port of a test server (an httptest one or the proxy).
func hostOf(s any) string {
	switch v := s.(type) {
	case *httptest.Server:
		return strings.TrimPrefix(v.URL, "http://")
	case *proxyServer:
		return v.Listener.Addr().String()
	}
	panic(fmt.Sprintf("hostOf(%T)", s))
}

// proxyServer is the proxy served as the agent serves it on its plain-HTTP port: the
// agent's server settings, PlainServer's connection loop, rawio.Listener (raw socket
// calls, splice); or, from startProxyTLS, on its TLS port (net/http, HTTP/2).
type proxyServer struct {
	URL      string
	Listener net.Listener
	srv      *PlainServer // nil for TLS
	https    *http.Server // nil for plain HTTP
	client   *http.Client
}

func (p *proxyServer) Client() *http.Client { return p.client }

func (p *proxyServer) Close() {
	if p.srv != nil {
		p.srv.Close()
	}
	if p.https != nil {
		p.https.Close()
	}
	p.client.CloseIdleConnections()
}

// startProxy serves h on 127.0.0.1 as the agent's plain-HTTP listener does.
func startProxy(t *testing.T, h http.Handler) *proxyServer {
	t.Helper()
	return startProxyWith(t, DefaultServer, h)
}

func startProxyWith(t *testing.T, cfg Server, h http.Handler) *proxyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxyServer{URL: "http://" + ln.Addr().String(), Listener: ln, srv: cfg.Plain(h),
		client: &http.Client{Transport: &http.Transport{}}}
	go func() { _ = p.srv.Serve(rawio.Listener(ln)) }()
	t.Cleanup(p.Close)
	return p
}

func doReq(t *testing.T, c *http.Client, method, url, host string, hdr map[string]string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s (Host %s): %v", method, url, host, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decodeEcho(t *testing.T, b []byte) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("upstream answer %q: %v", b, err)
	}
	return e
}

func webAPITable(t *testing.T) *Table {
	t.Helper()
	table, warns := Build([]Ingress{
		mkIngress("default", "shop",
			mkRule("app.example", mkPath("/", prefix, "web"), mkPath("/api", prefix, "api")),
			mkRule("hang.example", mkPath("/", prefix, "hang")),
			mkRule("closed.example", mkPath("/", prefix, "closed")),
			mkRule("ghost.example", mkPath("/", prefix, "ghost")),
		),
	}, "")
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	return table
}

func TestProxyRoutesAndHeaders(t *testing.T) {
	web, api := echoUpstream(t, "web"), echoUpstream(t, "api")
	var logBuf syncBuffer
	h, err := NewHandler(Options{
		Node:      "node-1",
		Resolve:   staticResolver(map[string]string{"default/web": hostOf(web), "default/api": hostOf(api)}),
		AccessLog: &logBuf,
		// The client is trusted here (use-forwarded-headers): its chain is extended and
		// its request id kept. TestProxyReplacesClientForwardedHeaders covers the default.
		TrustForwardedHeaders: true,
	}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, h)
	_, pxPort, _ := net.SplitHostPort(hostOf(px))
	c := px.Client()

	// Host/path routing; forwarding headers; the client's Host is kept.
	resp, body := doReq(t, c, "GET", px.URL+"/api/users?x=1", "App.Example:8080", map[string]string{
		"X-Forwarded-For": "198.51.100.7, 10.0.0.1",
		"X-Real-Ip":       "6.6.6.6",
		"Forwarded":       "for=6.6.6.6",
		"Connection":      "X-Drop-Me",
		"X-Drop-Me":       "secret",
	}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	e := decodeEcho(t, body)
	checks := []struct{ what, got, want string }{
		{"upstream", e.Name, "api"},
		{"path", e.Path, "/api/users?x=1"},
		{"Host", e.Host, "App.Example:8080"},
		{"X-Forwarded-For", e.Headers.Get("X-Forwarded-For"), "198.51.100.7, 10.0.0.1, 127.0.0.1"},
		{"X-Real-Ip", e.Headers.Get("X-Real-Ip"), "127.0.0.1"},
		{"X-Forwarded-Proto", e.Headers.Get("X-Forwarded-Proto"), "http"},
		{"X-Forwarded-Host", e.Headers.Get("X-Forwarded-Host"), "App.Example:8080"},
		{"X-Forwarded-Port", e.Headers.Get("X-Forwarded-Port"), pxPort},
		{"Forwarded", e.Headers.Get("Forwarded"), ""},
		{"hop-by-hop X-Drop-Me", e.Headers.Get("X-Drop-Me"), ""},
		{"response node", resp.Header.Get(HeaderNode), "node-1"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %q, want %q", ck.what, ck.got, ck.want)
		}
	}
	// A generated request id: the same upstream and downstream, only one value.
	id := resp.Header.Get(HeaderRequestID)
	if len(id) != 32 || e.Headers.Get(HeaderRequestID) != id || len(resp.Header.Values(HeaderRequestID)) != 1 {
		t.Errorf("request id: client got %q (%d values), upstream got %q", id, len(resp.Header.Values(HeaderRequestID)), e.Headers.Get(HeaderRequestID))
	}

	// No X-Forwarded-For in: just the client. A request id given by the client is kept.
	resp, body = doReq(t, c, "GET", px.URL+"/", "app.example", map[string]string{HeaderRequestID: "abc-123"}, nil)
	e = decodeEcho(t, body)
	if e.Name != "web" || e.Headers.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("got upstream %s XFF %q", e.Name, e.Headers.Get("X-Forwarded-For"))
	}
	if resp.Header.Get(HeaderRequestID) != "abc-123" || e.Headers.Get(HeaderRequestID) != "abc-123" {
		t.Errorf("request id not kept: client %q upstream %q", resp.Header.Get(HeaderRequestID), e.Headers.Get(HeaderRequestID))
	}
	// A request id with control characters or too long is replaced.
	resp, _ = doReq(t, c, "GET", px.URL+"/", "app.example", map[string]string{HeaderRequestID: strings.Repeat("x", 200)}, nil)
	if got := resp.Header.Get(HeaderRequestID); len(got) != 32 {
		t.Errorf("oversized request id kept: %q", got)
	}

	// The access log has one JSON line per request with the routing decision.
	lines := logBuf.WaitLines(3)
	if len(lines) != 3 {
		t.Fatalf("want 3 access log lines, got %d: %q", len(lines), lines)
	}
	var entry map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &entry); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"requestID": id, "client": "127.0.0.1", "host": "App.Example:8080", "path": "/api/users",
		"rule": "default/shop host=app.example path=/api (Prefix)", "service": "default/api:80",
		"upstream": hostOf(api), "status": float64(200), "node": "node-1", "method": "GET",
	} {
		if entry[k] != want {
			t.Errorf("access log %s = %v, want %v", k, entry[k], want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(entry["time"])); err != nil {
		t.Errorf("access log time: %v", err)
	}
	if _, ok := entry["durationMs"].(float64); !ok {
		t.Errorf("access log durationMs missing: %v", entry)
	}
}

func TestProxyNoRuleIs404(t *testing.T) { forEachFront(t, testProxyNoRuleIs404) }

func testProxyNoRuleIs404(t *testing.T, start front) {
	web := echoUpstream(t, "web")
	h, err := NewHandler(Options{Node: "n", Resolve: staticResolver(map[string]string{"default/web": hostOf(web)})}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	px := start(t, h)
	resp, body := doReq(t, px.Client(), "GET", px.URL+"/", "unknown.example", nil, nil)
	if resp.StatusCode != 404 || !strings.Contains(string(body), "no ingress rule matched") {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get(HeaderNode) != "n" || resp.Header.Get(HeaderRequestID) == "" {
		t.Errorf("404 lacks node/request id headers: %v", resp.Header)
	}
	// A nil table serves nothing.
	h.Reload(nil)
	resp, _ = doReq(t, px.Client(), "GET", px.URL+"/", "app.example", nil, nil)
	if resp.StatusCode != 404 {
		t.Errorf("nil table: got %d", resp.StatusCode)
	}
}

func TestProxyUnknownServiceIs503(t *testing.T) { forEachFront(t, testProxyUnknownServiceIs503) }

func testProxyUnknownServiceIs503(t *testing.T, start front) {
	h, _ := NewHandler(Options{Resolve: staticResolver(nil)}, webAPITable(t))
	px := start(t, h)
	resp, body := doReq(t, px.Client(), "GET", px.URL+"/", "ghost.example", nil, nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "default/ghost:80") {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}

// closedAddr returns a 127.0.0.1 address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestProxyClosedPortIs502(t *testing.T) { forEachFront(t, testProxyClosedPortIs502) }

func testProxyClosedPortIs502(t *testing.T, start front) {
	// The upstream timeout is long: a 502 can only come from the refused connection.
	h, _ := NewHandler(Options{
		Resolve:         staticResolver(map[string]string{"default/closed": closedAddr(t)}),
		UpstreamTimeout: time.Minute,
	}, webAPITable(t))
	px := start(t, h)
	resp, body := doReq(t, px.Client(), "GET", px.URL+"/", "closed.example", nil, nil)
	if resp.StatusCode != 502 || !strings.Contains(string(body), "upstream unreachable") {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}

func TestProxyHangingUpstreamIs504(t *testing.T) { forEachFront(t, testProxyHangingUpstreamIs504) }

func testProxyHangingUpstreamIs504(t *testing.T, start front) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	h, _ := NewHandler(Options{
		Resolve:         staticResolver(map[string]string{"default/hang": hostOf(hang)}),
		UpstreamTimeout: 100 * time.Millisecond,
	}, webAPITable(t))
	px := start(t, h)
	resp, body := doReq(t, px.Client(), "GET", px.URL+"/", "hang.example", nil, nil)
	if resp.StatusCode != 504 || !strings.Contains(string(body), "timed out") {
		t.Errorf("got %d %q", resp.StatusCode, body)
	}
}

// TestProxyNeverRetriesPOST uses a raw upstream that answers GETs with keep-alive and
// drops the connection on a POST without answering. The POST goes out on the reused
// keep-alive connection — the case where an HTTP client may retry — and must reach the
// upstream exactly once and come back 502.
func TestProxyNeverRetriesPOST(t *testing.T) { forEachFront(t, testProxyNeverRetriesPOST) }

func testProxyNeverRetriesPOST(t *testing.T, start front) {
	var posts, gets atomic.Int32
	up := rawUpstream(t, func() func(*http.Request) bool {
		return func(req *http.Request) bool {
			if req.Method == "POST" {
				posts.Add(1)
				return false // close without an answer
			}
			gets.Add(1)
			return true
		}
	})
	h, _ := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": up})}, webAPITable(t))
	px := start(t, h)
	c := px.Client()
	if resp, _ := doReq(t, c, "GET", px.URL+"/", "app.example", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("warm-up GET: %d", resp.StatusCode)
	}
	resp, _ := doReq(t, c, "POST", px.URL+"/", "app.example", nil, strings.NewReader("order=1"))
	if resp.StatusCode != 502 {
		t.Errorf("POST to a dropping upstream: got %d, want 502", resp.StatusCode)
	}
	if n := posts.Load(); n != 1 {
		t.Errorf("upstream saw the POST %d times, want exactly 1", n)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("upstream saw %d GETs, want 1", n)
	}
}

// TestReloadKeepsInFlight holds a request in the old upstream, swaps the table, checks
// new requests use the new table, then lets the old request finish.
func TestReloadKeepsInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	oldUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "old")
	}))
	t.Cleanup(oldUp.Close)
	newUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "new")
	}))
	t.Cleanup(newUp.Close)

	oldTable, _ := Build([]Ingress{mkIngress("default", "v1", mkRule("app.example", mkPath("/", prefix, "old")))}, "")
	newTable, _ := Build([]Ingress{mkIngress("default", "v2", mkRule("app.example", mkPath("/", prefix, "new")))}, "")
	h, _ := NewHandler(Options{Resolve: staticResolver(map[string]string{
		"default/old": hostOf(oldUp), "default/new": hostOf(newUp),
	})}, oldTable)
	px := startProxy(t, h)

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", px.URL+"/", nil)
		req.Host = "app.example"
		resp, err := px.Client().Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	h.Reload(newTable)
	if h.Table() != newTable {
		t.Fatal("Table() is not the reloaded table")
	}
	_, body := doReq(t, &http.Client{Transport: &http.Transport{}}, "GET", px.URL+"/", "app.example", nil, nil)
	if string(body) != "new" {
		t.Errorf("request after reload got %q, want new", body)
	}
	close(release)
	r := <-done
	if r.err != nil || r.status != 200 || r.body != "old" {
		t.Errorf("in-flight request: %+v, want 200 old", r)
	}
}

func TestMetrics(t *testing.T) {
	web := echoUpstream(t, "web")
	h, _ := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(web)})}, webAPITable(t))
	px := startProxy(t, h)
	for range 3 {
		doReq(t, px.Client(), "GET", px.URL+"/", "app.example", nil, nil)
	}
	doReq(t, px.Client(), "GET", px.URL+"/", "nobody.example", nil, nil)

	// The handler counts a request after its response is written: poll until all 4 are in.
	var text string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		rec := httptest.NewRecorder()
		h.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		text = rec.Body.String()
		if strings.Contains(text, `code="404"`) && strings.Contains(text, `service="default/web:80"} 3`) {
			break
		}
	}
	for _, want := range []string{
		`netlab_ingress_requests_total{code="200",ingress="default/shop",service="default/web:80"} 3`,
		`netlab_ingress_requests_total{code="404",ingress="",service=""} 1`,
		`netlab_ingress_upstream_duration_seconds_count{ingress="default/shop",service="default/web:80"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
}

func TestClassify(t *testing.T) {
	ctx := t.Context()
	if got := classify(ctx, &net.OpError{Op: "dial", Err: errors.New("i/o timeout")}); got != 502 {
		t.Errorf("dial error: %d", got)
	}
	if got := classify(ctx, timeoutErr{}); got != 504 {
		t.Errorf("timeout: %d", got)
	}
	if got := classify(ctx, io.ErrUnexpectedEOF); got != 502 {
		t.Errorf("EOF: %d", got)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// syncBuffer is a goroutine-safe bytes.Buffer for the access log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// hangingUpstream is a Handler whose Service default/hang (webAPITable's hang.example)
// never answers: arrived closes when a request reaches the upstream, gone when the proxy
// ends that request's upstream connection; the access log goes to logBuf.
func hangingUpstream(t *testing.T) (h *Handler, logBuf *syncBuffer, arrived, gone chan struct{}) {
	t.Helper()
	arrived, gone = make(chan struct{}), make(chan struct{})
	var once sync.Once
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		<-r.Context().Done() // the proxy closed the upstream connection
		close(gone)
	}))
	t.Cleanup(hang.Close)
	logBuf = &syncBuffer{}
	h, err := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/hang": hostOf(hang)}), AccessLog: logBuf}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h, logBuf, arrived, gone
}

// assertLeftAnd499 checks what a client leaving mid-request leaves: the upstream's request
// ended (gone closes) and one access-log line with status 499.
func assertLeftAnd499(t *testing.T, gone <-chan struct{}, logBuf *syncBuffer) {
	t.Helper()
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request still runs 10 s after the client left")
	}
	lines := logBuf.WaitLines(1)
	if len(lines) != 1 {
		t.Fatalf("access log: %q", lines)
	}
	var e struct{ Status int }
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e.Status != StatusClientClosed {
		t.Errorf("access log %q: status %d, want %d", lines[0], e.Status, StatusClientClosed)
	}
}

// WaitLines waits (up to 5s) for n lines: a line is written after the response.
func (s *syncBuffer) WaitLines(n int) []string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		l := s.Lines()
		if len(l) >= n || time.Now().After(deadline) {
			return l
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *syncBuffer) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s.b.String(), "\n"), "\n")
}

func TestReloadWithSwapsResolver(t *testing.T) {
	a, b := echoUpstream(t, "a"), echoUpstream(t, "b")
	h, _ := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(a)})}, webAPITable(t))
	px := startProxy(t, h)
	_, body := doReq(t, px.Client(), "GET", px.URL+"/", "app.example", nil, nil)
	if e := decodeEcho(t, body); e.Name != "a" {
		t.Fatalf("before reload: upstream %s", e.Name)
	}
	h.ReloadWith(h.Table(), staticResolver(map[string]string{"default/web": hostOf(b)}))
	_, body = doReq(t, px.Client(), "GET", px.URL+"/", "app.example", nil, nil)
	if e := decodeEcho(t, body); e.Name != "b" {
		t.Errorf("after ReloadWith: upstream %s, want b", e.Name)
	}
	h.Reload(nil) // keeps the resolver, drops the routes
	if resp, _ := doReq(t, px.Client(), "GET", px.URL+"/", "app.example", nil, nil); resp.StatusCode != 404 {
		t.Errorf("after Reload(nil): %d", resp.StatusCode)
	}
}

// TestAbortedResponseIsLogged: an upstream that dies mid-body makes the proxy abort the
// response (the client sees a truncated body); the request is still logged and counted.
func TestAbortedResponseIsLogged(t *testing.T) { forEachFront(t, testAbortedResponseIsLogged) }

func testAbortedResponseIsLogged(t *testing.T, start front) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}))
	t.Cleanup(up.Close)
	var logBuf syncBuffer
	h, _ := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(up)}), AccessLog: &logBuf}, webAPITable(t))
	px := start(t, h)
	req, _ := http.NewRequest("GET", px.URL+"/", nil)
	req.Host = "app.example"
	resp, err := px.Client().Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("client read a complete response from an aborted one")
	}
	lines := logBuf.WaitLines(1)
	if len(lines) != 1 {
		t.Fatalf("access log: %q", lines)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatal(err)
	}
	// The status is what the proxy had started to send (the upstream's 200).
	if e["status"] != float64(200) || !strings.Contains(fmt.Sprint(e["error"]), "aborted") {
		t.Errorf("aborted response logged as %v", e)
	}
}

// A client that leaves while the upstream has not answered ends the upstream exchange
// (the upstream's connection is closed) and the access log records 499. The client
// cancels its request: over HTTP/1.1 its connection closes (PlainServer's watch sees it),
// over HTTP/2 the stream is reset and net/http cancels the request's context
// (context.AfterFunc moves the upstream's deadline).
func TestProxyClientLeavesDuringUpstreamWait(t *testing.T) {
	forEachFront(t, func(t *testing.T, start front) {
		h, logBuf, arrived, gone := hangingUpstream(t)
		px := start(t, h)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", px.URL+"/", nil)
		req.Host = "hang.example"
		done := make(chan error, 1)
		go func() {
			resp, err := px.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		<-arrived
		cancel()
		if err := <-done; err == nil {
			t.Error("the cancelled request got an answer")
		}
		assertLeftAnd499(t, gone, logBuf)
	})
}
