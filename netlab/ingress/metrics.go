package ingress

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the proxy's Prometheus metrics, on their own registry (never the global
// one, so several handlers and tests do not collide).
//
//	netlab_ingress_requests_total{ingress,service,code}
//	netlab_ingress_upstream_duration_seconds{ingress,service} (histogram; time to the
//	    upstream's response headers, or to its failure)
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	upstream *prometheus.HistogramVec
	children sync.Map // metricKey → *metricChildren
}

// NewMetrics makes a fresh metric set and registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "netlab",
			Subsystem: "ingress",
			Name:      "requests_total",
			Help:      "Requests served by the ingress proxy, by Ingress, backend Service and status code (ingress and service empty when no rule matched).",
		}, []string{"ingress", "service", "code"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "netlab",
			Subsystem: "ingress",
			Name:      "upstream_duration_seconds",
			Help:      "Time from sending a request upstream to its response headers (or failure).",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"ingress", "service"}),
	}
	m.reg.MustRegister(m.requests, m.upstream)
	return m
}

// Registry returns the registry the metrics live on (to add process collectors, say).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// metricKey names one child of the metric vectors.
type metricKey struct {
	ing, svc string
	code     int
}

// metricChildren caches a request counter and an upstream histogram per key: the vectors'
// own lookup (hashing and checking every label value) was a few percent of the proxy's
// CPU per request.
type metricChildren struct {
	requests prometheus.Counter
	upstream prometheus.Observer
}

func (m *Metrics) observe(r Route, matched bool, status int, upstream time.Duration) {
	k := metricKey{code: status}
	if matched {
		k.ing, k.svc = r.Ingress, r.serviceString()
	}
	var c *metricChildren
	if v, ok := m.children.Load(k); ok {
		c = v.(*metricChildren)
	} else {
		c = &metricChildren{
			requests: m.requests.WithLabelValues(k.ing, k.svc, strconv.Itoa(status)),
			upstream: m.upstream.WithLabelValues(k.ing, k.svc),
		}
		if v, loaded := m.children.LoadOrStore(k, c); loaded {
			c = v.(*metricChildren)
		}
	}
	c.requests.Inc()
	if matched && upstream > 0 {
		c.upstream.Observe(upstream.Seconds())
	}
}
