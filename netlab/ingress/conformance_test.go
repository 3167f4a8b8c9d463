package ingress

// Behaviour the Kubernetes Ingress conformance suite (kubernetes-sigs/
// ingress-controller-conformance) and ingress-nginx's answers ask for.
//
// Address plan: the proxy (PlainServer on 127.0.0.1, or net/http's TLS server on
// 127.0.0.1) and its upstreams (httptest servers standing in for ClusterIP:port) use
// kernel-chosen ports. No root, no namespaces.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestServerHeader: every answer names a server (default_backend.feature wants a Server
// header; the suite's echo server sends none, ingress-nginx adds "nginx"): the
// upstream's own when it sent one (once, unchanged), else ServerName; on plain HTTP,
// on TLS with HTTP/2 and HTTP/1.1, and on the proxy's own 404, 502, 503 and 400.
func TestServerHeader(t *testing.T) {
	web := echoUpstream(t, "web") // net/http: no Server header
	named := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Server", "upstream/1.0")
		_, _ = w.Write([]byte("hi\n"))
	}))
	t.Cleanup(named.Close)
	res := staticResolver(map[string]string{
		"default/web": hostOf(web), "default/api": hostOf(named), "default/closed": closedAddr(t),
	})
	newHandler := func(table *Table) *Handler {
		h, err := NewHandler(Options{Node: "n", Resolve: res}, table)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		return h
	}
	cases := []struct {
		host, path string
		status     int
		server     string
	}{
		{"app.example", "/", 200, ServerName},
		{"app.example", "/api", 200, "upstream/1.0"},
		{"unknown.example", "/", 404, ServerName},
		{"closed.example", "/", 502, ServerName},
		{"ghost.example", "/", 503, ServerName},
	}
	check := func(what string, resp *http.Response, status int, server string) {
		t.Helper()
		if resp.StatusCode != status {
			t.Errorf("%s: status %d, want %d", what, resp.StatusCode, status)
		}
		if got := resp.Header.Values("Server"); len(got) != 1 || got[0] != server {
			t.Errorf("%s: Server %q, want [%q]", what, got, server)
		}
	}

	px := startProxy(t, newHandler(webAPITable(t)))
	for _, c := range cases {
		resp, _ := doReq(t, px.Client(), "GET", px.URL+c.path, c.host, nil, nil)
		check("plain "+c.host+c.path, resp, c.status, c.server)
	}
	// HEAD and HTTP/1.0 heads too, and a request the plain server refuses itself.
	rc := dialRaw(t, px.Listener.Addr().String())
	rc.send("HEAD / HTTP/1.0\r\nHost: app.example\r\n\r\n")
	resp, _ := rc.read("HEAD")
	check("plain HEAD HTTP/1.0", resp, 200, ServerName)
	rc = dialRaw(t, px.Listener.Addr().String())
	rc.send("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
	resp, _ = rc.read("GET")
	check("plain two Host headers", resp, 400, ServerName)

	// TLS: net/http's server, h2 and HTTP/1.1.
	ca, err := NewCA("lab")
	if err != nil {
		t.Fatal(err)
	}
	table, warns := Build([]Ingress{
		mkIngress("default", "shop",
			mkRule("app.example", mkPath("/", prefix, "web"), mkPath("/api", prefix, "api")),
			mkRule("closed.example", mkPath("/", prefix, "closed")),
			mkRule("ghost.example", mkPath("/", prefix, "ghost")),
		),
	}, "")
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	store, _, err := BuildCertStore(ca, table, nil, nil, "default.netlab")
	if err != nil {
		t.Fatal(err)
	}
	srv := DefaultServer.HTTPS("", newHandler(table), NewCertSelector(store).TLSConfig())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	for _, h2 := range []bool{true, false} {
		cl := tlsClientProto(ln.Addr().String(), h2)
		for _, cs := range cases {
			resp, _ := doReq(t, cl, "GET", "https://"+cs.host+cs.path, "", nil, nil)
			wantMajor := map[bool]int{true: 2, false: 1}[h2]
			if resp.ProtoMajor != wantMajor {
				t.Errorf("https %s%s: %s, want HTTP/%d", cs.host, cs.path, resp.Proto, wantMajor)
			}
			check("https "+resp.Proto+" "+cs.host+cs.path, resp, cs.status, cs.server)
		}
		cl.CloseIdleConnections()
	}
}

// tlsClientProto dials addr whatever the URL says, skips verification (the certificate
// is not what these tests look at) and speaks h2 or HTTP/1.1 only.
func tlsClientProto(addr string, h2 bool) *http.Client {
	tr := tlsTransport(addr, &tls.Config{InsecureSkipVerify: true})
	if h2 {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr}
}

// TestServiceModeNoEndpointsIs503: in the service mode a ClusterIP that refuses the
// connection (kube-proxy REJECTs when a Service has no endpoint) answers 503 when the
// endpoints list no ready pod for the Service, as in the endpoints mode and as
// ingress-nginx does; 502 when they list some (a pod gone before the controller noticed)
// or have no record of it. A ClusterIP that accepts is used whatever the endpoints say (a
// view a moment old never turns a request away).
func TestServiceModeNoEndpointsIs503(t *testing.T) {
	web := echoUpstream(t, "web")
	refused := closedAddr(t)
	ready := map[string][]string{"default/web": {}, "default/api": {}, "default/closed": {"10.0.0.1:80"}}
	eps := func(ns, name string, _ ServiceBackendPort) (*Backends, error) {
		a, ok := ready[ns+"/"+name]
		if !ok {
			return nil, errors.New("no endpoints record")
		}
		return &Backends{Addrs: a}, nil
	}
	h, err := NewHandler(Options{
		Resolve: staticResolver(map[string]string{
			"default/web": hostOf(web), "default/api": refused, "default/closed": refused, "default/hang": refused,
		}),
		Endpoints: eps,
	}, webAPITable(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	px := startProxy(t, h)
	for _, c := range []struct {
		host, path string
		status     int
		body       string
	}{
		{"app.example", "/", 200, `"name":"web"`},                              // accepted: served
		{"app.example", "/api", 503, "no upstream for service default/api:80"}, // refused, no endpoint
		{"closed.example", "/", 502, "upstream unreachable"},                   // refused, endpoints listed
		{"hang.example", "/", 502, "upstream unreachable"},                     // refused, no record
	} {
		resp, body := doReq(t, px.Client(), "GET", px.URL+c.path, c.host, nil, nil)
		if resp.StatusCode != c.status || !strings.Contains(string(body), c.body) {
			t.Errorf("%s%s: %d %q, want %d with %q", c.host, c.path, resp.StatusCode, body, c.status, c.body)
		}
	}
}

// TestTLSEntryWithoutHostsIsDefault: a spec.tls entry without hosts "defaults to the
// wildcard host": its Secret's certificate answers clients without SNI and names no entry
// covers, besides its Ingress's own hosts; an entry with hosts leaves the default alone.
func TestTLSEntryWithoutHostsIsDefault(t *testing.T) {
	ca, err := NewCA("lab")
	if err != nil {
		t.Fatal(err)
	}
	sec, cert := secretFor(t, "default", "wild-tls", "foo.bar.com")
	other, otherCert := secretFor(t, "default", "other-tls", "other.example")
	ing := mkIngress("default", "foo", mkRule("foo.bar.com", mkPath("/", prefix, "web")))
	ing.Spec.TLS = []IngressTLS{{SecretName: "wild-tls"}}
	ing2 := mkIngress("default", "other", mkRule("other.example", mkPath("/", prefix, "web")))
	ing2.Spec.TLS = []IngressTLS{{Hosts: []string{"other.example"}, SecretName: "other-tls"}}
	table, warns := Build([]Ingress{ing, ing2}, "")
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	store, warns, err := BuildCertStore(ca, table, []Secret{sec, other}, nil, "node-1")
	if err != nil || len(warns) != 0 {
		t.Fatalf("%v %q", err, warns)
	}
	for name, want := range map[string]*tls.Certificate{"": cert, "nobody.example": cert, "foo.bar.com": cert, "other.example": otherCert} {
		if got := store.Get(name); !bytes.Equal(got.Certificate[0], want.Certificate[0]) {
			t.Errorf("SNI %q: not the expected certificate", name)
		}
	}
	// Only entries with hosts: the default stays the lab CA's.
	table, _ = Build([]Ingress{ing2}, "")
	store, _, _ = BuildCertStore(ca, table, []Secret{sec, other}, nil, "node-1")
	if d := store.Get(""); bytes.Equal(d.Certificate[0], otherCert.Certificate[0]) || bytes.Equal(d.Certificate[0], cert.Certificate[0]) {
		t.Error("an entry with hosts became the default certificate")
	}
}
