package ingressagent

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// The endpoints mode reads the controller's file: ready endpoints per Service port, by
// number and by name; serving terminating ones only when none is ready.
func TestReadEndpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.json")
	f := kubeproxy.EndpointsFile{Generation: 1, Ports: []kubeproxy.ServicePort{
		{Namespace: "default", Name: "web", PortName: "http", Protocol: "TCP", ClusterIP: "10.96.0.11", Port: 80, Endpoints: []kubeproxy.Endpoint{
			{Pod: "web-1", IP: "10.244.1.2", Port: 8080, Ready: true},
			{Pod: "web-2", IP: "10.244.1.3", Port: 8080},
			{Pod: "web-3", IP: "10.244.2.2", Port: 8080, Ready: true},
		}},
		{Namespace: "default", Name: "old", Protocol: "TCP", ClusterIP: "10.96.0.12", Port: 80, Endpoints: []kubeproxy.Endpoint{
			{Pod: "old-1", IP: "10.244.1.4", Port: 8080, Serving: true, Terminating: true},
		}},
	}}
	b, _ := json.Marshal(f)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res := readEndpoints(path, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).resolve
	for _, port := range []ingress.ServiceBackendPort{{Number: 80}, {Name: "http"}} {
		bk, err := res("default", "web", port)
		if err != nil || !slices.Equal(bk.Addrs, []string{"10.244.1.2:8080", "10.244.2.2:8080"}) {
			t.Errorf("web port %+v: %v %v", port, bk, err)
		}
	}
	if bk, err := res("default", "old", ingress.ServiceBackendPort{Number: 80}); err != nil || !slices.Equal(bk.Addrs, []string{"10.244.1.4:8080"}) {
		t.Errorf("old (only terminating): %v %v", bk, err)
	}
	if _, err := res("default", "web", ingress.ServiceBackendPort{Number: 81}); err == nil {
		t.Error("web port 81: no error")
	}
	if _, err := res("default", "nope", ingress.ServiceBackendPort{Number: 80}); err == nil {
		t.Error("unknown Service: no error")
	}
}

// After a change of the endpoints file, the pooled connections that may lead to a pod no
// longer used are stale — to a ClusterIP whose endpoints changed, to a pod gone, unready
// or terminating while others are ready — and those to unchanged Services and to pods
// still picked are not; a Service port whose endpoints did not change keeps its
// round-robin where it was.
func TestEndpointsChangeStaleAndRoundRobin(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	write := func(ports ...kubeproxy.ServicePort) *endpointsView {
		t.Helper()
		path := filepath.Join(dir, "endpoints.json")
		b, _ := json.Marshal(kubeproxy.EndpointsFile{Generation: 1, Ports: ports})
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return readEndpoints(path, nil, log)
	}
	ep := func(pod, ip string, ready, terminating bool) kubeproxy.Endpoint {
		return kubeproxy.Endpoint{Pod: pod, IP: ip, Port: 8080, Ready: ready, Serving: ready || terminating, Terminating: terminating}
	}
	web := func(eps ...kubeproxy.Endpoint) kubeproxy.ServicePort {
		return kubeproxy.ServicePort{Namespace: "default", Name: "web", Protocol: "TCP", ClusterIP: "10.96.0.11", Port: 80, Endpoints: eps}
	}
	api := kubeproxy.ServicePort{Namespace: "default", Name: "api", PortName: "http", Protocol: "TCP", ClusterIP: "10.96.0.12", Port: 80,
		Endpoints: []kubeproxy.Endpoint{ep("api-1", "10.244.2.2", true, false), ep("api-2", "10.244.2.3", true, false)}}

	before := write(web(ep("web-1", "10.244.1.2", true, false), ep("web-2", "10.244.1.3", true, false), ep("web-3", "10.244.1.4", true, false)), api)
	apiBefore, err := before.resolve("default", "api", ingress.ServiceBackendPort{Name: "http"})
	if err != nil {
		t.Fatal(err)
	}
	first := apiBefore.Pick()
	// web-2 is gone, web-3 terminates while web-1 is ready; api is unchanged.
	path := filepath.Join(dir, "endpoints.json")
	b, _ := json.Marshal(kubeproxy.EndpointsFile{Generation: 2, Ports: []kubeproxy.ServicePort{
		web(ep("web-1", "10.244.1.2", true, false), ep("web-3", "10.244.1.4", false, true)), api}})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	after := readEndpoints(path, before, log)

	for addr, want := range map[string]bool{
		"10.96.0.11:80":   true,  // web's endpoints changed: kube-proxy may have pinned it to web-2
		"10.96.0.12:80":   false, // api unchanged
		"10.244.1.2:8080": false, // web-1 still picked
		"10.244.1.3:8080": true,  // web-2 gone
		"10.244.1.4:8080": true,  // web-3 terminating while web-1 is ready
		"10.244.2.2:8080": false, // api-1
		"10.244.9.9:8080": true,  // unknown to both
	} {
		if got := before.stale(after, addr); got != want {
			t.Errorf("stale(%s) = %v, want %v", addr, got, want)
		}
	}
	apiAfter, err := after.resolve("default", "api", ingress.ServiceBackendPort{Number: 80})
	if err != nil {
		t.Fatal(err)
	}
	if next := apiAfter.Pick(); next == first {
		t.Errorf("api's round-robin started over after a change of another Service: %s twice", first)
	}
	if webAfter, _ := after.resolve("default", "web", ingress.ServiceBackendPort{Number: 80}); !slices.Equal(webAfter.Addrs, []string{"10.244.1.2:8080"}) {
		t.Errorf("web after the change: %v, want web-1 only", webAfter.Addrs)
	}

	// web-3, terminating, leaves: the ready endpoints stay web-1 alone, but a connection to
	// web's ClusterIP dialled before kube-proxy synced the last change may lead to web-3.
	b, _ = json.Marshal(kubeproxy.EndpointsFile{Generation: 3, Ports: []kubeproxy.ServicePort{
		web(ep("web-1", "10.244.1.2", true, false)), api}})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	gone := readEndpoints(path, after, log)
	for addr, want := range map[string]bool{"10.96.0.11:80": true, "10.244.1.2:8080": false, "10.96.0.12:80": false} {
		if got := after.stale(gone, addr); got != want {
			t.Errorf("web-3 left: stale(%s) = %v, want %v", addr, got, want)
		}
	}

	// What leaves connections as they are: a new endpoint, the same endpoints in another
	// order. What does not: a ready endpoint that turns unready but stays in the file.
	for _, c := range []struct {
		what  string
		api   []kubeproxy.Endpoint
		stale bool
	}{
		{"api-3 added", []kubeproxy.Endpoint{ep("api-1", "10.244.2.2", true, false), ep("api-2", "10.244.2.3", true, false), ep("api-3", "10.244.2.4", true, false)}, false},
		{"api's endpoints reordered", []kubeproxy.Endpoint{ep("api-2", "10.244.2.3", true, false), ep("api-1", "10.244.2.2", true, false)}, false},
		{"api-2 unready", []kubeproxy.Endpoint{ep("api-1", "10.244.2.2", true, false), ep("api-2", "10.244.2.3", false, false)}, true},
	} {
		changed := api
		changed.Endpoints = c.api
		b, _ := json.Marshal(kubeproxy.EndpointsFile{Generation: 4, Ports: []kubeproxy.ServicePort{web(ep("web-1", "10.244.1.2", true, false)), changed}})
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		v := readEndpoints(path, gone, log)
		if got := gone.stale(v, "10.96.0.12:80"); got != c.stale {
			t.Errorf("%s: api's ClusterIP stale %v, want %v", c.what, got, c.stale)
		}
	}
}

// An endpoints change is marked when the ingress reads it, and marked again once the
// node's kube-proxy reports that it synced the file's generation (a connection dialled
// to a ClusterIP in between went by the old rules).
func TestEndpointsChangeMarkedAgainAfterKubeProxySync(t *testing.T) {
	dir := t.TempDir()
	rd := rundir.At(dir)
	if err := os.MkdirAll(filepath.Dir(rd.SyncStatus("node-1")), 0o755); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))
	epPath := rd.Endpoints()
	write := func(gen int64, eps ...kubeproxy.Endpoint) {
		t.Helper()
		b, _ := json.Marshal(kubeproxy.EndpointsFile{Generation: gen, Ports: []kubeproxy.ServicePort{
			{Namespace: "default", Name: "web", Protocol: "TCP", ClusterIP: "10.96.0.11", Port: 80, Endpoints: eps}}})
		if err := os.WriteFile(epPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	one := kubeproxy.Endpoint{Pod: "web-1", IP: "10.244.1.2", Port: 8080, Ready: true, Serving: true}
	two := kubeproxy.Endpoint{Pod: "web-2", IP: "10.244.1.3", Port: 8080, Ready: true, Serving: true}
	write(1, one, two)
	h, err := ingress.NewHandler(ingress.Options{Resolve: func(string, string, ingress.ServiceBackendPort) (string, error) { return "10.96.0.11:80", nil }}, &ingress.Table{})
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{cfg: IngressConfig{Lab: "t", Node: "node-1", Dir: dir}, h: h, log: log, epPath: epPath,
		epGen: rundir.FileStamp(epPath), eps: readEndpoints(epPath, nil, log), dir: rd}
	count := func(msg string) int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logged.String(), msg)
	}
	const first, again = "stale upstream connections marked\"", "marked again"

	write(2, one) // web-2 leaves; kube-proxy has not synced yet
	p.endpointsChanged()
	if count(first) != 1 || count(again) != 0 {
		t.Fatalf("after the change: %d first marks, %d second marks, want 1 and 0\n%s", count(first), count(again), logged.String())
	}
	if err := rd.WriteSyncStatus(kubeproxy.SyncStatus{Node: "node-1", Generation: 1}); err != nil {
		t.Fatal(err)
	}
	p.endpointsChanged()
	if count(again) != 0 {
		t.Fatalf("kube-proxy at generation 1 of 2: the change was marked again\n%s", logged.String())
	}
	if err := rd.WriteSyncStatus(kubeproxy.SyncStatus{Node: "node-1", Generation: 2}); err != nil {
		t.Fatal(err)
	}
	p.endpointsChanged()
	p.endpointsChanged()
	if count(first) != 1 || count(again) != 1 {
		t.Errorf("after kube-proxy's sync: %d first marks, %d second marks, want 1 and 1\n%s", count(first), count(again), logged.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
