package scenario

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"
)

// NoLabFile is the Problem.File of problems found in the Lab when the scenario has no Lab
// object (the lab is then made of defaults, and of what the manifests need).
const NoLabFile = "<lab defaults>"

// Schedulers are the external load balancer's scheduling algorithms (IPVS names).
var Schedulers = []string{"rr", "wrr", "sh", "random"}

// schedulerProblem says what is wrong with a scheduler name, or "" when it is fine. IPVS's
// lc has its own message: iptables cannot see a real server's active connections when it
// schedules a new one, so the lab cannot do it honestly.
func schedulerProblem(s string) string {
	switch {
	case slices.Contains(Schedulers, s):
		return ""
	case s == "lc":
		return "lc (least connections) is not supported: iptables cannot see a real server's active connections when it schedules a new one; use " + strings.Join(Schedulers, ", ")
	}
	return fmt.Sprintf("must be one of %s, got %q", strings.Join(Schedulers, ", "), s)
}

// persistenceProblem says what is wrong with an LB persistence timeout, or "" when it is
// fine: zero or a whole number of seconds, as ipvsadm -p takes it (xt_recent counts seconds).
func persistenceProblem(d time.Duration) string {
	switch {
	case d < 0:
		return fmt.Sprintf("must not be negative, got %s", d)
	case d%time.Second != 0:
		return fmt.Sprintf("must be a whole number of seconds, got %s", d)
	}
	return ""
}

// Validate checks a scenario (as returned by Load or Parse: defaults applied) before
// anything is built. It returns Problems listing every problem at once — nil when there is
// none — sorted by file (in the order the files were read), document, then check order.
// It also adds to s.Warnings what the lab reads but does not model, and Ingresses or
// Secrets it ignores; calling it again adds nothing new.
func Validate(s *Scenario) error {
	v := newValidator(s)
	v.lab()
	for i := range s.Deployments {
		v.deployment(&s.Deployments[i])
	}
	v.podCapacity()
	for i := range s.Services {
		v.service(&s.Services[i])
	}
	v.wanCapacity()
	v.serviceCapacity()
	for i := range s.IngressClasses {
		v.ingressClass(&s.IngressClasses[i])
	}
	v.classes = s.ClassPolicy()
	for i := range s.Ingresses {
		v.ingress(&s.Ingresses[i])
	}
	for i := range s.Secrets {
		v.secret(&s.Secrets[i])
	}
	v.checks()
	for _, w := range v.warns {
		s.addWarning(w)
	}
	v.sort(s.Warnings)
	if len(v.probs) == 0 {
		return nil
	}
	v.sort(v.probs)
	return v.probs
}

// where identifies an object for Problems.
type where struct {
	file string
	doc  int
	obj  string
}

func (w where) problem(field, format string, args []any) Problem {
	return Problem{File: w.file, Doc: w.doc, Object: w.obj, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// podGroup is the pods of one Deployment and the nodes they may land on.
type podGroup struct {
	pods  int
	nodes []int // indexes into the lab's nodes, sorted
}

type validator struct {
	s     *Scenario
	probs Problems
	warns Problems

	labAt where
	// the address plan; invalid prefixes are the zero Prefix
	wan, node, pod, svc netip.Prefix
	vip                 netip.Addr // zero when invalid
	mask                int        // node pod slice prefix length, 0 when invalid

	nodeIndex map[string]int    // node name -> index in Lab.Spec.Nodes
	names     map[string]string // node, client and pod names -> who uses it
	wanUsed   map[netip.Addr]string
	nodePorts map[string]string // "30080/TCP" -> who uses it

	deployments map[string]Source // "ns/name"
	services    map[string]Source
	ingresses   map[string]Source
	ingClasses  map[string]Source
	classes     IngressClassPolicy
	secrets     map[string]Source
	clusterIPs  map[netip.Addr]string
	totalPods   int
	podsCapped  bool
	groups      []podGroup
	lbServices  int // LoadBalancer Services without a loadBalancerIP
}

func newValidator(s *Scenario) *validator {
	file := s.LabSource.File
	if file == "" {
		file = NoLabFile
	}
	v := &validator{
		s:           s,
		labAt:       where{file: file, doc: s.LabSource.Doc, obj: "Lab " + s.Lab.Metadata.Name},
		nodeIndex:   map[string]int{},
		names:       map[string]string{},
		wanUsed:     map[netip.Addr]string{},
		nodePorts:   map[string]string{},
		deployments: map[string]Source{},
		services:    map[string]Source{},
		ingresses:   map[string]Source{},
		ingClasses:  map[string]Source{},
		secrets:     map[string]Source{},
		clusterIPs:  map[netip.Addr]string{},
	}
	return v
}

func (v *validator) errf(w where, field, format string, args ...any) {
	v.probs = append(v.probs, w.problem(field, format, args))
}

func (v *validator) warnf(w where, field, format string, args ...any) {
	v.warns = append(v.warns, w.problem(field, format, args))
}

// sort orders problems by file (in the order the scenario read them), then document,
// keeping check order within a document.
func (v *validator) sort(ps Problems) {
	rank := func(file string) int {
		if file == NoLabFile {
			return -1
		}
		if i := slices.Index(v.s.Files, file); i >= 0 {
			return i
		}
		return len(v.s.Files)
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(rank(a.File), rank(b.File)),
			strings.Compare(a.File, b.File),
			cmp.Compare(a.Doc, b.Doc))
	})
}

func objectWhere(kind, ns, name string, src Source) where {
	if ns == "" {
		ns = "default"
	}
	return where{file: src.File, doc: src.Doc, obj: fmt.Sprintf("%s %s/%s", kind, ns, name)}
}

// ---- names ----

const (
	msgDNSLabel = "must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit), got %q"
	msgDNS1035  = "must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending with a letter or digit), got %q"
	msgDNSName  = "must be a DNS name (lowercase labels of letters, digits and '-', separated by dots), got %q"
)

// isDNSLabel reports whether s is an RFC 1123 label of at most 63 bytes.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

func isDNSName(s string) bool { return len(validation.IsDNS1123Subdomain(s)) == 0 }

// label checks a name that must be a DNS label of at most max bytes; why says what the
// limit comes from. It reports false when the name is unusable.
func (v *validator) label(w where, field, name string, max int, why string) bool {
	switch {
	case name == "":
		v.errf(w, field, "required")
	case !isDNSLabel(name):
		v.errf(w, field, msgDNSLabel, name)
	case len(name) > max:
		v.errf(w, field, "%q is %d bytes, longer than %d (%s)", name, len(name), max, why)
	default:
		return true
	}
	return false
}

// namespace checks metadata.namespace (empty means default).
func (v *validator) namespace(w where, ns string) {
	if ns != "" && !isDNSLabel(ns) {
		v.errf(w, "metadata.namespace", msgDNSLabel, ns)
	}
}

// claim registers a node, client or pod name; they share one namespace of names.
func (v *validator) claim(w where, field, name, owner, what string) bool {
	if r, ok := ReservedNames[name]; ok {
		v.errf(w, field, "%s%q is reserved for %s", what, name, r)
		return false
	}
	if o, ok := v.names[name]; ok {
		v.errf(w, field, "%s%q is already used by %s", what, name, o)
		return false
	}
	v.names[name] = owner
	return true
}

// labels checks label keys and values (node labels, selectors, template labels).
func (v *validator) labels(w where, field string, m map[string]string) {
	for _, k := range sortedKeys(m) {
		if len(content.IsLabelKey(k)) > 0 {
			v.errf(w, field, "%q is not a valid label key", k)
		} else if len(content.IsLabelValue(m[k])) > 0 {
			v.errf(w, field+"."+k, "%q is not a valid label value", m[k])
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// matches reports whether every key=value of sel is in set (an equality selector).
func matches(sel, set map[string]string) bool {
	for k, val := range sel {
		if x, ok := set[k]; !ok || x != val {
			return false
		}
	}
	return true
}

// ---- addresses ----

// reservedRanges may not hold any lab address.
var reservedRanges = []struct {
	p    netip.Prefix
	name string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// parseCIDR parses an IPv4 network; msg says what is wrong when it is not usable.
func parseCIDR(s string) (netip.Prefix, string) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Sprintf("must be an IPv4 CIDR such as 10.244.0.0/16, got %q", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Sprintf("%s has host bits set (did you mean %s?)", s, p.Masked())
	}
	for _, r := range reservedRanges {
		if p.Overlaps(r.p) {
			return netip.Prefix{}, fmt.Sprintf("%s overlaps %s (%s)", s, r.p, r.name)
		}
	}
	return p, ""
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

// size is the number of addresses of p.
func size(p netip.Prefix) uint64 { return 1 << (32 - p.Bits()) }

// host returns the n-th address of p (n = 1 is .1 of a /24).
func host(p netip.Prefix, n uint32) netip.Addr { return addr(u32(p.Addr()) + n) }

func broadcast(p netip.Prefix) netip.Addr {
	return addr(u32(p.Addr()) + uint32(size(p)-1))
}

// parseIP parses an IPv4 address; it returns the zero Addr when s is not one.
func parseIP(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}
	}
	return a
}

// inNet checks that a is a usable host address of p (named pname in messages) and returns
// the message when it is not.
func inNet(a netip.Addr, p netip.Prefix, pname string) string {
	switch {
	case !p.Contains(a):
		return fmt.Sprintf("%s is outside %s %s", a, pname, p)
	case a == p.Addr() || a == broadcast(p):
		return fmt.Sprintf("%s is the network or broadcast address of %s %s", a, pname, p)
	}
	return ""
}
