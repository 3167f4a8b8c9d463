package ingress

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// By default the client is the internet: what it claims in X-Forwarded-For is replaced,
// not passed on. Its X-Request-ID is kept, as ingress-nginx keeps it.
func TestProxyReplacesClientForwardedHeaders(t *testing.T) {
	web := echoUpstream(t, "web")
	h, err := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(web)})}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, h)
	resp, body := doReq(t, px.Client(), "GET", px.URL+"/", "app.example", map[string]string{
		"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
		HeaderRequestID: "chosen-by-client",
	}, nil)
	e := decodeEcho(t, body)
	for what, got := range map[string]string{
		"X-Forwarded-For": e.Headers.Get("X-Forwarded-For"), "X-Real-Ip": e.Headers.Get("X-Real-Ip"),
		"X-Forwarded-Proto": e.Headers.Get("X-Forwarded-Proto"), "X-Forwarded-Host": e.Headers.Get("X-Forwarded-Host"),
	} {
		want := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1",
			"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example"}[what]
		if got != want {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}
	if id := resp.Header.Get(HeaderRequestID); id != "chosen-by-client" || e.Headers.Get(HeaderRequestID) != id {
		t.Errorf("request id: client got %q, upstream %q; want the client's", id, e.Headers.Get(HeaderRequestID))
	}
	// One with control characters is replaced.
	resp, body = doReq(t, px.Client(), "GET", px.URL+"/", "app.example", map[string]string{HeaderRequestID: "a\tb"}, nil)
	if id := resp.Header.Get(HeaderRequestID); len(id) != 32 || decodeEcho(t, body).Headers.Get(HeaderRequestID) != id {
		t.Errorf("request id with a tab: client got %q", id)
	}
}

// rawExchange writes raw bytes on one connection and returns everything the proxy sends
// back until it closes the connection (or 2 s pass).
func rawConnExchange(t *testing.T, addr, raw string) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b, err := io.ReadAll(c)
	closed := err == nil // EOF: the proxy closed the connection
	return string(b), closed
}

func countResponses(t *testing.T, raw string) []int {
	t.Helper()
	var codes []int
	br := bufio.NewReader(strings.NewReader(raw))
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}

// RFC 9112 section 6.3: a request with both Content-Length and Transfer-Encoding may be a
// smuggling attempt; the proxy answers it and closes the connection, so the request
// hidden behind it is never served. Malformed chunking is the client's error: 400.
func TestProxyRequestSmuggling(t *testing.T) {
	web := echoUpstream(t, "web")
	h, err := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(web)})}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, h)
	addr := hostOf(px)

	smuggle := "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"0\r\n\r\n" +
		"GET /api/smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n"
	out, closed := rawConnExchange(t, addr, smuggle)
	if codes := countResponses(t, out); len(codes) != 1 || !closed {
		t.Errorf("CL+TE request: %d responses %v, connection closed %v; want one answer and a close:\n%s", len(codes), codes, closed, out)
	}
	if strings.Contains(out, "/api/smuggled") {
		t.Error("the smuggled request was served")
	}

	bad := "POST / HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
	out, closed = rawConnExchange(t, addr, bad)
	if codes := countResponses(t, out); len(codes) != 1 || codes[0] != http.StatusBadRequest || !closed {
		t.Errorf("malformed chunking: responses %v, closed %v; want [400] and a close:\n%s", codes, closed, out)
	}

	// A well-formed keep-alive request without a body keeps its connection.
	ok := "GET / HTTP/1.1\r\nHost: app.example\r\n\r\nGET /again HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"
	out, _ = rawConnExchange(t, addr, ok)
	if codes := countResponses(t, out); len(codes) != 2 || codes[0] != 200 || codes[1] != 200 {
		t.Errorf("two pipelined plain requests: %v", codes)
	}
}
