package ingress_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
)

// TestIntegrationUpstreamModes sends real requests through node-1's ingress over one
// keep-alive client connection: in endpoints mode (the Lab's default mode here, no
// annotation) 100 requests reach all 10 pods (the ingress balances per request); in
// service mode (an Ingress's annotation over the Lab's default) they stay on the few pods
// kube-proxy picked for the ingress's pooled connections. The Ingress of another class has no route,
// no hosts entry in the client, and status marks it ignored; the one of an IngressClass
// of the lab's controller is served. A Service without pods answers 503 in the service
// mode, and every answer names a Server.
func TestIntegrationUpstreamModes(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "ups", labtest.Fixture(t, "upstream-modes.yaml"))
	cns := plan.NetnsName(p.Lab, "client")
	url := "http://" + nodeIP(t, p, "node-1") + "/"
	c := labtest.Client(cns, true)

	get := func(host string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s Host %s: %v", url, host, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	pods := func(host string) map[string]int {
		t.Helper()
		seen := map[string]int{}
		for range 100 {
			resp, body := get(host)
			var e labtest.Echo
			if resp.StatusCode != 200 || json.Unmarshal(body, &e) != nil {
				t.Fatalf("Host %s: %s %q", host, resp.Status, body)
			}
			seen[e.Pod]++
		}
		return seen
	}

	if seen := pods("ep.example"); len(seen) != 10 {
		t.Errorf("endpoints mode: 100 requests reached %d of 10 pods: %v", len(seen), seen)
	}
	if seen := pods("svc.example"); len(seen) > 3 {
		t.Errorf("service mode: 100 requests over one client connection reached %d pods, want the few behind the ingress's pooled connections: %v", len(seen), seen)
	}

	// Every answer names a server: the echo pods send no Server header.
	if resp, _ := get("svc.example"); resp.Header.Get("Server") != ingress.ServerName {
		t.Errorf("svc.example: Server %q, want %q", resp.Header.Get("Server"), ingress.ServerName)
	}
	// Class public is the lab's controller's (an IngressClass object): served.
	if resp, body := get("pub.example"); resp.StatusCode != http.StatusOK {
		t.Errorf("Host pub.example (class public): %s %q, want 200", resp.Status, body)
	}
	// No pod behind the Service: 503 from the ingress, not kube-proxy's refused connect.
	if resp, body := get("empty.example"); resp.StatusCode != http.StatusServiceUnavailable ||
		!strings.Contains(string(body), "no upstream for service default/idle:80") || resp.Header.Get("Server") != ingress.ServerName {
		t.Errorf("Host empty.example (no endpoints, service mode): %s %q %v, want 503 from the ingress", resp.Status, body, resp.Header)
	}

	// Another controller's Ingress: not served, not resolvable, marked ignored.
	if resp, body := get("other.example"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("Host other.example (class nginx): %s %q, want 404", resp.Status, body)
	}
	hosts, err := os.ReadFile(filepath.Join("/etc/netns", cns, "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hosts), "ep.example") || strings.Contains(string(hosts), "other.example") {
		t.Errorf("client hosts file: want ep.example and no other.example:\n%s", hosts)
	}
	out, err := labtest.CLI(t, "status", "--name", p.Lab, "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st lab.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status json: %v\n%s", err, out)
	}
	got := map[string]string{}
	vip := plan.Addr(p.LB.VIP)
	for _, in := range st.Ingresses {
		got[in.Name] = in.Upstream
		if in.Ignored {
			got[in.Name] = "ignored " + in.Class
		}
		// Served Ingresses are exposed at the VIP (the suite's "Ingress status shows the
		// IP address"); an ignored one shows none.
		if want := map[bool]string{true: "", false: vip}[in.Ignored]; in.Address != want {
			t.Errorf("status: ingress %s address %q, want %q", in.Name, in.Address, want)
		}
	}
	want := map[string]string{"ep": "endpoints", "svc": "service", "other": "ignored nginx", "pub": "service"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("status: ingress %s is %q, want %q (all: %v)", k, got[k], v, got)
		}
	}

	// trace names the mode that routed the request, in words and in its JSON.
	out, err = labtest.CLI(t, "trace", "--name", p.Lab, "http://ep.example/")
	if err != nil || !strings.Contains(out, "endpoints mode") {
		t.Errorf("trace http://ep.example/: %v, want the ingress hop to say endpoints mode:\n%s", err, out)
	}
	for host, want := range map[string]string{"ep.example": "endpoints", "svc.example": "service"} {
		out, err := labtest.CLI(t, "trace", "--name", p.Lab, "-o", "json", "http://"+host+"/")
		var tr lab.Trace
		if err == nil {
			err = json.Unmarshal([]byte(out), &tr)
		}
		if err != nil {
			t.Errorf("trace -o json http://%s/: %v\n%s", host, err, out)
			continue
		}
		modes := []string{}
		for _, h := range tr.Hops {
			if h.Component == "ingress" {
				modes = append(modes, h.UpstreamMode)
			}
		}
		if len(modes) != 1 || modes[0] != want {
			t.Errorf("trace -o json http://%s/: ingress hops' upstreamMode %q, want one %q\n%s", host, modes, want, out)
		}
	}
}
