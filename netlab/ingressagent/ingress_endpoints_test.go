package ingressagent

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// The endpoints mode reads the controller's file: ready endpoints per Service port, by
// number and by name; serving terminating ones only when none is ready.
func TestLoadEndpointsResolver(t *testing.T) {
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
	res := loadEndpointsResolver(path, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
