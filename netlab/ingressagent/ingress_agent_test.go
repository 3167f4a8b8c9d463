// The ingress agent run in-process, without root.
//
// Address plan: everything on 127.0.0.1 — the agent's HTTP, HTTPS and metrics listeners
// on free ports, and httptest upstreams standing in for Service ClusterIP:port (the plan
// file's Services have clusterIP 127.0.0.1 and the upstreams' ports).
package ingressagent_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/ingressagent"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	networkingv1 "k8s.io/api/networking/v1"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func namedUpstream(t *testing.T, name string) (*httptest.Server, int32) {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"pod": name, "path": r.URL.Path, "headers": r.Header})
	}))
	t.Cleanup(s.Close)
	return s, int32(s.Listener.Addr().(*net.TCPAddr).Port)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func get(t *testing.T, c *http.Client, url, host string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return resp.StatusCode, m, resp.Header
}

// startAgent runs the ingress agent with cfg on 127.0.0.1 until it is ready, each port
// left 0 a free one (-1 stays off). The ports were free a moment ago; another process (or
// two of the picks alike) may hold one by now: then the agent cannot listen, and it starts
// again on new ones. cfg.Ready, if set, runs first. It returns the agent's addresses and a
// stop that ends it and checks its error (once; also at the test's end).
func startAgent(t *testing.T, cfg ingressagent.IngressConfig, log *slog.Logger) (ingressagent.IngressAddrs, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var addrs ingressagent.IngressAddrs
	port := func(p int) int {
		if p == 0 {
			return freePort(t)
		}
		return p
	}
	for attempt := 1; ; attempt++ {
		ready := make(chan ingressagent.IngressAddrs, 1)
		c := cfg
		c.ListenIP = "127.0.0.1"
		c.HTTPPort, c.HTTPSPort, c.MetricsPort = port(cfg.HTTPPort), port(cfg.HTTPSPort), port(cfg.MetricsPort)
		c.Ready = func(a ingressagent.IngressAddrs) {
			if cfg.Ready != nil {
				cfg.Ready(a)
			}
			ready <- a
		}
		go func() { done <- ingressagent.RunIngress(ctx, c, log) }()
		var err error
		select {
		case addrs = <-ready:
		case err = <-done:
		}
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 5 {
			cancel()
			t.Fatalf("agent ended before ready (attempt %d): %v", attempt, err)
		}
		t.Logf("attempt %d: %v; again on other ports", attempt, err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}
	t.Cleanup(stop)
	return addrs, stop
}

// TestAgentServesAndReloads runs RunIngress on a plan file: routing by host to the
// Services' "ClusterIP:port" (by port name and number), HTTPS with the lab CA it created,
// metrics, the access log, and a reload that changes the routes without restarting.
func TestAgentServesAndReloads(t *testing.T) {
	dir := t.TempDir()
	_, webPort := namedUpstream(t, "web-1")
	_, apiPort := namedUpstream(t, "api-1")
	p := &plan.Plan{
		Lab:   "t",
		Nodes: []plan.Node{{Name: "node-1", IP: "127.0.0.1/8"}},
		LB:    plan.LB{VIP: "203.0.113.100"},
		Services: []plan.Service{
			{Namespace: "default", Name: "web", ClusterIP: "127.0.0.1", Ports: []plan.ServicePort{{Name: "http", Port: webPort}}},
			{Namespace: "default", Name: "api", ClusterIP: "127.0.0.1", Ports: []plan.ServicePort{{Name: "http", Port: apiPort}}},
		},
		Ingresses: []plan.Ingress{labtest.IngressObject(t, "web", "app.example", "web", networkingv1.ServiceBackendPort{Name: "http"}, "app.example")},
	}
	cfgPath := filepath.Join(dir, "plan.json")
	labtest.WritePlan(t, cfgPath, p)

	var accessLog lockedBuffer
	reload := make(chan struct{})
	addrs, _ := startAgent(t, ingressagent.IngressConfig{Lab: "t", Node: "node-1", Dir: dir, AccessLog: &accessLog, Reload: reload},
		slog.New(slog.NewTextHandler(t.Output(), nil)))

	c := &http.Client{Timeout: 5 * time.Second}
	status, body, hdr := get(t, c, "http://"+addrs.HTTP+"/x", "app.example")
	if status != 200 || body["pod"] != "web-1" || hdr.Get(ingress.HeaderNode) != "node-1" {
		t.Fatalf("app.example: %d %v node %q", status, body, hdr.Get(ingress.HeaderNode))
	}
	reqID := hdr.Get(ingress.HeaderRequestID)
	if status, _, _ := get(t, c, "http://"+addrs.HTTP+"/", "shop.example"); status != 404 {
		t.Errorf("shop.example before reload: %d, want 404", status)
	}

	// HTTPS: the CA the agent created is in DIR/ca and signs the certificate for app.example.
	ca, err := ingressagent.ReadCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "ca"))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("ca dir mode: %v %v", st.Mode(), err)
	}
	tc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addrs.HTTPS)
		},
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool()},
		ForceAttemptHTTP2: true,
	}}
	resp, err := tc.Get("https://app.example/secure")
	if err != nil {
		t.Fatalf("https://app.example: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("https: %d %s", resp.StatusCode, resp.Proto)
	}
	// The default certificate names the node's IP: https://127.0.0.1/ validates too.
	conn, err := tls.Dial("tcp", addrs.HTTPS, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Errorf("default certificate for the node IP: %v", err)
	} else {
		conn.Close()
	}

	// Reload: a new Ingress for shop.example, backed by api's port number.
	p.Ingresses = append(p.Ingresses, labtest.IngressObject(t, "shop", "shop.example", "api", networkingv1.ServiceBackendPort{Number: apiPort}, "shop.example"))
	labtest.WritePlan(t, cfgPath, p)
	reload <- struct{}{}
	var got map[string]any
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if status, body, _ := get(t, c, "http://"+addrs.HTTP+"/", "shop.example"); status == 200 {
			got = body
			break
		}
	}
	if got["pod"] != "api-1" {
		t.Fatalf("shop.example within 15 s of the reload: %v", got)
	}
	resp, err = tc.Get("https://shop.example/")
	if err != nil {
		t.Fatalf("https://shop.example after reload (new certificate): %v", err)
	}
	resp.Body.Close()

	// A broken configuration keeps the current one.
	if err := os.WriteFile(cfgPath, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	reload <- struct{}{} // the second send returns once the first reload is done
	if status, body, _ := get(t, c, "http://"+addrs.HTTP+"/", "shop.example"); status != 200 || body["pod"] != "api-1" {
		t.Errorf("after a failed reload: %d %v", status, body)
	}

	// Metrics and access log.
	status, _, _ = get(t, c, "http://"+addrs.Metrics+"/metrics", "")
	if status != 200 {
		t.Errorf("metrics: %d", status)
	}
	mresp, err := c.Get("http://" + addrs.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mtext, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if !strings.Contains(string(mtext), `netlab_ingress_requests_total{code="200",ingress="default/web",service="default/web:http"}`) {
		t.Errorf("metrics lack the web counter:\n%s", mtext)
	}
	var first map[string]any
	// The access log is flushed by its own goroutine (within 20 ms when idle): wait for it.
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(accessLog.String(), "\n") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	line, _, _ := strings.Cut(accessLog.String(), "\n")
	if err := json.Unmarshal([]byte(line), &first); err != nil {
		t.Fatalf("access log line %q: %v", line, err)
	}
	if first["requestID"] != reqID || first["upstream"] != "127.0.0.1:"+strconv.Itoa(int(webPort)) || first["node"] != "node-1" {
		t.Errorf("access log entry %v", first)
	}
}
