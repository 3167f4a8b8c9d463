package ingress

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A pod that stops closes every keep-alive connection it holds, and a request sent on one
// of them as it closes gets no answer. The ingress sends an idempotent request without a
// body once more, and that second try goes on a new connection: another pooled one may
// belong to the same stopping pod. Here every connection the ingress pooled drops its next
// request; a GET still gets its 200, answered once.
func TestProxyRetriesOnANewConnection(t *testing.T) {
	forEachFront(t, testProxyRetriesOnANewConnection)
}

func testProxyRetriesOnANewConnection(t *testing.T, start front) {
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
	px := start(t, h)
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

// In the endpoints mode the second try of an idempotent request goes to the next ready
// endpoint, not to the one whose pooled connection dropped it: that pod is likely
// stopping, and here it no longer accepts connections at all (a dial to it is refused).
func TestProxyRetriesOnTheNextEndpoint(t *testing.T) {
	forEachFront(t, testProxyRetriesOnTheNextEndpoint)
}

func testProxyRetriesOnTheNextEndpoint(t *testing.T, start front) {
	var stopping atomic.Bool // from now on, a's connections drop their next request
	var answered [2]atomic.Int32
	eps := make([]net.Listener, 2)
	for i := range eps {
		eps[i] = rawUpstreamOn(t, func() func(*http.Request) bool {
			return func(req *http.Request) bool {
				if i == 0 && stopping.Load() {
					return false
				}
				answered[i].Add(1)
				return true
			}
		})
	}
	a, b := eps[0].Addr().String(), eps[1].Addr().String()
	ing := mkIngress("default", "ep", mkRule("ep.example", mkPath("/", prefix, "web")))
	ing.Annotations = map[string]string{AnnotationUpstream: UpstreamEndpoints}
	table, warns := Build([]Ingress{ing}, "")
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	var logBuf syncBuffer
	backends := &Backends{Addrs: []string{a, b}}
	h, err := NewHandler(Options{
		Resolve: staticResolver(nil),
		Endpoints: func(string, string, ServiceBackendPort) (*Backends, error) {
			return backends, nil
		},
		AccessLog: &logBuf,
	}, table)
	if err != nil {
		t.Fatal(err)
	}
	px := start(t, h)
	c := px.Client()
	// Round-robin: the first request goes to a, the second to b; each leaves a pooled
	// connection behind.
	for range 2 {
		if resp, body := doReq(t, c, "GET", px.URL+"/", "ep.example", nil, nil); resp.StatusCode != 200 {
			t.Fatalf("warm-up GET: %s %s", resp.Status, body)
		}
	}
	if answered[0].Load() != 1 || answered[1].Load() != 1 {
		t.Fatalf("warm-up: a answered %d, b %d, want 1 each", answered[0].Load(), answered[1].Load())
	}
	// a stops: its pooled connection drops the next request, and it accepts no more.
	stopping.Store(true)
	eps[0].Close()
	// The third request is a's turn: it goes on a's pooled connection, gets no answer,
	// and goes again to b.
	resp, body := doReq(t, c, "GET", px.URL+"/third", "ep.example", nil, nil)
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("GET while endpoint a stops: %s %q, want 200 \"ok\" from b", resp.Status, body)
	}
	if n := answered[1].Load(); n != 2 {
		t.Errorf("b answered %d requests, want 2 (the warm-up and the retried GET)", n)
	}
	var line string
	for _, l := range logBuf.WaitLines(3) {
		if strings.Contains(l, `"path":"/third"`) {
			line = l
		}
	}
	if !strings.Contains(line, `"upstream":"`+b+`"`) || !strings.Contains(line, `"status":200`) {
		t.Errorf("access log of the retried GET: %q, want status 200 from upstream %s", line, b)
	}
}

// A response head that does not come in time is a 504 after one timeout, also on a reused
// pooled connection (under keep-alive load nearly every request rides one): the upstream
// took the request, so it is not sent again, neither on a new connection to the same
// address (service mode) nor to the next endpoint (endpoints mode). Each upstream answers
// a warm-up GET, which leaves its connection in the pool, then holds the next GET until
// the test ends.
func TestProxyTimeoutOnAReusedConnectionIsNotRetried(t *testing.T) {
	forEachFront(t, testProxyTimeoutOnAReusedConnectionIsNotRetried)
}

func testProxyTimeoutOnAReusedConnectionIsNotRetried(t *testing.T, start front) {
	for _, mode := range []string{UpstreamService, UpstreamEndpoints} {
		t.Run(mode, func(t *testing.T) {
			var conns, held atomic.Int32
			release := make(chan struct{})
			eps := make([]string, 2)
			for i := range eps {
				eps[i] = rawUpstream(t, func() func(*http.Request) bool {
					conns.Add(1)
					return func(req *http.Request) bool {
						if req.URL.Path == "/hold" {
							held.Add(1)
							<-release
						}
						return true
					}
				})
			}
			t.Cleanup(func() { close(release) }) // before the listeners close (cleanups run last first)
			ing := mkIngress("default", "web", mkRule("app.example", mkPath("/", prefix, "web")))
			ing.Annotations = map[string]string{AnnotationUpstream: mode}
			table, warns := Build([]Ingress{ing}, "")
			if len(warns) != 0 {
				t.Fatal(warns)
			}
			backends := &Backends{Addrs: eps}
			h, err := NewHandler(Options{
				Resolve: staticResolver(map[string]string{"default/web": eps[0]}),
				Endpoints: func(string, string, ServiceBackendPort) (*Backends, error) {
					return backends, nil
				},
				UpstreamTimeout: 100 * time.Millisecond,
			}, table)
			if err != nil {
				t.Fatal(err)
			}
			px := start(t, h)
			// Service mode: one connection to the ClusterIP stand-in. Endpoints mode: one
			// to each endpoint (round-robin), and the held GET is the first endpoint's turn.
			warm := 1
			if mode == UpstreamEndpoints {
				warm = 2
			}
			for range warm {
				if resp, body := doReq(t, px.Client(), "GET", px.URL+"/warm", "app.example", nil, nil); resp.StatusCode != 200 {
					t.Fatalf("warm-up GET: %s %s", resp.Status, body)
				}
			}
			resp, body := doReq(t, px.Client(), "GET", px.URL+"/hold", "app.example", nil, nil)
			if resp.StatusCode != 504 || !strings.Contains(string(body), "timed out") {
				t.Errorf("GET the upstream holds: %s %q, want 504 upstream timed out", resp.Status, body)
			}
			if n := held.Load(); n != 1 {
				t.Errorf("the upstreams received the held GET %d times, want 1", n)
			}
			if n := conns.Load(); n != int32(warm) {
				t.Errorf("the upstreams accepted %d connections, want %d (the held GET rides a pooled one; no second try dials)", n, warm)
			}
		})
	}
}

// rawUpstream serves HTTP/1.1 keep-alive on 127.0.0.1 and returns its address. For each
// connection it calls conn once, at accept; the function it returns is asked about every
// request (its body read): true answers 200 "ok", false closes the connection unanswered.
func rawUpstream(t *testing.T, conn func() func(*http.Request) bool) string {
	t.Helper()
	return rawUpstreamOn(t, conn).Addr().String()
}

// rawUpstreamOn is rawUpstream returning its listener (closed by the test's cleanup, or
// sooner by the test: new connections are then refused, those accepted go on).
func rawUpstreamOn(t *testing.T, conn func() func(*http.Request) bool) net.Listener {
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
	return ln
}
