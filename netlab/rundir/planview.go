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

// PlanViews are the agents' views by role (their tests go through them all).
var PlanViews = map[string]PlanView{
	"kube-proxy": KubeProxyPlan, "controller": ControllerPlan, "lb": LBPlan,
	"dns": DNSPlan, "ingress": IngressPlan, "supervisor": SupervisorPlan,
}

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
// holds, in their order, and whether b is one JSON object it could split that way. The
// scan checks the grammar of every value it skips (brackets of the right kind, commas
// and colons, strings with their escapes and no control bytes, literals and numbers) and
// that nothing but whitespace follows the object; the values it keeps are checked by the
// decoder. What it cannot split (bad JSON, a key escaped or spelled in another case than
// a kept one, which the decoders would match) it leaves whole to the decoder, which reads
// it as it reads the whole file, or reports the error.
func keepTopLevel(b []byte, keep map[string]bool) ([]byte, bool) {
	out := make([]byte, 0, 256)
	out = append(out, '{')
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return append(out, '}'), skipSpace(b, i+1) == len(b)
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
		i = skipValue(b, vs, 0)
		if i < 0 {
			return nil, false
		}
		if bytes.IndexByte(key, '\\') >= 0 {
			return nil, false // an escaped key
		}
		if keep[string(key)] {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = append(out, b[ks:i]...)
		} else {
			for k := range keep {
				if bytes.EqualFold(key, []byte(k)) {
					return nil, false // the decoders match keys regardless of case
				}
			}
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return append(out, '}'), skipSpace(b, i+1) == len(b)
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

// skipString returns the index after the string starting at b[i] (a quote), or -1 if it
// is not a JSON string: it does not end, has a control byte, or a bad escape.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			if i++; i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// maxDepth is the deepest nesting the scan follows (encoding/json's own limit); deeper,
// the decoder reads the whole file and reports it.
const maxDepth = 10000

// skipValue returns the index after the JSON value starting at b[i], or -1 if there is
// none there.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return -1
		}
		end := byte(']')
		if c == '{' {
			end = '}'
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == end {
			return i + 1
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return -1
				}
				if i = skipString(b, i); i < 0 {
					return -1
				}
				if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
					return -1
				}
				i = skipSpace(b, i+1)
			}
			if i = skipValue(b, i, depth+1); i < 0 {
				return -1
			}
			if i = skipSpace(b, i); i >= len(b) {
				return -1
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case end:
				return i + 1
			default:
				return -1
			}
		}
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	}
	return skipNumber(b, i)
}

func skipLiteral(b []byte, i int, lit string) int {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return -1
	}
	return i + len(lit)
}

// skipNumber returns the index after the JSON number at b[i] (-?int frac? exp?), or -1.
func skipNumber(b []byte, i int) int {
	digits := func(i int) (int, bool) {
		s := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i, i > s
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	default:
		var ok bool
		if i, ok = digits(i); !ok {
			return -1
		}
	}
	if i < len(b) && b[i] == '.' {
		var ok bool
		if i, ok = digits(i + 1); !ok {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		var ok bool
		if i, ok = digits(i); !ok {
			return -1
		}
	}
	return i
}
