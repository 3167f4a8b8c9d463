package ingress

import (
	"crypto/tls"
	"net"
	"net/http"
	"testing"
)

// The proxy is served by two servers: PlainServer on the plain-HTTP port (its own loop,
// rawio sockets) and net/http's server on the TLS port, which speaks HTTP/2 to clients that
// offer it. Both hand the same Handler their requests, but not the same ones: net/http's
// request context is cancelled by the server (an h2 stream reset, a closed connection) and
// watched with context.AfterFunc, PlainServer's interrupts the upstream connection itself;
// h2 request bodies have no framing of their own to keep, responses are h2 frames. The
// behaviour tests that matter on both paths run through forEachFront.

// front starts the proxy for h and returns it with a client for it.
type front func(t *testing.T, h http.Handler) *proxyServer

var fronts = []struct {
	name  string
	start front
}{
	{"plain", startProxy},
	{"tls-h2", startProxyTLS},
}

// forEachFront runs test once per server, as subtests named after it.
func forEachFront(t *testing.T, test func(t *testing.T, start front)) {
	t.Helper()
	for _, f := range fronts {
		t.Run(f.name, func(t *testing.T) { test(t, f.start) })
	}
}

// startProxyTLS serves h on 127.0.0.1 as the agent's TLS listener does (Server.HTTPS,
// net/http with HTTP/2 offered in ALPN), with a certificate for 127.0.0.1 from a CA of its
// own. Its client speaks HTTP/2 only: a response over anything else fails the test.
func startProxyTLS(t *testing.T, h http.Handler) *proxyServer {
	t.Helper()
	ca, err := NewCA("fronts")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := DefaultServer.HTTPS("", h, NewCertSelector(NewCertStore(cert)).TLSConfig())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: true}
	p := &proxyServer{URL: "https://" + ln.Addr().String(), Listener: ln, https: srv,
		client: &http.Client{Transport: h2Only{t: t, rt: tr}}}
	t.Cleanup(p.Close)
	return p
}

// h2Only fails the test on a response that did not come over HTTP/2.
type h2Only struct {
	t  *testing.T
	rt *http.Transport
}

func (o h2Only) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := o.rt.RoundTrip(r)
	if err == nil && resp.ProtoMajor != 2 {
		o.t.Errorf("%s %s: answered over %s, want HTTP/2", r.Method, r.URL, resp.Proto)
	}
	return resp, err
}

func (o h2Only) CloseIdleConnections() { o.rt.CloseIdleConnections() }
