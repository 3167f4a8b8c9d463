// Root integration tests of the ingress agents on a real lab.
//
// Address plan (the default scenario plus a "shop" Ingress, unique lab name per test):
//
//	wan 203.0.113.0/24      client .2, lb eth0 .1, ingress VIP .100
//	fabric 172.18.0.0/24    lb eth1 .1, node-1 .11, node-2 .12 (ingress :80 :443 :10254)
//	pods                    web-1..3, api-1..2 behind Services web and api (ClusterIPs)
//	Ingress app             app.example: / -> web:http, /api -> api:80; TLS from the lab CA
//	Ingress shop            shop.example: / -> api:http; TLS from Secret shop-tls (test CA)
package ingress_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	networkingv1 "k8s.io/api/networking/v1"
)

// shopScenario is the default scenario plus an Ingress whose certificate comes from a
// kubernetes.io/tls Secret signed by secretCA.
func shopScenario(t *testing.T, secretCA *ingress.CA) string {
	t.Helper()
	def, err := os.ReadFile(filepath.Join("..", "scenario", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := secretCA.Issue("shop.example")
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(typ string, der []byte) string {
		return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	return string(def) + fmt.Sprintf(`
---
apiVersion: v1
kind: Secret
metadata: {name: shop-tls}
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  ingressClassName: netlab
  tls:
  - {hosts: [shop.example], secretName: shop-tls}
  rules:
  - host: shop.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: api, port: {name: http}}}}
`, b64("CERTIFICATE", cert.Certificate[0]), b64("PRIVATE KEY", key))
}

func nodeIP(t *testing.T, p *plan.Plan, name string) string {
	t.Helper()
	for _, n := range p.Nodes {
		if n.Name == name {
			return plan.Addr(n.IP)
		}
	}
	t.Fatalf("no node %s", name)
	return ""
}

// nsClient makes connections from inside ns to addr whatever the URL says (so the URL's
// host is the Host header and the SNI), trusting roots for HTTPS.
func nsClient(ns, addr string, roots *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return kernel.DialIn(ns, network, addr, 3*time.Second)
		},
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}}
}

func echoFrom(t *testing.T, c *http.Client, url string) (labtest.Echo, *http.Response) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	var e labtest.Echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("GET %s: not echo JSON: %q", url, body)
	}
	return e, resp
}

func header(e labtest.Echo, name string) string {
	for k, v := range e.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// ingressAgentPID finds the ingress agent of node in lab (started by this test's up).
func ingressAgentPID(t *testing.T, labName, node string) int {
	t.Helper()
	for _, a := range labtest.AgentProcs(labName) {
		if lab.IsAgent(a.Argv, "ingress") && slices.Contains(a.Argv, node) {
			return a.PID
		}
	}
	t.Fatalf("no ingress agent for %s in lab %s", node, labName)
	return 0
}

func TestIntegrationIngress(t *testing.T) {
	labtest.RequireRoot(t)
	secretCA, err := ingress.NewCA("test secret issuer")
	if err != nil {
		t.Fatal(err)
	}
	p := labtest.Up(t, "ing", shopScenario(t, secretCA))
	cns, cip := p.Clients[0].Netns, plan.Addr(p.Clients[0].IP)
	n1 := nodeIP(t, p, "node-1")

	t.Run("host and path routing through a node, forwarding headers", func(t *testing.T) {
		c := nsClient(cns, n1+":80", nil)
		for _, tc := range []struct{ url, podPrefix string }{
			{"http://app.example/", "web-"},
			{"http://app.example/api/users", "api-"},
			{"http://app.example/apiary", "web-"},
			{"http://shop.example/x", "api-"},
		} {
			e, resp := echoFrom(t, c, tc.url)
			if !strings.HasPrefix(e.Pod, tc.podPrefix) {
				t.Errorf("%s answered by pod %s, want %s*", tc.url, e.Pod, tc.podPrefix)
			}
			if got := header(e, "X-Forwarded-For"); got != cip {
				t.Errorf("%s: X-Forwarded-For %q, want the client %s", tc.url, got, cip)
			}
			if resp.Header.Get(ingress.HeaderNode) != "node-1" || header(e, ingress.HeaderRequestID) != resp.Header.Get(ingress.HeaderRequestID) {
				t.Errorf("%s: node %q, request id %q vs %q", tc.url, resp.Header.Get(ingress.HeaderNode),
					header(e, ingress.HeaderRequestID), resp.Header.Get(ingress.HeaderRequestID))
			}
		}
		resp, err := c.Get("http://nobody.example/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("unknown host: %d, want 404", resp.StatusCode)
		}
	})

	t.Run("https with the lab CA and SNI", func(t *testing.T) {
		out, err := labtest.CLI(t, "ca", "--name", p.Lab)
		if err != nil {
			t.Fatalf("netlab ca: %v %s", err, out)
		}
		caPath := strings.TrimSpace(out)
		pemBytes, err := os.ReadFile(caPath)
		if err != nil {
			t.Fatalf("netlab ca printed %q: %v", caPath, err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pemBytes)
		roots.AddCert(secretCA.Cert)
		c := nsClient(cns, n1+":443", roots)
		e, resp := echoFrom(t, c, "https://app.example/")
		if resp.ProtoMajor != 2 || !strings.HasPrefix(e.Pod, "web-") || header(e, "X-Forwarded-Proto") != "https" {
			t.Errorf("app.example over TLS: %s pod %s proto %q", resp.Proto, e.Pod, header(e, "X-Forwarded-Proto"))
		}
		if iss := resp.TLS.PeerCertificates[0].Issuer.CommonName; !strings.Contains(iss, p.Lab) {
			t.Errorf("app.example certificate issued by %q, want the lab CA", iss)
		}
		_, resp = echoFrom(t, c, "https://shop.example/")
		if iss := resp.TLS.PeerCertificates[0].Issuer.CommonName; iss != "test secret issuer" {
			t.Errorf("shop.example certificate issued by %q, want the Secret's", iss)
		}
		// curl --cacert from the client namespace, as a user would.
		if out, err := labtest.Exec(cns, "curl", "-sS", "--cacert", caPath, "--resolve", "app.example:443:"+n1,
			"-o", "/dev/null", "-w", "%{http_code} %{http_version}", "https://app.example/"); err != nil || out != "200 2" {
			t.Errorf("curl --cacert: %q %v", out, err)
		}
	})

	t.Run("through the VIP", func(t *testing.T) {
		c := nsClient(cns, p.LB.VIP+":80", nil)
		e, _ := echoFrom(t, c, "http://app.example/api")
		if !strings.HasPrefix(e.Pod, "api-") || header(e, "X-Forwarded-For") != cip {
			t.Errorf("via VIP: pod %s XFF %q", e.Pod, header(e, "X-Forwarded-For"))
		}
	})

	t.Run("slow clients do not block others and are cut at ReadHeaderTimeout", func(t *testing.T) {
		// The agent serves with ingress.DefaultServer (the ingress agent sets no Server).
		rht := ingress.DefaultServer.ReadHeaderTimeout
		// One try: 100 clients that send half a header and stop, one slowloris that keeps
		// trickling header bytes, then a normal client. The normal client is served while
		// the server still holds every slow connection open (a server that waited for them
		// would answer only after cutting them). A slow connection found closed proves that
		// only if it was closed before its own ReadHeaderTimeout could have run out: one
		// older than that when the normal answer came may have been cut rightly, and the
		// try says nothing (the machine stalled); it is made again with new connections.
		// dialled[i] is when the dial of conns[i] began: the server's clock for it starts
		// at its accept, later.
		try := func() (conns []net.Conn, dialled []time.Time, inconclusive string) {
			for range 100 {
				dialled = append(dialled, time.Now())
				conn, err := kernel.DialIn(cns, "tcp", n1+":80", 3*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app.example\r\nX-Slow: "); err != nil {
					t.Fatal(err)
				}
				conns = append(conns, conn)
			}
			dialled = append(dialled, time.Now())
			trickler, err := kernel.DialIn(cns, "tcp", n1+":80", 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { trickler.Close() })
			if _, err := io.WriteString(trickler, "GET / HTTP/1.1\r\nHost: app.example\r\nX-Slow: "); err != nil {
				t.Fatal(err)
			}
			go func() { // until the server (or the test's end) closes it
				for {
					time.Sleep(200 * time.Millisecond)
					if _, err := trickler.Write([]byte("a")); err != nil {
						return
					}
				}
			}()
			conns = append(conns, trickler)

			e, _ := echoFrom(t, nsClient(cns, n1+":80", nil), "http://app.example/")
			if !strings.HasPrefix(e.Pod, "web-") {
				t.Errorf("pod %s", e.Pod)
			}
			answered := time.Now()
			// Every connection's state at once, without waiting: what the kernel holds.
			for i, conn := range conns {
				if open, what := peekState(t, conn); !open {
					if age := answered.Sub(dialled[i]); age >= rht {
						return nil, nil, fmt.Sprintf("slow connection %d (%s) was %v old at the normal answer", i, what, age)
					}
					t.Fatalf("slow connection %d was no longer open (%s) when the normal request had been served, %v after its dial: the server did not serve it meanwhile",
						i, what, answered.Sub(dialled[i]))
				}
			}
			return conns, dialled, ""
		}
		var conns []net.Conn
		var dialled []time.Time
		for n := 1; ; n++ {
			var why string
			if conns, dialled, why = try(); why == "" {
				break
			}
			if n == 3 {
				t.Fatalf("three tries said nothing: the last one's %s (ReadHeaderTimeout %v)", why, rht)
			}
			t.Logf("try %d said nothing: %s; again", n, why)
		}
		// Then the server closes every slow connection: not before ReadHeaderTimeout (the
		// clock started when they were dialled, before the server's); the read deadline
		// is a bound on a hang, far beyond it.
		for i, conn := range conns {
			_ = conn.SetReadDeadline(dialled[i].Add(rht + 20*time.Second))
			b, err := io.ReadAll(conn)
			closed := time.Since(dialled[i])
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatalf("slow connection %d still open %v after it was dialled (ReadHeaderTimeout %v)", i, closed, rht)
			}
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("slow connection %d: %v", i, err)
			}
			if closed < rht {
				t.Fatalf("slow connection %d closed after %v, before ReadHeaderTimeout %v", i, closed, rht)
			}
			// net/http hangs up on a header timeout without an answer (or with a 408).
			if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 408") {
				t.Errorf("slow connection %d got %q", i, b)
			}
		}
	})

	t.Run("metrics and access log", func(t *testing.T) {
		// From the LB's namespace: clients ("the internet") do not reach :10254.
		resp, err := nsClient(p.LB.Netns, n1+":10254", nil).Get("http://metrics/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `netlab_ingress_requests_total{code="200",ingress="default/app",service="default/web:http"}`) {
			t.Errorf("metrics lack the app counter:\n%s", body)
		}
		logText, err := os.ReadFile(rundir.ForLab(p.Lab).Log("ingress", "node-1"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(logText), `"rule":"default/app host=app.example path=/api (Prefix)"`) {
			t.Errorf("access log lacks the /api rule:\n%s", logText)
		}
	})

	t.Run("SIGHUP reloads without drops", func(t *testing.T) {
		pid := ingressAgentPID(t, p.Lab, "node-1")
		// Clients keep sending on keep-alive connections while the agent reloads.
		stop := make(chan struct{})
		errs := make(chan error, 4)
		for range 4 {
			go func() {
				c := nsClient(cns, n1+":80", nil)
				c.Transport.(*http.Transport).DisableKeepAlives = false
				for {
					select {
					case <-stop:
						errs <- nil
						return
					default:
					}
					resp, err := c.Get("http://app.example/")
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = fmt.Errorf("status %s", resp.Status)
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		cur, err := lab.LoadPlan(p.Lab)
		if err != nil {
			t.Fatal(err)
		}
		cur.Ingresses = append(cur.Ingresses, labtest.IngressObject(t, "late", "late.example", "web", networkingv1.ServiceBackendPort{Name: "http"}))
		labtest.WritePlan(t, rundir.ForLab(p.Lab).Plan(), cur)
		if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		c := nsClient(cns, n1+":80", nil)
		var status int
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && status != 200; time.Sleep(20 * time.Millisecond) {
			resp, err := c.Get("http://late.example/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			status = resp.StatusCode
		}
		if status != 200 {
			t.Errorf("late.example after SIGHUP: %d", status)
		}
		close(stop)
		for range 4 {
			if err := <-errs; err != nil {
				t.Errorf("a client failed during the reload: %v", err)
			}
		}
	})

	// Last: it breaks the api Service.
	t.Run("killed backends give 502 then 503", func(t *testing.T) {
		for _, pod := range p.Pods {
			if pod.Deployment == "api" {
				if _, err := lab.KillPod(p.Lab, pod.Name); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Right after the kill the endpoints still list the pods (their addresses reset
		// the connection: 502); once the controller removed them the ingress answers 503
		// (no ready endpoints) without dialling, as ingress-nginx does. No answer comes
		// from a dial left to time out: the access log (found by each request's own
		// X-Request-Id) gives each 502's cause.
		c := nsClient(cns, n1+":80", nil)
		var ids []string
		for end := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			id := fmt.Sprintf("killed-%d-%d", os.Getpid(), len(ids))
			req, _ := http.NewRequest(http.MethodGet, "http://app.example/api", nil)
			req.Header.Set(ingress.HeaderRequestID, id)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 502 && resp.StatusCode != 503 {
				t.Fatalf("api with every pod killed: %s %s, want 502 or 503", resp.Status, body)
			}
			if resp.StatusCode == 502 {
				ids = append(ids, id)
			}
			if resp.StatusCode == 503 {
				if !strings.Contains(string(body), "no upstream for service default/api") {
					t.Fatalf("api without endpoints: 503 %q", body)
				}
				break
			}
			if time.Now().After(end) {
				t.Fatalf("api with every pod killed: still 502 after the controller had 15 s to drop its endpoints")
			}
		}
		logPath := rundir.ForLab(p.Lab).Log("ingress", "node-1")
		for _, id := range ids {
			var line string
			// The agent writes its access log in batches (within 20 ms): a bound on a hang.
			labtest.WaitFor(15*time.Second, func() bool {
				b, _ := os.ReadFile(logPath)
				for l := range strings.Lines(string(b)) {
					if strings.Contains(l, `"requestID":"`+id+`"`) {
						line = l
						return true
					}
				}
				return false
			})
			if line == "" {
				t.Fatalf("request %s is not in node-1's access log", id)
			}
			if !strings.Contains(line, `"status":502`) || strings.Contains(line, "timeout") || strings.Contains(line, "deadline") {
				t.Errorf("a 502 with every api pod killed came from a dial left to time out, or is logged wrong: %s", line)
			}
		}
	})
}

// peekState tells, without waiting, whether the kernel still holds conn open with nothing
// to read: a peek that would block means open; otherwise what it found (the end of the
// stream, a reset, or bytes of an answer).
func peekState(t *testing.T, conn net.Conn) (open bool, what string) {
	t.Helper()
	sc, err := conn.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var perr error
	if err := sc.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), make([]byte, 1), syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait for readiness: one look
	}); err != nil {
		t.Fatal(err)
	}
	switch {
	case errors.Is(perr, syscall.EAGAIN):
		return true, "open"
	case perr != nil:
		return false, perr.Error()
	case n == 0:
		return false, "the end of the stream"
	default:
		return false, "bytes of an answer"
	}
}
