package ingress

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

// The upstream mode comes from the Ingress's annotation, else the table's default; an
// unknown value is reported and the default applies.
func TestBuildUpstreamModes(t *testing.T) {
	ep := mkIngress("default", "ep", mkRule("ep.example", mkPath("/", prefix, "web")))
	ep.Annotations = map[string]string{AnnotationUpstream: UpstreamEndpoints}
	bad := mkIngress("default", "bad", mkRule("bad.example", mkPath("/", prefix, "web")))
	bad.Annotations = map[string]string{AnnotationUpstream: "pods"}
	plain := mkIngress("default", "plain", mkRule("plain.example", mkPath("/", prefix, "web")))
	ings := []Ingress{ep, bad, plain}

	for _, def := range []string{"", UpstreamService, UpstreamEndpoints} {
		table, warns := BuildWith(ings, BuildOptions{Upstream: def})
		wantDef := def
		if wantDef == "" {
			wantDef = UpstreamService
		}
		want := map[string]string{"ep.example": UpstreamEndpoints, "bad.example": wantDef, "plain.example": wantDef}
		for host, mode := range want {
			r, ok := table.Match(host, "/")
			if !ok || r.Upstream != mode {
				t.Errorf("default %q: %s routes in mode %q (ok %v), want %q", def, host, r.Upstream, ok, mode)
			}
		}
		if len(warns) != 1 || !strings.Contains(warns[0], `ingress default/bad: annotation netlab.dev/upstream: "pods"`) {
			t.Errorf("default %q: warnings %q", def, warns)
		}
	}
}

// In endpoints mode every request goes to the next ready endpoint (round-robin), even
// over one keep-alive client connection; without ready endpoints the answer is 503. The
// service mode keeps using the resolver's ClusterIP.
func TestProxyEndpointsMode(t *testing.T) {
	a, b, svc := echoUpstream(t, "a"), echoUpstream(t, "b"), echoUpstream(t, "svc")
	ep := mkIngress("default", "ep", mkRule("ep.example", mkPath("/", prefix, "web")), mkRule("none.example", mkPath("/", prefix, "empty")))
	ep.Annotations = map[string]string{AnnotationUpstream: UpstreamEndpoints}
	table, warns := Build([]Ingress{ep, mkIngress("default", "svc", mkRule("svc.example", mkPath("/", prefix, "web")))}, "")
	if len(warns) != 0 {
		t.Fatal(warns)
	}
	webEPs := &Backends{Addrs: []string{hostOf(a), hostOf(b)}}
	h, err := NewHandler(Options{
		Resolve: staticResolver(map[string]string{"default/web": hostOf(svc), "default/empty": hostOf(svc)}),
		Endpoints: func(ns, name string, _ ServiceBackendPort) (*Backends, error) {
			switch name {
			case "web":
				return webEPs, nil
			case "empty":
				return &Backends{}, nil
			}
			return nil, errors.New("unknown")
		},
	}, table)
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, h)
	c := &http.Client{}
	count := map[string]int{}
	for range 10 {
		resp, body := doReq(t, c, "GET", px.URL+"/", "ep.example", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("ep.example: %s %s", resp.Status, body)
		}
		count[decodeEcho(t, body).Name]++
	}
	if count["a"] != 5 || count["b"] != 5 {
		t.Errorf("endpoints mode over one connection: %v, want 5 each of a and b", count)
	}
	if resp, body := doReq(t, c, "GET", px.URL+"/", "svc.example", nil, nil); resp.StatusCode != 200 || decodeEcho(t, body).Name != "svc" {
		t.Errorf("service mode: %s %s, want the ClusterIP stand-in svc", resp.Status, body)
	}
	if resp, body := doReq(t, c, "GET", px.URL+"/", "none.example", nil, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("endpoints mode without ready endpoints: %s %s, want 503", resp.Status, body)
	}
}
