package ingress

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics are the proxy's Prometheus metrics, each set its own (several handlers and
// tests do not collide):
//
//	netlab_ingress_requests_total{ingress,service,code}
//	netlab_ingress_upstream_duration_seconds{ingress,service} (histogram; time to the
//	    upstream's response headers, or to its failure)
//
// They are served in the Prometheus text exposition format (version 0.0.4), written here
// rather than by the Prometheus client library, whose package initialisation every start
// of the ingress agent would pay: the same names, help texts, labels, buckets, order of
// series and number formatting as that library's text output.
type Metrics struct {
	children sync.Map // metricKey → *metricChildren
	hists    sync.Map // [2]string{ingress, service} → *histogram
}

const (
	requestsName = "netlab_ingress_requests_total"
	requestsHelp = "Requests served by the ingress proxy, by Ingress, backend Service and status code (ingress and service empty when no rule matched)."
	upstreamName = "netlab_ingress_upstream_duration_seconds"
	upstreamHelp = "Time from sending a request upstream to its response headers (or failure)."
)

// upstreamBuckets are the histogram's upper bounds in seconds (+Inf implied).
var upstreamBuckets = [...]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// NewMetrics makes a fresh metric set.
func NewMetrics() *Metrics { return &Metrics{} }

// metricKey names one request counter.
type metricKey struct {
	ing, svc string
	code     int
}

// metricChildren are a request counter and the upstream histogram of its Ingress and
// Service, cached per key so that a request costs one map lookup and two atomic adds.
type metricChildren struct {
	requests atomic.Uint64
	upstream *histogram
}

// histogram counts observations per bucket (the last one past every bound) and sums
// them; the cumulative counts are made when the metrics are written.
type histogram struct {
	counts  [len(upstreamBuckets) + 1]atomic.Uint64
	sumBits atomic.Uint64 // float64 bits
}

func (h *histogram) observe(v float64) {
	i := 0
	for i < len(upstreamBuckets) && v > upstreamBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
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
		h, _ := m.hists.LoadOrStore([2]string{k.ing, k.svc}, &histogram{})
		v, _ := m.children.LoadOrStore(k, &metricChildren{upstream: h.(*histogram)})
		c = v.(*metricChildren)
	}
	c.requests.Add(1)
	if matched && upstream > 0 {
		c.upstream.observe(upstream.Seconds())
	}
}

// Handler serves the metrics in the Prometheus text exposition format.
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
		bw := bufio.NewWriter(w)
		m.write(bw)
		_ = bw.Flush()
	})
}

// write writes every series: each family's HELP and TYPE lines, then its series sorted by
// their label values (labels in name order); a family without series is left out.
func (m *Metrics) write(w *bufio.Writer) {
	type reqRow struct {
		ing, svc, code string
		n              uint64
	}
	var reqs []reqRow
	m.children.Range(func(k, v any) bool {
		mk := k.(metricKey)
		reqs = append(reqs, reqRow{mk.ing, mk.svc, strconv.Itoa(mk.code), v.(*metricChildren).requests.Load()})
		return true
	})
	type histRow struct {
		ing, svc string
		h        *histogram
	}
	var hists []histRow
	m.hists.Range(func(k, v any) bool {
		hk := k.([2]string)
		hists = append(hists, histRow{hk[0], hk[1], v.(*histogram)})
		return true
	})
	if len(reqs) > 0 {
		slices.SortFunc(reqs, func(a, b reqRow) int {
			if c := strings.Compare(a.code, b.code); c != 0 {
				return c
			}
			if c := strings.Compare(a.ing, b.ing); c != 0 {
				return c
			}
			return strings.Compare(a.svc, b.svc)
		})
		promHeader(w, requestsName, requestsHelp, "counter")
		for _, r := range reqs {
			w.WriteString(requestsName)
			promLabels(w, "code", r.code, "ingress", r.ing, "service", r.svc)
			promValue(w, float64(r.n))
		}
	}
	if len(hists) > 0 {
		slices.SortFunc(hists, func(a, b histRow) int {
			if c := strings.Compare(a.ing, b.ing); c != 0 {
				return c
			}
			return strings.Compare(a.svc, b.svc)
		})
		promHeader(w, upstreamName, upstreamHelp, "histogram")
		var le []byte
		for _, r := range hists {
			var cum uint64
			for i := range r.h.counts {
				cum += r.h.counts[i].Load()
				bound := "+Inf"
				if i < len(upstreamBuckets) {
					le = strconv.AppendFloat(le[:0], upstreamBuckets[i], 'g', -1, 64)
					bound = string(le)
				}
				w.WriteString(upstreamName + "_bucket")
				promLabels(w, "ingress", r.ing, "service", r.svc, "le", bound)
				promValue(w, float64(cum))
			}
			w.WriteString(upstreamName + "_sum")
			promLabels(w, "ingress", r.ing, "service", r.svc)
			promValue(w, math.Float64frombits(r.h.sumBits.Load()))
			w.WriteString(upstreamName + "_count")
			promLabels(w, "ingress", r.ing, "service", r.svc)
			promValue(w, float64(cum))
		}
	}
}

func promHeader(w *bufio.Writer, name, help, typ string) {
	w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

// promLabels writes {name="value",...} from name, value pairs, the values escaped as
// the text format wants (backslash, double quote, newline).
func promLabels(w *bufio.Writer, pairs ...string) {
	w.WriteByte('{')
	for i := 0; i < len(pairs); i += 2 {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(pairs[i])
		w.WriteString(`="`)
		promEscaper.WriteString(w, pairs[i+1])
		w.WriteByte('"')
	}
	w.WriteByte('}')
}

var promEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

// promValue writes " value\n", formatted as the Prometheus client library does.
func promValue(w *bufio.Writer, v float64) {
	w.WriteByte(' ')
	switch {
	case math.IsInf(v, +1):
		w.WriteString("+Inf")
	case math.IsInf(v, -1):
		w.WriteString("-Inf")
	case math.IsNaN(v):
		w.WriteString("NaN")
	default:
		var b [32]byte
		w.Write(strconv.AppendFloat(b[:0], v, 'g', -1, 64))
	}
	w.WriteByte('\n')
}

// MetricsSnapshot is a copy of a metric set's counts, made to be added into another set:
// a node's ingress workers each count their own requests, and a scrape of the node gets
// their sum (MergedHandler).
type MetricsSnapshot struct {
	Requests []RequestCount  `json:"requests,omitempty"`
	Upstream []UpstreamCount `json:"upstream,omitempty"`
}

// RequestCount is one request counter of a snapshot.
type RequestCount struct {
	Ingress string `json:"ingress,omitempty"`
	Service string `json:"service,omitempty"`
	Code    int    `json:"code"`
	N       uint64 `json:"n"`
}

// UpstreamCount is one upstream histogram of a snapshot: the count per bucket (not
// cumulative; the last one past every bound) and the sum.
type UpstreamCount struct {
	Ingress string   `json:"ingress,omitempty"`
	Service string   `json:"service,omitempty"`
	Counts  []uint64 `json:"counts"`
	Sum     float64  `json:"sum"`
}

// Snapshot copies the set's counts.
func (m *Metrics) Snapshot() MetricsSnapshot {
	var s MetricsSnapshot
	m.children.Range(func(k, v any) bool {
		mk := k.(metricKey)
		s.Requests = append(s.Requests, RequestCount{Ingress: mk.ing, Service: mk.svc, Code: mk.code, N: v.(*metricChildren).requests.Load()})
		return true
	})
	m.hists.Range(func(k, v any) bool {
		hk, h := k.([2]string), v.(*histogram)
		c := UpstreamCount{Ingress: hk[0], Service: hk[1], Counts: make([]uint64, len(h.counts)), Sum: math.Float64frombits(h.sumBits.Load())}
		for i := range h.counts {
			c.Counts[i] = h.counts[i].Load()
		}
		s.Upstream = append(s.Upstream, c)
		return true
	})
	return s
}

// Add adds a snapshot's counts to the set (a histogram of other buckets is refused).
func (m *Metrics) Add(s MetricsSnapshot) error {
	for _, u := range s.Upstream {
		if len(u.Counts) != len(upstreamBuckets)+1 {
			return fmt.Errorf("upstream histogram of %s/%s: %d buckets, want %d", u.Ingress, u.Service, len(u.Counts), len(upstreamBuckets)+1)
		}
	}
	hist := func(ing, svc string) *histogram {
		h, _ := m.hists.LoadOrStore([2]string{ing, svc}, &histogram{})
		return h.(*histogram)
	}
	for _, u := range s.Upstream {
		h := hist(u.Ingress, u.Service)
		for i, n := range u.Counts {
			h.counts[i].Add(n)
		}
		for {
			old := h.sumBits.Load()
			if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+u.Sum)) {
				break
			}
		}
	}
	for _, r := range s.Requests {
		k := metricKey{ing: r.Ingress, svc: r.Service, code: r.Code}
		v, _ := m.children.LoadOrStore(k, &metricChildren{upstream: hist(r.Ingress, r.Service)})
		v.(*metricChildren).requests.Add(r.N)
	}
	return nil
}

// MergedHandler serves, as Handler does, the sum of local's counts and those others
// returns at each scrape (the other workers' snapshots).
func MergedHandler(local *Metrics, others func() []MetricsSnapshot) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := NewMetrics()
		_ = sum.Add(local.Snapshot())
		for _, s := range others() {
			_ = sum.Add(s)
		}
		sum.Handler().ServeHTTP(w, r)
	})
}
