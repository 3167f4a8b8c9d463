package rundir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"

	gojson "github.com/goccy/go-json"

	"github.com/netlabdev/netlab/netlab/plan"
)

// A PlanView names the parts of the plan an agent reads: top-level keys of plan.json (the
// json names of plan.Plan's fields; "lab" is always read). ReadPlanView keeps those
// members of the file's object (a scan that follows strings and nesting only) and decodes
// them alone, into a struct of those fields of plan.Plan: an agent neither decodes nor
// allocates what it never reads, and its decoder is set up for those fields' types only,
// which in a fresh process is most of a small plan's decode. A Plan read this way has
// every other field zero.
//
// Each agent's view is below, beside the others; a test in each agent's package holds
// what the agent computes from its view equal to what it computes from the whole plan,
// on every scenario and fixture (a part an agent reads and its view lacks fails it).
type PlanView []string

// The views of the agents that read the plan.
var (
	// KubeProxyPlan: the node (ProxyNode: nodes, network, kubeProxy) and the Services
	// with their endpoints (ServicePorts: services, pods' terminating state).
	KubeProxyPlan = PlanView{"network", "nodes", "kubeProxy", "pods", "services"}
	// ControllerPlan: the pods it probes, the nodes it watches, the Services' endpoints it
	// writes, and the routes, neighbour and forwarding entries it repairs on a node.
	ControllerPlan = PlanView{"nodes", "pods", "services", "routes", "neighbors", "fdb"}
	// LBPlan: its virtual services and WAN filter (loadBalancer, nodes, ingress ports,
	// network).
	LBPlan = PlanView{"network", "loadBalancer", "nodes", "ingress"}
	// DNSPlan: the cluster domain, the pods and the Services (dns.FromPlan).
	DNSPlan = PlanView{"dns", "pods", "services"}
	// IngressPlan: the Ingresses, their Secrets, the Services they route to, the node's
	// address and the VIP (its default certificate) and the ingress settings.
	IngressPlan = PlanView{"ingress", "ingresses", "tls", "services", "nodes", "loadBalancer"}
	// SupervisorPlan: the processes it watches and the pods leaving.
	SupervisorPlan = PlanView{"processes", "pods"}
)

// planFields maps each top-level key of plan.json to its plan.Plan field's index.
var planFields = sync.OnceValue(func() map[string]int {
	t := reflect.TypeFor[plan.Plan]()
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = i
		}
	}
	return m
})

type viewType struct {
	t      reflect.Type // a struct of the view's plan.Plan fields, with their tags
	fields []int        // the plan.Plan field of each of its fields
	keys   map[string]bool
}

// bigDecode is the size of the parts kept from which go-json decodes them (see Decode).
var bigDecode = 64 << 10

var viewTypes sync.Map // strings.Join(view, ",") → *viewType

func (v PlanView) compile() (*viewType, error) {
	key := strings.Join(v, ",")
	if vt, ok := viewTypes.Load(key); ok {
		return vt.(*viewType), nil
	}
	pt := reflect.TypeFor[plan.Plan]()
	keys := append(PlanView{"lab"}, v...)
	var idx []int
	for _, k := range keys {
		i, ok := planFields()[k]
		if !ok {
			return nil, fmt.Errorf("plan view: the plan has no part %q", k)
		}
		if !slices.Contains(idx, i) {
			idx = append(idx, i)
		}
	}
	slices.Sort(idx) // the Plan's own order
	fs := make([]reflect.StructField, len(idx))
	for j, i := range idx {
		fs[j] = pt.Field(i)
	}
	vt := &viewType{t: reflect.StructOf(fs), fields: idx, keys: map[string]bool{}}
	for _, k := range keys {
		vt.keys[k] = true
	}
	viewTypes.Store(key, vt)
	return vt, nil
}

// Decode decodes the parts of the view from a plan file's content into a Plan whose
// other fields are zero.
func (v PlanView) Decode(b []byte) (*plan.Plan, error) {
	vt, err := v.compile()
	if err != nil {
		return nil, err
	}
	if kept, ok := keepTopLevel(b, vt.keys); ok {
		b = kept
	}
	pv := reflect.New(vt.t)
	// A fresh process's first decode of a type is mostly the decoder's own setup, which
	// costs go-json more than encoding/json: the standard library below bigDecode, go-json
	// (faster per byte) above it.
	decode := json.Unmarshal
	if len(b) >= bigDecode {
		decode = gojson.Unmarshal
	}
	if err := decode(b, pv.Interface()); err != nil {
		return nil, err
	}
	var p plan.Plan
	out := reflect.ValueOf(&p).Elem()
	for j, i := range vt.fields {
		out.Field(i).Set(pv.Elem().Field(j))
	}
	return &p, nil
}

// ReadPlanView reads the parts of the plan file at path that the view names (see
// PlanView); the other fields of the Plan it returns are zero.
func ReadPlanView(path string, v PlanView) (*plan.Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	p, err := v.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return p, nil
}

// ReadPlanView reads the parts of the lab's plan that the view names.
func (d Dir) ReadPlanView(v PlanView) (*plan.Plan, error) { return ReadPlanView(d.Plan(), v) }

// keepTopLevel returns a JSON object of the members of the object b whose keys keep
// holds, in their order, and whether b was an object it could split: a scan that follows
// strings and nesting only (the values kept are decoded, and checked, afterwards).
func keepTopLevel(b []byte, keep map[string]bool) ([]byte, bool) {
	out := make([]byte, 0, 256)
	out = append(out, '{')
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return append(out, '}'), true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, false
		}
		ks := i
		i = skipString(b, i)
		if i < 0 {
			return nil, false
		}
		key := b[ks+1 : i-1]
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		vs := skipSpace(b, i+1)
		i = skipValue(b, vs)
		if i < 0 {
			return nil, false
		}
		if bytes.IndexByte(key, '\\') >= 0 {
			return nil, false // an escaped key: the decoder reads the whole object
		}
		if keep[string(key)] {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, b[ks:i]...)
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return append(out, '}'), true
		default:
			return nil, false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] (a quote), -1 if it
// does not end.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i++
		}
	}
	return -1
}

// skipValue returns the index after the value starting at b[i], -1 if it does not end.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				i--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\n', '\t', '\r':
			return i
		}
	}
	return i
}
