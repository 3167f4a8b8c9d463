package ingress

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// A pod that stops closes every keep-alive connection it holds, and a request sent on one
// of them as it closes gets no answer. The ingress sends an idempotent request without a
// body once more, and that second try goes on a new connection: another pooled one may
// belong to the same stopping pod. Here every connection the ingress pooled drops its next
// request; a GET still gets its 200, answered once.
func TestProxyRetriesOnANewConnection(t *testing.T) {
	const warm = 3
	var (
		stopping atomic.Bool    // from now on, connections made before drop their next request
		arrived  sync.WaitGroup // the warm-up requests, held until all are in
		gets     atomic.Int32
	)
	arrived.Add(warm)
	up := rawUpstream(t, func() func(*http.Request) bool {
		old := !stopping.Load()
		return func(req *http.Request) bool {
			if old && stopping.Load() {
				return false // closing: the request gets no answer
			}
			if req.URL.Path == "/warm" {
				arrived.Done()
				arrived.Wait()
			} else {
				gets.Add(1)
			}
			return true
		}
	})
	h, _ := NewHandler(Options{Resolve: staticResolver(map[string]string{"default/web": up})}, webAPITable(t))
	px := startProxy(t, h)
	// Three requests at once leave three connections in the ingress's pool.
	var wg sync.WaitGroup
	for range warm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, _ := doReq(t, px.Client(), "GET", px.URL+"/warm", "app.example", nil, nil); resp.StatusCode != 200 {
				t.Errorf("warm-up GET: %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	stopping.Store(true)
	resp, body := doReq(t, px.Client(), "GET", px.URL+"/", "app.example", nil, nil)
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("GET while every pooled connection closes: %d %q, want 200 \"ok\"", resp.StatusCode, body)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("the upstream answered the GET %d times, want 1", n)
	}
}

// rawUpstream serves HTTP/1.1 keep-alive on 127.0.0.1 and returns its address. For each
// connection it calls conn once, at accept; the function it returns is asked about every
// request (its body read): true answers 200 "ok", false closes the connection unanswered.
func rawUpstream(t *testing.T, conn func() func(*http.Request) bool) string {
	t.Helper()
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
			answer := conn()
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if !answer(req) {
						return
					}
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	return ln.Addr().String()
}
