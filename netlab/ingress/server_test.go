package ingress

// Address plan: the proxy listens on 127.0.0.1:0; an echo upstream on another
// 127.0.0.1 port; raw TCP clients play the bad clients.

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func startServer(t *testing.T, cfg Server, h http.Handler) string {
	t.Helper()
	return hostOf(startProxyWith(t, cfg, h))
}

func proxyForServerTests(t *testing.T) http.Handler {
	t.Helper()
	web := echoUpstream(t, "web")
	h, err := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": hostOf(web)})}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestSlowlorisDoesNotBlockOthers opens many connections that trickle header bytes and
// never finish; a normal client is served meanwhile, and the server cuts every slow
// connection at ReadHeaderTimeout.
func TestSlowlorisDoesNotBlockOthers(t *testing.T) {
	addr := startServer(t, Server{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: time.Second}, proxyForServerTests(t))

	const slow = 50
	conns := make([]net.Conn, 0, slow)
	for range slow {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // keep trickling one header line at a time
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, c := range conns {
					_, _ = io.WriteString(c, "X-Slow: 1\r\n")
				}
			}
		}
	}()

	client := &http.Client{Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	req.Host = "app.example"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("normal client while %d slow clients are connected: %v", slow, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("normal client: status %d", resp.StatusCode)
	}

	// Every slow connection is closed by the server (not by our safety deadline).
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("slow connection %d still open after 10s", i)
		}
	}
	close(stop)
	wg.Wait()
}

func rawExchange(t *testing.T, addr, request string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading status line: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestMalformedRequestsAnswered4xx(t *testing.T) {
	addr := startServer(t, Server{MaxHeaderBytes: 4 << 10}, proxyForServerTests(t))
	cases := []struct{ name, req, want string }{
		{"garbage request line", "HELLO\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bad Host header", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"Host with a non-numeric port", "GET / HTTP/1.1\r\nHost: app.example:http\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"Host with junk after the bracket", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"missing Host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"header too large", "GET / HTTP/1.1\r\nHost: app.example\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
	}
	for _, c := range cases {
		if got := rawExchange(t, addr, c.req); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// The server still serves well-formed requests afterwards.
	if got := rawExchange(t, addr, "GET / HTTP/1.1\r\nHost: app.example\r\n\r\n"); got != "HTTP/1.1 200 OK" {
		t.Errorf("after bad requests: %q", got)
	}
}

func TestServerDefaults(t *testing.T) {
	srv := Server{ReadHeaderTimeout: time.Second}.HTTP(":80", http.NotFoundHandler())
	if srv.ReadHeaderTimeout != time.Second || srv.IdleTimeout != DefaultServer.IdleTimeout ||
		srv.MaxHeaderBytes != DefaultServer.MaxHeaderBytes || srv.ReadTimeout != DefaultServer.ReadTimeout ||
		srv.WriteTimeout != DefaultServer.WriteTimeout || srv.Addr != ":80" {
		t.Errorf("server settings %+v", srv)
	}
}
