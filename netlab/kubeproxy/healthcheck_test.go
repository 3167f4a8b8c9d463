package kubeproxy_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// No root needed: the health check answer as kube-proxy gives it.
func TestHealthCheckHandler(t *testing.T) {
	ports := []kubeproxy.ServicePort{
		{Namespace: "default", Name: "solo", Port: 80, Protocol: "TCP", Endpoints: []kubeproxy.Endpoint{
			{Pod: "solo-1", Node: "node-2", IP: "10.244.2.3", Port: 8080, Ready: true},
			{Pod: "solo-2", Node: "node-2", IP: "10.244.2.4", Port: 8080, Ready: false},
		}},
		// A second port of the same Service: its endpoints are the same pods, counted once.
		{Namespace: "default", Name: "solo", PortName: "alt", Port: 81, Protocol: "TCP", Endpoints: []kubeproxy.Endpoint{
			{Pod: "solo-1", Node: "node-2", IP: "10.244.2.3", Port: 8081, Ready: true},
		}},
	}
	for _, tc := range []struct {
		node string
		code int
		n    int
	}{{"node-2", http.StatusOK, 1}, {"node-1", http.StatusServiceUnavailable, 0}} {
		rec := httptest.NewRecorder()
		agent.HealthCheckHandler("default/solo", tc.node, func() []kubeproxy.ServicePort { return ports }).
			ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var body struct {
			Service struct {
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"service"`
			LocalEndpoints int `json:"localEndpoints"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s: %v: %q", tc.node, err, rec.Body.String())
		}
		if rec.Code != tc.code || body.LocalEndpoints != tc.n || body.Service.Namespace != "default" || body.Service.Name != "solo" ||
			rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s %v, want %d with localEndpoints %d", tc.node, rec.Code, rec.Body.String(), rec.Header(), tc.code, tc.n)
		}
		// Byte for byte kube-proxy's body (its hcHandler's dedented template).
		want := "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"solo\"\n\t},\n\t\"localEndpoints\": " +
			strconv.Itoa(tc.n) + ",\n\t\"serviceProxyHealthy\": true\n}"
		if rec.Body.String() != want {
			t.Errorf("%s: body %q, want %q", tc.node, rec.Body.String(), want)
		}
	}
}
