package podagent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// netHTTPEcho is the echo as it was served with net/http before the pod had its own
// server: the reference the pod's server is held to.
func netHTTPEcho(cfg Config, port int) http.Handler {
	var served atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := served.Add(1)
		if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		host, portStr, _ := net.SplitHostPort(r.RemoteAddr)
		cport, _ := strconv.Atoi(portStr)
		e := Echo{Pod: cfg.Pod, Node: cfg.Node, PodIP: cfg.IP, Port: port, Protocol: "TCP", ClientIP: host, ClientPort: cport,
			Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Proto: r.Proto,
			Headers: r.Header, Time: time.Now().UTC().Format(time.RFC3339Nano), Lab: cfg.Lab, Requests: n}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Netlab-Pod", cfg.Pod)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(e)
	})
}

// answer is what a client can tell of one response.
type answer struct {
	Status      int
	ContentType string
	PodHeader   string
	Close       bool
	Body        string         // non-JSON bodies
	Echo        map[string]any // JSON bodies, without what differs from one request to the next
}

// exchange sends raw on a new connection to addr (then, with halfClose, ends its sending
// side) and reads want responses (fewer when the connection ends), then whether the server
// closed the connection.
func exchange(t *testing.T, addr, raw string, want int, halfClose ...bool) ([]answer, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if len(halfClose) > 0 && halfClose[0] {
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(c)
	var out []answer
	for len(out) < want {
		method := "GET"
		if f := strings.Fields(raw); len(f) > 0 {
			method = f[0]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			break
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		a := answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), PodHeader: resp.Header.Get("X-Netlab-Pod"), Close: resp.Close}
		var e map[string]any
		if json.Unmarshal(body, &e) == nil {
			for _, k := range []string{"time", "clientPort", "requests"} {
				if _, ok := e[k]; !ok {
					t.Errorf("echo lacks %s: %s", k, body)
				}
				delete(e, k)
			}
			a.Echo = e
		} else if resp.StatusCode == 200 {
			a.Body = string(body)
		}
		out = append(out, a)
	}
	// Open or closed: a second request on the connection is answered or not (a client
	// that ended its sending side waits for the server's end instead). The deadline only
	// bounds a server that neither answers nor closes.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var closed bool
	if len(halfClose) > 0 && halfClose[0] {
		_, err := br.ReadByte()
		closed = err != nil
	} else {
		_, werr := io.WriteString(c, "GET /probe HTTP/1.1\r\nHost: probe\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			resp.Body.Close()
		}
		closed = werr != nil || err != nil
	}
	return out, closed
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// The pod's own HTTP server answers every request as net/http answered it: the same
// echo (method, host, path, query, protocol, headers, client address), the same status
// for what it refuses, the same keep-alive and connection closing.
func TestServerAnswersAsNetHTTP(t *testing.T) {
	cfg := Config{Lab: "l", Pod: "web-1", Node: "node-1", IP: "10.244.1.2"}
	var served atomic.Uint64
	mine := &echoServer{handler: podHandler(cfg, 8080, &served), readHeaderTimeout: 10 * time.Second, idleTimeout: 120 * time.Second}
	lnMine := listen(t)
	go func() { _ = mine.serve(lnMine) }()
	t.Cleanup(func() { _ = mine.shutdown(context.Background()) })
	ref := &http.Server{Handler: netHTTPEcho(cfg, 8080), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	lnRef := listen(t)
	go func() { _ = ref.Serve(lnRef) }()
	t.Cleanup(func() { _ = ref.Close() })

	big := strings.Repeat("x", 300<<10)
	cases := []struct {
		name, raw string
		responses int
		halfClose bool
	}{
		{"get", "GET /some/path?q=1&r=%20 HTTP/1.1\r\nHost: app.example\r\nX-Test: yes\r\nx-multi: a\r\nX-Multi: b\r\nUser-Agent: curl/8\r\n\r\n", 1, false},
		{"escaped path", "GET /a%20b/c%2Fd HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"absolute target", "GET http://target.example:8080/p?x=1 HTTP/1.1\r\nHost: other.example\r\n\r\n", 1, false},
		{"no headers but host", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"connection close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", 1, false},
		{"http/1.0", "GET /old HTTP/1.0\r\n\r\n", 1, false},
		{"http/1.0 keep-alive", "GET /old HTTP/1.0\r\nConnection: keep-alive\r\nHost: h\r\n\r\n", 1, false},
		{"head", "HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"healthz", "GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"post healthz is the echo", "POST /healthz HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 1, false},
		{"pipelined with a body", "POST /one HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhelloGET /two HTTP/1.1\r\nHost: h\r\n\r\n", 2, false},
		{"chunked body, trailer", "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: v\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n", 2, false},
		{"body over 256 KiB closes", "POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big, 1, false},
		{"expect continue", "POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n", 1, false},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", 1, false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 1, false},
		{"bad request line", "GARBAGE\r\n\r\n", 1, false},
		{"bad method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 1, false},
		{"bad header", "GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n", 1, false},
		{"unknown transfer encoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 1, false},
		{"http/2 version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 1, false},
		{"bad content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 1, false},
		{"header too large", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("y", 1<<20+8192) + "\r\n\r\n", 1, false},
		{"http/1.2 is served as 1.1", "GET /v HTTP/1.2\r\nHost: h\r\n\r\n", 1, false},
		{"http/1.0 ignores transfer-encoding", "GET /te HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 1, false},
		{"malformed host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 1, false},
		{"other expectation", "GET / HTTP/1.1\r\nHost: h\r\nExpect: foo\r\n\r\n", 1, false},
		{"head cut by a half-close", "GET / HTTP/1.1\r\nHost: h\r\n", 1, true},
		{"nothing but a half-close", "", 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, gotClosed := exchange(t, lnMine.Addr().String(), c.raw, c.responses, c.halfClose)
			want, wantClosed := exchange(t, lnRef.Addr().String(), c.raw, c.responses, c.halfClose)
			if len(got) != len(want) {
				t.Fatalf("%d responses, net/http %d: %+v against %+v", len(got), len(want), got, want)
			}
			for i := range got {
				if got[i].Status != want[i].Status || got[i].PodHeader != want[i].PodHeader || got[i].Body != want[i].Body ||
					(want[i].Status == 200 && got[i].ContentType != want[i].ContentType) || got[i].Close != want[i].Close {
					t.Errorf("response %d: %+v, net/http %+v", i, got[i], want[i])
				}
				if !reflect.DeepEqual(got[i].Echo, want[i].Echo) {
					t.Errorf("response %d echo:\n%v\nnet/http:\n%v", i, got[i].Echo, want[i].Echo)
				}
			}
			if gotClosed != wantClosed {
				t.Errorf("connection closed: %v, net/http %v", gotClosed, wantClosed)
			}
		})
	}
}

// Without keep-alive (a pod terminating gracefully), every answer closes its connection
// and idle connections are closed; shutdown waits for an active one to finish.
func TestServerWithoutKeepAliveAndShutdown(t *testing.T) {
	var served atomic.Uint64
	s := &echoServer{handler: podHandler(Config{Pod: "p"}, 8080, &served), readHeaderTimeout: 10 * time.Second, idleTimeout: 120 * time.Second}
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- s.serve(ln) }()
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	br := bufio.NewReader(idle)
	if _, err := io.WriteString(idle, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.Close {
		t.Fatalf("first answer: %v, close %v", err, resp != nil && resp.Close)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	s.setKeepAlivesEnabled(false)
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the idle connection was not closed")
	}
	got, closed := exchange(t, ln.Addr().String(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1)
	if len(got) != 1 || got[0].Status != 200 || !got[0].Close || !closed {
		t.Errorf("without keep-alive: %+v, closed %v", got, closed)
	}
	// A request under way when shutdown begins is answered.
	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /slow HTTP/1.1\r\nHost: h\r\n"); err != nil {
		t.Fatal(err)
	}
	// Shutdown begins once the server has the connection, its head's first bytes read.
	for deadline := time.Now().Add(10 * time.Second); activeConns(s) != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server has %d active connections, want the one under way", activeConns(s))
		}
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.shutdown(ctx)
	}()
	if err := <-done; !errors.Is(err, errServerClosed) {
		t.Errorf("serve returned %v", err)
	}
	if _, err := io.WriteString(slow, "\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("request under way at shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// activeConns is how many of s's connections are reading or answering a request.
func activeConns(s *echoServer) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if connState(c.state.Load()) == stateActive {
			n++
		}
	}
	return n
}

// A server shut down before it began serving returns at once, as net/http's does.
func TestServerShutDownBeforeServe(t *testing.T) {
	var served atomic.Uint64
	s := &echoServer{handler: podHandler(Config{Pod: "p"}, 8080, &served), readHeaderTimeout: 10 * time.Second, idleTimeout: 120 * time.Second}
	if err := s.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- s.serve(ln) }()
	select {
	case err := <-done:
		if !errors.Is(err, errServerClosed) {
			t.Errorf("serve after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve after shutdown still serves")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("the listener is still open")
	}
}
