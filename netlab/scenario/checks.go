package scenario

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Check is one expectation of a self-checking lab (Lab.spec.checks): a request sent from a
// lab object and what must come of it. `netlab check` runs them after the lab's own health
// checks.
type Check struct {
	// Name names the check in netlab check's output (default: "<from> <url>").
	Name string `json:"name,omitempty"`
	// From is the sender: a client, pod or node (default: the first client).
	From string `json:"from,omitempty"`
	// URL is as for netlab trace: http(s)://host[:port]/path, tcp://IP:PORT, udp://IP:PORT.
	URL string `json:"url"`
	// Host is the request's Host header (default: the URL's host). The URL's host still
	// decides where the request goes and, for https, the TLS server name.
	Host string `json:"host,omitempty"`
	// Requests is how many requests are sent (default 1; 8 when servedBy or sameBackend
	// asks where the answers come from).
	Requests int `json:"requests,omitempty"`
	// Before lists drills run before the check and undone after it, as netlab's own verbs
	// without "netlab": "pod kill web-1", "node fail node-2", "scale deployment/web
	// --replicas 1", "rollout restart deployment/web".
	Before []string    `json:"before,omitempty"`
	Expect CheckExpect `json:"expect,omitempty"`
}

// CheckExpect is what a check's requests must show. Without status, servedBy, clientIP or
// fail, an HTTP request must answer 200 and an L4 one must get an answer.
type CheckExpect struct {
	// Status is the HTTP status every answer must have.
	Status int `json:"status,omitempty"`
	// ServedBy lists Deployments or pods; every answer must come from one of them.
	ServedBy []string `json:"servedBy,omitempty"`
	// ClientIP is the source address the pod must see; "client" means the sender's own.
	ClientIP string `json:"clientIP,omitempty"`
	// Fail: the request must not succeed (no answer at all).
	Fail bool `json:"fail,omitempty"`
	// SameBackend: every answer must come from one and the same pod (session affinity).
	SameBackend bool `json:"sameBackend,omitempty"`
}

// Limits of checks.
const (
	MaxChecks        = 100
	MaxCheckRequests = 100
	// DefaultCheckRequests is how many requests a check sends when it asks where the
	// answers come from (servedBy, sameBackend): enough that a wrong backend among two or
	// three shows up (a 1-in-3 backend is missed by 8 requests with probability 4%).
	DefaultCheckRequests = 8
)

// CheckName is the check's name, or "<from> <url>" when it has none.
func (c *Check) CheckName(defaultFrom string) string {
	if c.Name != "" {
		return c.Name
	}
	from := c.From
	if from == "" {
		from = defaultFrom
	}
	return from + " " + c.URL
}

// RequestCount is how many requests the check sends.
func (c *Check) RequestCount() int {
	switch {
	case c.Requests > 0:
		return c.Requests
	case len(c.Expect.ServedBy) > 0 || c.Expect.SameBackend:
		return DefaultCheckRequests
	}
	return 1
}

// Drill is one parsed entry of Check.Before.
type Drill struct {
	Verb     string // "pod kill", "pod start", "node fail", "node recover", "scale", "rollout restart"
	Target   string // a pod, a node, or a Deployment (for scale and rollout restart)
	Replicas int    // scale's --replicas
}

func (d Drill) String() string {
	switch d.Verb {
	case "scale":
		return fmt.Sprintf("scale deployment/%s --replicas %d", d.Target, d.Replicas)
	case "rollout restart":
		return "rollout restart deployment/" + d.Target
	}
	return d.Verb + " " + d.Target
}

// ParseDrill reads one drill as netlab's verbs write it.
func ParseDrill(s string) (Drill, error) {
	f := strings.Fields(s)
	if len(f) > 0 && f[0] == "netlab" {
		f = f[1:]
	}
	const want = `want "pod kill POD", "pod start POD", "node fail NODE", "node recover NODE", "scale deployment/NAME --replicas N" or "rollout restart deployment/NAME"`
	bad := func() (Drill, error) { return Drill{}, fmt.Errorf("%q: %s", s, want) }
	deployment := func(arg string) (string, bool) {
		name, ok := strings.CutPrefix(arg, "deployment/")
		if !ok {
			name, ok = strings.CutPrefix(arg, "deployments/")
		}
		return name, ok && name != ""
	}
	switch {
	case len(f) == 3 && (f[0] == "pod" && (f[1] == "kill" || f[1] == "start") || f[0] == "node" && (f[1] == "fail" || f[1] == "recover")):
		return Drill{Verb: f[0] + " " + f[1], Target: f[2]}, nil
	case len(f) == 3 && f[0] == "rollout" && f[1] == "restart":
		if name, ok := deployment(f[2]); ok {
			return Drill{Verb: "rollout restart", Target: name}, nil
		}
	case len(f) >= 3 && f[0] == "scale":
		name, ok := deployment(f[1])
		if !ok {
			return bad()
		}
		var n string
		switch {
		case len(f) == 4 && f[2] == "--replicas":
			n = f[3]
		case len(f) == 3 && strings.HasPrefix(f[2], "--replicas="):
			n = strings.TrimPrefix(f[2], "--replicas=")
		default:
			return bad()
		}
		r, err := strconv.Atoi(n)
		if err != nil || r < 0 {
			return Drill{}, fmt.Errorf("%q: --replicas must be a whole number, got %q", s, n)
		}
		return Drill{Verb: "scale", Target: name, Replicas: r}, nil
	}
	return bad()
}

// checks validates Lab.spec.checks against the objects the scenario makes.
func (v *validator) checks() {
	sp := &v.s.Lab.Spec
	w := v.labAt
	if len(sp.Checks) > MaxChecks {
		v.errf(w, "spec.checks", "%d checks, more than %d", len(sp.Checks), MaxChecks)
		return
	}
	clients, nodes := map[string]bool{}, map[string]bool{}
	for _, c := range sp.Clients {
		clients[c.Name] = true
	}
	for _, n := range sp.Nodes {
		nodes[n.Name] = true
	}
	deployments := map[string]bool{}
	for _, d := range v.s.Deployments {
		deployments[d.Name] = true
	}
	if sp.DNSEnabled() {
		deployments[DNSDeployment] = true
	}
	// A pod: a name the scenario's Deployments give (or later ones of their sequence,
	// which scale and rollout restart make).
	isPod := func(name string) bool {
		i := strings.LastIndexByte(name, '-')
		if i <= 0 {
			return false
		}
		n, err := strconv.Atoi(name[i+1:])
		return err == nil && n >= 1 && deployments[name[:i]] && strconv.Itoa(n) == name[i+1:]
	}
	names := map[string]int{}
	for i, c := range sp.Checks {
		f := fmt.Sprintf("spec.checks[%d]", i)
		if c.Name != "" {
			if j, ok := names[c.Name]; ok {
				v.errf(w, f+".name", "%q is already the name of spec.checks[%d]", c.Name, j)
			} else {
				names[c.Name] = i
			}
		}
		if c.From != "" && !clients[c.From] && !nodes[c.From] && !isPod(c.From) {
			v.errf(w, f+".from", "%q is no client, node or pod of this lab", c.From)
		}
		v.checkURL(w, f, c)
		if c.Host != "" {
			h := c.Host
			if hh, port, ok := strings.Cut(h, ":"); ok {
				if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
					h = ""
				} else {
					h = hh
				}
			}
			if !isDNSName(strings.ToLower(h)) && !parseIP(h).IsValid() {
				v.errf(w, f+".host", "must be a host name or address (with an optional :port), got %q", c.Host)
			}
		}
		if c.Requests < 0 || c.Requests > MaxCheckRequests {
			v.errf(w, f+".requests", "must be between 1 and %d, got %d", MaxCheckRequests, c.Requests)
		}
		e := c.Expect
		if e.Status != 0 && (e.Status < 100 || e.Status > 599) {
			v.errf(w, f+".expect.status", "must be an HTTP status (100-599), got %d", e.Status)
		}
		if e.Status != 0 && !strings.HasPrefix(c.URL, "http") {
			v.errf(w, f+".expect.status", "an HTTP status needs an http:// or https:// url, got %q", c.URL)
		}
		for j, s := range e.ServedBy {
			if !deployments[s] && !isPod(s) {
				v.errf(w, fmt.Sprintf("%s.expect.servedBy[%d]", f, j), "%q is no Deployment or pod of this lab", s)
			}
		}
		if e.ClientIP != "" && e.ClientIP != "client" && !parseIP(e.ClientIP).IsValid() {
			v.errf(w, f+".expect.clientIP", "must be an IPv4 address or \"client\" (the sender's own address), got %q", e.ClientIP)
		}
		if e.Fail && (e.Status != 0 || len(e.ServedBy) > 0 || e.ClientIP != "" || e.SameBackend) {
			v.errf(w, f+".expect.fail", "a request that must fail has no status, servedBy, clientIP or sameBackend to check")
		}
		for j, b := range c.Before {
			d, err := ParseDrill(b)
			ff := fmt.Sprintf("%s.before[%d]", f, j)
			switch {
			case err != nil:
				v.errf(w, ff, "%v", err)
			case strings.HasPrefix(d.Verb, "pod ") && !isPod(d.Target):
				v.errf(w, ff, "%q is no pod of this lab", d.Target)
			case strings.HasPrefix(d.Verb, "node ") && !nodes[d.Target]:
				v.errf(w, ff, "%q is no node of this lab", d.Target)
			case (d.Verb == "scale" || d.Verb == "rollout restart") && (!deployments[d.Target] || d.Target == DNSDeployment && sp.DNSEnabled()):
				v.errf(w, ff, "%q is no Deployment of this lab's scenario", d.Target)
			}
		}
	}
}

// checkURL checks a check's url as trace takes it.
func (v *validator) checkURL(w where, f string, c Check) {
	if c.URL == "" {
		v.errf(w, f+".url", "required")
		return
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		v.errf(w, f+".url", "not a URL: %v", err)
		return
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			v.errf(w, f+".url", "%q has no host", c.URL)
		}
	case "tcp", "udp":
		if !parseIP(u.Hostname()).IsValid() || u.Port() == "" {
			v.errf(w, f+".url", "%s:// needs an IPv4 address and a port (%s://IP:PORT), got %q", u.Scheme, u.Scheme, c.URL)
			return
		}
		if u.Path != "" && u.Path != "/" {
			v.errf(w, f+".url", "%s:// has no path, got %q", u.Scheme, c.URL)
		}
	default:
		v.errf(w, f+".url", "must be http://, https://, tcp:// or udp://, got %q", c.URL)
		return
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			v.errf(w, f+".url", "port must be between 1 and 65535, got %q", p)
		}
	}
}
