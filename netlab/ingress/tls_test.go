package ingress

// Address plan: the HTTPS proxy listens on 127.0.0.1:0; clients dial that address
// whatever the URL's host name, so SNI and Host carry the lab names (app.example, ...).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestIssue(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue("App.Example", "*.wild.example", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Leaf
	if strings.Join(l.DNSNames, ",") != "app.example,*.wild.example" || len(l.IPAddresses) != 1 || l.Subject.CommonName != "App.Example" {
		t.Errorf("SANs %v %v CN %q", l.DNSNames, l.IPAddresses, l.Subject.CommonName)
	}
	for _, name := range []string{"app.example", "x.wild.example", "10.0.0.1"} {
		if _, err := l.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()}); err != nil {
			t.Errorf("verify %s: %v", name, err)
		}
	}
	if _, err := l.Verify(x509.VerifyOptions{DNSName: "a.b.wild.example", Roots: ca.Pool()}); err == nil {
		t.Error("wildcard certificate verified for two labels")
	}
	if _, err := ca.Issue(); err == nil {
		t.Error("Issue without hosts succeeded")
	}
}

// secretFor makes a kubernetes.io/tls Secret holding a certificate from another CA.
func secretFor(t *testing.T, ns, name string, hosts ...string) (Secret, *tls.Certificate) {
	t.Helper()
	other, err := NewCA("secret issuer")
	if err != nil {
		t.Fatal(err)
	}
	c, err := other.Issue(hosts...)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return Secret{
		ObjectMeta: ObjectMeta{Namespace: ns, Name: name},
		Type:       SecretTypeTLS,
		Data: map[string][]byte{
			TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
			TLSPrivateKeyKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		},
	}, c
}

func tlsTable(t *testing.T) *Table {
	t.Helper()
	ing := mkIngress("default", "secure",
		mkRule("app.example", mkPath("/", prefix, "web")),
		mkRule("*.wild.example", mkPath("/", prefix, "web")),
		mkRule("sec.example", mkPath("/", prefix, "web")),
		mkRule("missing.example", mkPath("/", prefix, "web")),
	)
	ing.Spec.TLS = []IngressTLS{
		{Hosts: []string{"app.example", "*.wild.example"}}, // issued by the lab CA
		{Hosts: []string{"sec.example"}, SecretName: "sec-tls"},
		{Hosts: []string{"missing.example"}, SecretName: "no-such-secret"},
		// The same host again from a Secret: the Secret wins over the issued certificate.
		{Hosts: []string{"app.example"}, SecretName: "app-tls"},
	}
	table, warns := Build([]Ingress{ing}, "")
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	return table
}

func TestBuildCertStoreSNI(t *testing.T) {
	ca, err := NewCA("lab")
	if err != nil {
		t.Fatal(err)
	}
	secSecret, secCert := secretFor(t, "default", "sec-tls", "sec.example")
	appSecret, appCert := secretFor(t, "default", "app-tls", "app.example")
	wrongNS, _ := secretFor(t, "other", "no-such-secret", "missing.example")
	store, warns, err := BuildCertStore(ca, tlsTable(t), []Secret{secSecret, appSecret, wrongNS}, nil, "node-1.netlab")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "tls secret default/no-such-secret not found") {
		t.Errorf("warnings %q", warns)
	}
	def := store.Default()
	if def == nil || def.Leaf.DNSNames[0] != "node-1.netlab" {
		t.Fatalf("default certificate %v", def)
	}
	leafOf := func(name string) *x509.Certificate { return store.Get(name).Leaf }
	if !leafOf("sec.example").Equal(secCert.Leaf) {
		t.Error("sec.example does not use its Secret's certificate")
	}
	if !leafOf("APP.example.").Equal(appCert.Leaf) {
		t.Error("app.example does not use its Secret's certificate (Secrets take precedence)")
	}
	for _, name := range []string{"x.wild.example", "missing.example"} {
		l := leafOf(name)
		if _, err := l.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool()}); err != nil {
			t.Errorf("%s: issued certificate does not verify: %v", name, err)
		}
	}
	for _, name := range []string{"", "a.b.wild.example", "wild.example", "unknown.example"} {
		if store.Get(name) != def {
			t.Errorf("%q: want the default certificate", name)
		}
	}
	if got := strings.Join(store.Names(), ","); got != "*.wild.example,app.example,missing.example,sec.example" {
		t.Errorf("Names() = %s", got)
	}

	// A Secret of the wrong type is refused with a warning.
	bad := secSecret
	bad.Type = SecretTypeOpaque
	_, warns, err = BuildCertStore(ca, tlsTable(t), []Secret{bad, appSecret}, nil)
	if err != nil || len(warns) != 2 || !strings.Contains(strings.Join(warns, "\n"), `type is "Opaque"`) {
		t.Errorf("wrong-type secret: err %v warnings %q", err, warns)
	}
}

// tlsClient dials addr whatever the URL says, trusts only pool, and offers h2.
func tlsClient(addr string, pool *x509.CertPool) *http.Client {
	tr := tlsTransport(addr, &tls.Config{RootCAs: pool})
	tr.ForceAttemptHTTP2 = true
	return &http.Client{Transport: tr}
}

// tlsTransport dials addr whatever the URL says, with TLS configured by cfg.
func tlsTransport(addr string, cfg *tls.Config) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: cfg,
	}
}

// TestHTTPSEndToEnd: the HTTPS server with SNI selection and HTTP/2, proxying to an
// upstream that sees X-Forwarded-Proto https.
func TestHTTPSEndToEnd(t *testing.T) {
	ca, err := NewCA("lab")
	if err != nil {
		t.Fatal(err)
	}
	web := echoUpstream(t, "web")
	table := tlsTable(t)
	// No Secrets given: every tls host gets a certificate from the lab CA.
	store, _, err := BuildCertStore(ca, table, nil, nil, "default.netlab")
	if err != nil {
		t.Fatal(err)
	}
	sel := NewCertSelector(store)
	h, _ := NewHandler(Options{Node: "node-1", Resolve: staticResolver(map[string]string{"default/web": hostOf(web)})}, table)
	srv := DefaultServer.HTTPS("", h, sel.TLSConfig())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	c := tlsClient(ln.Addr().String(), ca.Pool())
	for _, host := range []string{"app.example", "x.wild.example", "missing.example"} {
		resp, err := c.Get("https://" + host + "/hello")
		if err != nil {
			t.Fatalf("GET https://%s/: %v", host, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d %s", host, resp.StatusCode, b)
		}
		if resp.ProtoMajor != 2 || resp.TLS.NegotiatedProtocol != "h2" {
			t.Errorf("%s: proto %s ALPN %q, want HTTP/2", host, resp.Proto, resp.TLS.NegotiatedProtocol)
		}
		if err := resp.TLS.PeerCertificates[0].VerifyHostname(host); err != nil {
			t.Errorf("%s: served certificate: %v", host, err)
		}
		e := decodeEcho(t, b)
		if e.Headers.Get("X-Forwarded-Proto") != "https" || e.Headers.Get("X-Forwarded-Port") != port || e.Host != host {
			t.Errorf("%s: upstream saw proto %q port %q host %q", host, e.Headers.Get("X-Forwarded-Proto"), e.Headers.Get("X-Forwarded-Port"), e.Host)
		}
	}

	// No certificate for the name: the default one is served (and does not verify).
	for _, sni := range []string{"nobody.example", "a.b.wild.example", ""} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatalf("dial with SNI %q: %v", sni, err)
		}
		got := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		if !got.Equal(store.Default().Leaf) {
			t.Errorf("SNI %q: got certificate for %v, want the default", sni, got.DNSNames)
		}
	}
	_, err = c.Get("https://nobody.example/")
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Errorf("unknown host: want a certificate verification error, got %v", err)
	}

	// Swapping the store changes the certificate for new handshakes.
	other, _ := NewCA("other")
	store2, _, err := BuildCertStore(other, table, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sel.Swap(store2)
	c2 := tlsClient(ln.Addr().String(), other.Pool())
	resp, err := c2.Get("https://app.example/")
	if err != nil {
		t.Fatalf("after swap: %v", err)
	}
	resp.Body.Close()
}
