package ingress

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// The metrics are a contract (dashboards and scrapes read them): names, help texts,
// labels, buckets, the order of series and the formatting of numbers. testdata/metrics.prom
// is what the Prometheus client library (client_golang v1.25.0, promhttp.HandlerFor of a
// registry holding the same two vectors) wrote for these observations; the exposition
// written here must be the same bytes.
func TestMetricsExpositionMatchesPrometheusLibrary(t *testing.T) {
	m := NewMetrics()
	shop := Route{Ingress: "default/shop", ServiceNamespace: "default", ServiceName: "web", ServicePort: ServiceBackendPort{Number: 80}}
	m.observe(shop, true, 200, 3*time.Millisecond)
	m.observe(shop, true, 200, 300*time.Millisecond)
	m.observe(shop, true, 502, 0)                                     // a failure before any upstream time: counted, not timed
	m.observe(Route{Ingress: "a\"b\\c\nd"}, true, 200, 2*time.Second) // label escaping
	m.observe(Route{}, false, 404, 0)                                 // no rule matched: empty labels

	want, err := os.ReadFile("testdata/metrics.prom")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if got := rec.Body.String(); got != string(want) {
		t.Errorf("exposition differs from the Prometheus library's:\n got:\n%s\nwant:\n%s", got, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8; escaping=underscores" {
		t.Errorf("Content-Type %q", ct)
	}

	// Nothing observed yet: an empty body, as the library writes for families without series.
	rec = httptest.NewRecorder()
	NewMetrics().Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Body.Len() != 0 {
		t.Errorf("empty metrics wrote %q", rec.Body.String())
	}
}

// A node's ingress workers each count their own requests; a scrape of the node gets the
// sum. The observations of the exposition test, split over two workers and merged (one of
// them through a snapshot sent as JSON, as a worker sends it), must write the same bytes as
// one set that saw them all.
func TestMetricsMergedAcrossWorkers(t *testing.T) {
	a, b := NewMetrics(), NewMetrics()
	shop := Route{Ingress: "default/shop", ServiceNamespace: "default", ServiceName: "web", ServicePort: ServiceBackendPort{Number: 80}}
	a.observe(shop, true, 200, 3*time.Millisecond)
	b.observe(shop, true, 200, 300*time.Millisecond)
	b.observe(shop, true, 502, 0)
	a.observe(Route{Ingress: "a\"b\\c\nd"}, true, 200, 2*time.Second)
	b.observe(Route{}, false, 404, 0)

	want, err := os.ReadFile("testdata/metrics.prom")
	if err != nil {
		t.Fatal(err)
	}
	wire, err := json.Marshal(b.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var fromB MetricsSnapshot
	if err := json.Unmarshal(wire, &fromB); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	MergedHandler(a, func() []MetricsSnapshot { return []MetricsSnapshot{fromB} }).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if got := rec.Body.String(); got != string(want) {
		t.Errorf("merged exposition differs from one set's:\n got:\n%s\nwant:\n%s", got, want)
	}
	// A snapshot of other buckets is refused, not added askew.
	if err := NewMetrics().Add(MetricsSnapshot{Upstream: []UpstreamCount{{Ingress: "x", Counts: []uint64{1}}}}); err == nil {
		t.Error("a histogram of 1 bucket was added")
	}
}
