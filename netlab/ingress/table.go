package ingress

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// DefaultClassName is the IngressClass the lab's controller serves when none is given.
const DefaultClassName = "netlab"

// legacyClassAnnotation is the pre-v1 way to pick a class, still honoured by controllers.
const legacyClassAnnotation = "kubernetes.io/ingress.class"

// AnnotationUpstream on an Ingress chooses how the ingress reaches its Services.
const AnnotationUpstream = "netlab.dev/upstream"

// Upstream modes: how the proxy reaches a route's Service.
const (
	// UpstreamService sends to the Service's ClusterIP:port; kube-proxy in the node picks
	// the pod, once per upstream connection (keep-alive connections stay on their pod).
	UpstreamService = "service"
	// UpstreamEndpoints sends straight to one of the Service's ready endpoints, picked
	// round-robin for every request, as ingress-nginx, Traefik and Envoy-based
	// controllers do by default.
	UpstreamEndpoints = "endpoints"
)

// Route is what a request matched: which Ingress rule, and the Service to forward to.
type Route struct {
	// Ingress is "namespace/name" of the Ingress object the rule comes from.
	Ingress string
	// Host is the rule's host as written ("" for a rule without host, "*.foo.com" for a
	// wildcard); empty for a default backend.
	Host string
	// Path and PathType are the rule's path as written and its type as given
	// (ImplementationSpecific stays ImplementationSpecific here; it matches as Prefix).
	// Both are empty for a default backend.
	Path     string
	PathType PathType
	// Default is true when the route is an Ingress spec.defaultBackend; Host is then the
	// host it serves unmatched paths of ("" for the catch-all).
	Default bool
	// ServiceNamespace/ServiceName/ServicePort name the backend Service; the port is a
	// number or a name, as the Ingress gave it.
	ServiceNamespace string
	ServiceName      string
	ServicePort      ServiceBackendPort
	// Upstream is UpstreamService or UpstreamEndpoints: the Ingress's annotation, else
	// the table's default.
	Upstream string

	// rule and service cache Rule() and Service() for the access log (set by Build).
	rule, service string
}

func (r *Route) ruleString() string {
	if r.rule != "" {
		return r.rule
	}
	return r.Rule()
}

func (r *Route) serviceString() string {
	if r.service != "" {
		return r.service
	}
	return r.Service()
}

// cache fills the strings the access log writes for every request.
func (r *Route) cache() {
	r.rule, r.service = "", ""
	r.rule, r.service = r.Rule(), r.Service()
}

// Service returns "namespace/name:port" of the backend.
func (r Route) Service() string {
	return r.ServiceNamespace + "/" + r.ServiceName + ":" + portString(r.ServicePort)
}

// Rule returns a short description of the matched rule for logs:
// "default/web host=app.example path=/api (Prefix)" or "default/web defaultBackend".
func (r Route) Rule() string {
	if r.Default {
		if r.Host != "" {
			return r.Ingress + " defaultBackend host=" + r.Host
		}
		return r.Ingress + " defaultBackend"
	}
	host := r.Host
	if host == "" {
		host = "*"
	}
	return fmt.Sprintf("%s host=%s path=%s (%s)", r.Ingress, host, r.Path, r.PathType)
}

func portString(p ServiceBackendPort) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprint(p.Number)
}

// TLSEntry is one Ingress spec.tls entry: the hosts it covers and the Secret that may
// hold their certificate.
type TLSEntry struct {
	Ingress    string // namespace/name
	Namespace  string // the Ingress's namespace, where SecretName is looked up
	Hosts      []string
	SecretName string
}

// Table is an immutable routing table built from Ingress objects. Match is safe for
// concurrent use.
type Table struct {
	exact    map[string]*hostRoutes // precise hosts
	wildcard map[string]*hostRoutes // "*.foo.com" stored under "foo.com"
	anyHost  *hostRoutes            // rules without host
	def      *Route                 // the catch-all default backend, if any
	routes   []Route                // every accepted route, in table order
	tls      []TLSEntry
}

// hostRoutes are the paths of one host, merged across Ingresses and sorted so that the
// first match is the winner: longest key first, Exact before Prefix at equal length,
// then the Ingress order (see Build).
type hostRoutes struct {
	paths []pathRoute
	// def answers the host's requests no path matches: the defaultBackend of the Ingress
	// that defined the host first (nil: the catch-all answers). Never set for the rules
	// without host, which belong to the catch-all.
	def *Route
}

type pathRoute struct {
	exact bool
	key   string // Exact: the path; Prefix: trimPrefixPath(path)
	route Route
}

func (h *hostRoutes) match(p string) (Route, bool) {
	for i := range h.paths {
		pr := &h.paths[i]
		if pr.exact {
			if p == pr.key {
				return pr.route, true
			}
		} else if matchPrefix(pr.key, p) {
			return pr.route, true
		}
	}
	return Route{}, false
}

// Match finds the route for a request. host is the Host header (a port and a trailing
// dot are ignored, case does not matter); p is the URL path. The host is chosen first:
// a precise host, else a wildcard host covering it, else the rules without host. Then
// the longest matching path of that host wins (Exact before Prefix at equal length). When
// no path of the chosen host matches, the host's default backend answers (the
// defaultBackend of the Ingress that defined the host first), else the catch-all (see
// BuildWith), else there is no route.
func (t *Table) Match(host, p string) (Route, bool) {
	h, _ := NormalizeHost(host)
	return t.match(h, cleanRequestPath(p))
}

// match takes a normalized host and a cleaned path.
func (t *Table) match(host, p string) (Route, bool) {
	if t == nil {
		return Route{}, false
	}
	hr := t.hostRoutes(host)
	if hr != nil {
		if r, ok := hr.match(p); ok {
			return r, true
		}
		if hr.def != nil {
			return *hr.def, true
		}
	}
	if t.def != nil {
		return *t.def, true
	}
	return Route{}, false
}

func (t *Table) hostRoutes(host string) *hostRoutes {
	if host != "" {
		if hr := t.exact[host]; hr != nil {
			return hr
		}
		if s, ok := wildcardSuffix(host); ok {
			if hr := t.wildcard[s]; hr != nil {
				return hr
			}
		}
	}
	return t.anyHost
}

// Routes returns every accepted route (per host its rules in match order, then the
// host's default backend; the catch-all last). The slice is a copy.
func (t *Table) Routes() []Route {
	if t == nil {
		return nil
	}
	out := append([]Route(nil), t.routes...)
	if t.def != nil {
		out = append(out, *t.def)
	}
	return out
}

// TLS returns the spec.tls entries of the accepted Ingresses, in Ingress order.
func (t *Table) TLS() []TLSEntry {
	if t == nil {
		return nil
	}
	return append([]TLSEntry(nil), t.tls...)
}

// Hosts returns every host named by a rule or a tls entry, lower-cased, sorted, unique.
func (t *Table) Hosts() []string {
	seen := map[string]bool{}
	for _, r := range t.routes {
		if r.Host != "" {
			seen[lowerASCII(r.Host)] = true
		}
	}
	for _, e := range t.tls {
		for _, h := range e.Hosts {
			seen[lowerASCII(h)] = true
		}
	}
	out := make([]string, 0, len(seen))
	for h := range seen {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Build makes a routing table from Ingress objects for the controller of class
// className ("" means DefaultClassName). It never fails: what it cannot use is skipped
// and explained in the returned warnings, one line each.
//
// Class: an Ingress whose spec.ingressClassName (or, when unset, the legacy
// kubernetes.io/ingress.class annotation) names another class is ignored with a warning;
// an Ingress naming no class is served (the lab's class is the cluster default) unless
// BuildOptions.IgnoreWithoutClass.
//
// Merging: rules of all Ingresses are merged per host. Ingresses are taken oldest first
// (BuildOptions.Order, then metadata.creationTimestamp), then by namespace/name, as
// ingress-nginx does; when two rules of one host have the same path and match type
// (Prefix "/foo" and "/foo/" and ImplementationSpecific "/foo" are the same), the first
// one wins and the other is reported as shadowed.
//
// Default backends, as ingress-nginx: the catch-all (requests for a host no rule names,
// and requests the rules without host do not match) is the defaultBackend of the first
// Ingress without rules; later ones are reported as shadowed. The defaultBackend of an
// Ingress with rules answers the requests for the hosts it defined first that match none
// of their paths; a host defined first by an Ingress without defaultBackend falls to the
// catch-all. When no Ingress without rules has a defaultBackend, the first Ingress with
// one is the catch-all too (a single Ingress with rules and a defaultBackend catches
// every request no rule matches, as the Kubernetes documentation's examples have it).
//
// Path types: ImplementationSpecific (and a missing pathType) is matched as Prefix; its
// empty path means "/". Exact and Prefix paths must start with "/".
func Build(ings []Ingress, className string) (*Table, []string) {
	return BuildWith(ings, BuildOptions{ClassName: className})
}

// BuildOptions configure BuildWith.
type BuildOptions struct {
	// ClassName is the class served ("" means DefaultClassName).
	ClassName string
	// Upstream is the upstream mode of Ingresses without the AnnotationUpstream
	// annotation ("" means UpstreamService).
	Upstream string
	// Classes are more classes served besides ClassName (IngressClasses of the lab's
	// controller).
	Classes []string
	// IgnoreWithoutClass leaves Ingresses naming no class to another controller (the
	// cluster's default IngressClass is not the lab's).
	IgnoreWithoutClass bool
	// Order ranks Ingresses by creation, "namespace/name" → rank (lower is older; absent
	// is 0), before metadata.creationTimestamp: the lab's own creation order.
	Order map[string]int
}

// BuildWith is Build with options: the class served and the default upstream mode. An
// Ingress's AnnotationUpstream sets the mode of its routes; an unknown value is reported
// and the default applies.
func BuildWith(ings []Ingress, opts BuildOptions) (*Table, []string) {
	className := opts.ClassName
	if className == "" {
		className = DefaultClassName
	}
	defMode := opts.Upstream
	if defMode == "" {
		defMode = UpstreamService
	}
	t := &Table{exact: map[string]*hostRoutes{}, wildcard: map[string]*hostRoutes{}}
	var warns []string

	ordered := make([]*Ingress, 0, len(ings))
	for i := range ings {
		ordered = append(ordered, &ings[i])
	}
	sort.SliceStable(ordered, func(i, j int) bool {
		a, b := ordered[i], ordered[j]
		if oa, ob := opts.Order[ingName(a)], opts.Order[ingName(b)]; oa != ob {
			return oa < ob
		}
		ta, tb := a.CreationTimestamp, b.CreationTimestamp
		if !ta.Equal(tb) {
			return ta.Before(tb)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})

	type dupKey struct {
		host  string
		exact bool
		key   string
	}
	owner := map[dupKey]string{}
	order := 0
	type sortable struct {
		pr    pathRoute
		order int
	}
	perHost := map[*hostRoutes][]sortable{}
	var hostOrder []*hostRoutes
	hostOwner := map[*hostRoutes]string{} // the Ingress that defined a host first
	var firstDef *Route                   // the first defaultBackend of an Ingress with rules

	for _, ing := range ordered {
		name := ingName(ing)
		if cls, ok := ingressClass(ing); ok && cls != className && !slices.Contains(opts.Classes, cls) {
			warns = append(warns, fmt.Sprintf("ingress %s: class %q is not this lab's class %q; ignored", name, cls, className))
			continue
		} else if !ok && opts.IgnoreWithoutClass {
			warns = append(warns, fmt.Sprintf("ingress %s: names no class, and the default IngressClass is another controller's; ignored", name))
			continue
		}
		mode := defMode
		if v, ok := ing.Annotations[AnnotationUpstream]; ok {
			if v == UpstreamService || v == UpstreamEndpoints {
				mode = v
			} else {
				warns = append(warns, fmt.Sprintf("ingress %s: annotation %s: %q is not %q or %q; using %q",
					name, AnnotationUpstream, v, UpstreamService, UpstreamEndpoints, mode))
			}
		}
		var ingDef *Route // this Ingress's defaultBackend, for the hosts it defines first
		if db := ing.Spec.DefaultBackend; db != nil {
			r, msg := backendRoute(ing, db)
			switch {
			case msg != "":
				warns = append(warns, fmt.Sprintf("ingress %s: defaultBackend: %s; skipped", name, msg))
			case len(ing.Spec.Rules) > 0:
				r.Default, r.Upstream = true, mode
				ingDef = &r
				if firstDef == nil {
					c := r
					c.cache()
					firstDef = &c
				}
			case t.def != nil:
				warns = append(warns, fmt.Sprintf("ingress %s: defaultBackend shadowed by the one of ingress %s", name, t.def.Ingress))
			default:
				r.Default, r.Upstream = true, mode
				r.cache()
				t.def = &r
			}
		}
		for ri, rule := range ing.Spec.Rules {
			host := lowerASCII(rule.Host)
			if host != "" {
				if msg := checkRuleHost(host); msg != "" {
					warns = append(warns, fmt.Sprintf("ingress %s: rules[%d]: host %q: %s; skipped", name, ri, rule.Host, msg))
					continue
				}
			}
			hr := t.entry(host)
			if _, seen := perHost[hr]; !seen {
				perHost[hr] = nil
				hostOrder = append(hostOrder, hr)
			}
			if host != "" {
				switch owner, owned := hostOwner[hr]; {
				case !owned:
					hostOwner[hr] = name
					if ingDef != nil {
						d := *ingDef
						d.Host = rule.Host
						d.cache()
						hr.def = &d
					}
				case owner != name && ingDef != nil:
					warns = append(warns, fmt.Sprintf("ingress %s: defaultBackend does not serve host %q: ingress %s defined it first", name, rule.Host, owner))
				}
			}
			if rule.HTTP == nil {
				continue
			}
			for pi, hp := range rule.HTTP.Paths {
				where := fmt.Sprintf("ingress %s: rules[%d].http.paths[%d]", name, ri, pi)
				pt := PathTypeImplementationSpecific
				if hp.PathType != nil {
					pt = *hp.PathType
				}
				p := hp.Path
				var exact bool
				switch pt {
				case PathTypeExact, PathTypePrefix:
					if !strings.HasPrefix(p, "/") {
						warns = append(warns, fmt.Sprintf("%s: path %q must start with \"/\"; skipped", where, p))
						continue
					}
					exact = pt == PathTypeExact
				case PathTypeImplementationSpecific:
					if p == "" {
						p = "/"
					}
					if !strings.HasPrefix(p, "/") {
						warns = append(warns, fmt.Sprintf("%s: path %q must start with \"/\"; skipped", where, p))
						continue
					}
				default:
					warns = append(warns, fmt.Sprintf("%s: unknown pathType %q; skipped", where, pt))
					continue
				}
				r, msg := backendRoute(ing, &hp.Backend)
				if msg != "" {
					warns = append(warns, fmt.Sprintf("%s: %s; skipped", where, msg))
					continue
				}
				r.Host, r.Path, r.PathType, r.Upstream = rule.Host, hp.Path, pt, mode
				r.cache()
				key := p
				if !exact {
					key = trimPrefixPath(p)
				}
				dk := dupKey{host, exact, key}
				if prev, dup := owner[dk]; dup {
					warns = append(warns, fmt.Sprintf("%s: host %q path %q (%s) shadowed by ingress %s", where, rule.Host, hp.Path, pt, prev))
					continue
				}
				owner[dk] = name
				perHost[hr] = append(perHost[hr], sortable{pathRoute{exact: exact, key: key, route: r}, order})
				order++
			}
		}
		for _, tl := range ing.Spec.TLS {
			t.tls = append(t.tls, TLSEntry{
				Ingress:    name,
				Namespace:  ingNamespace(ing),
				Hosts:      append([]string(nil), tl.Hosts...),
				SecretName: tl.SecretName,
			})
		}
	}

	for _, hr := range hostOrder {
		list := perHost[hr]
		sort.SliceStable(list, func(i, j int) bool {
			a, b := list[i].pr, list[j].pr
			if len(a.key) != len(b.key) {
				return len(a.key) > len(b.key)
			}
			if a.exact != b.exact {
				return a.exact
			}
			return list[i].order < list[j].order
		})
		hr.paths = make([]pathRoute, len(list))
		for i, s := range list {
			hr.paths[i] = s.pr
			t.routes = append(t.routes, s.pr.route)
		}
		if hr.def != nil {
			t.routes = append(t.routes, *hr.def)
		}
	}
	if t.def == nil {
		t.def = firstDef
	}
	return t, warns
}

// entry returns (creating it) the routes of a host as the table keys it.
func (t *Table) entry(host string) *hostRoutes {
	var m map[string]*hostRoutes
	key := host
	switch {
	case host == "":
		if t.anyHost == nil {
			t.anyHost = &hostRoutes{}
		}
		return t.anyHost
	case strings.HasPrefix(host, "*."):
		m, key = t.wildcard, host[2:]
	default:
		m = t.exact
	}
	hr := m[key]
	if hr == nil {
		hr = &hostRoutes{}
		m[key] = hr
	}
	return hr
}

// ingressClass returns the class an Ingress asks for, if it asks for one.
func ingressClass(ing *Ingress) (string, bool) {
	if ing.Spec.IngressClassName != nil {
		return *ing.Spec.IngressClassName, true
	}
	if v, ok := ing.Annotations[legacyClassAnnotation]; ok {
		return v, true
	}
	return "", false
}

func ingNamespace(ing *Ingress) string {
	if ing.Namespace == "" {
		return "default"
	}
	return ing.Namespace
}

func ingName(ing *Ingress) string {
	return ingNamespace(ing) + "/" + ing.Name
}

// backendRoute turns an IngressBackend into a Route, or says why it cannot.
func backendRoute(ing *Ingress, b *IngressBackend) (Route, string) {
	if b.Resource != nil {
		return Route{}, "resource backends are not supported"
	}
	if b.Service == nil {
		return Route{}, "backend has no service"
	}
	s := b.Service
	if s.Name == "" {
		return Route{}, "backend service has no name"
	}
	if (s.Port.Number == 0) == (s.Port.Name == "") {
		return Route{}, fmt.Sprintf("backend service %s needs exactly one of port.number and port.name", s.Name)
	}
	return Route{
		Ingress:          ingName(ing),
		ServiceNamespace: ingNamespace(ing),
		ServiceName:      s.Name,
		ServicePort:      s.Port,
	}, ""
}
