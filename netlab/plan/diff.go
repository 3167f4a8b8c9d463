package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Actions of a live change, in kubectl's words.
const (
	Created    = "created"
	Configured = "configured"
	Unchanged  = "unchanged"
	Deleted    = "deleted"
)

// Kinds as kubectl names them in its output.
const (
	KindLab        = "lab.netlab.dev"
	KindDeployment = "deployment.apps"
	KindService    = "service"
	KindIngress    = "ingress.networking.k8s.io"
	KindSecret     = "secret"
)

// Change is one object of a live change.
type Change struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Action    string `json:"action"`
	// What lists what changed ("replicas 2 → 3", "template"), for -v and tests.
	What []string `json:"what,omitempty"`
}

// String is kubectl's line: "deployment.apps/web configured".
func (c Change) String() string { return c.Kind + "/" + c.Name + " " + c.Action }

// Changes is an ordered list of changes.
type Changes []Change

// Changed says whether anything is created, configured or deleted.
func (cs Changes) Changed() bool {
	for _, c := range cs {
		if c.Action != Unchanged {
			return true
		}
	}
	return false
}

// Find returns the change of one object.
func (cs Changes) Find(kind, namespace, name string) (Change, bool) {
	for _, c := range cs {
		if c.Kind == kind && c.Name == name && (namespace == "" || c.Namespace == namespace) {
			return c, true
		}
	}
	return Change{}, false
}

// Refusal is a field of the Lab that cannot change on a running lab.
type Refusal struct {
	Field string
	Old   string
	New   string
}

// RefusedError lists every refused field; nothing is changed when it is returned.
type RefusedError struct {
	Lab      string
	Refusals []Refusal
}

func (e *RefusedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s: %d field(s) cannot change on a running lab (netlab down, then up):", e.Lab, len(e.Refusals))
	for _, r := range e.Refusals {
		fmt.Fprintf(&b, "\n  Lab %s: %s: %s → %s", e.Lab, r.Field, r.Old, r.New)
	}
	return b.String()
}

// ErrRefused is what errors.Is finds in a RefusedError.
var ErrRefused = errors.New("refused")

// Is lets errors.Is(err, ErrRefused) match.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// Compare is the live change from a running lab's plan to a new one (pure): one Change per
// Lab, Secret, Deployment, Service and Ingress of either plan, in that order (each kind
// sorted by namespace and name), or a *RefusedError naming every field that cannot change
// live (nodes, the address plan, the network mode, the ingress ports, the ingress VIP).
func Compare(old, cur *Plan) (Changes, error) {
	if rs := refusals(old, cur); len(rs) > 0 {
		return nil, &RefusedError{Lab: old.Lab, Refusals: rs}
	}
	var out Changes
	var what []string
	if !equalJSON(old.LB.Scheduler, cur.LB.Scheduler) {
		what = append(what, "spec.loadBalancer.scheduler")
	}
	if !equalJSON(old.LB.Persistence, cur.LB.Persistence) {
		what = append(what, "spec.loadBalancer.persistence")
	}
	if !equalJSON(old.LB.HealthCheck, cur.LB.HealthCheck) {
		what = append(what, "spec.loadBalancer.healthCheck")
	}
	if !equalJSON(old.Clients, cur.Clients) {
		what = append(what, "spec.clients")
	}
	if !equalJSON(old.Checks, cur.Checks) {
		what = append(what, "spec.checks")
	}
	// A lab brought up before plans named the default class has none recorded: not a change.
	if !equalJSON(old.Ingress.Classes, cur.Ingress.Classes) || old.Ingress.IgnoreWithoutClass != cur.Ingress.IgnoreWithoutClass ||
		old.Ingress.DefaultClass != "" && old.Ingress.DefaultClass != cur.Ingress.DefaultClass {
		what = append(what, "ingress classes served (IngressClass objects)")
	}
	labAction := Unchanged
	if len(what) > 0 {
		labAction = Configured
	}
	out = append(out, Change{Kind: KindLab, Name: cur.Lab, Action: labAction, What: what})

	out = append(out, compareKind(KindSecret, keyed(old.Secrets, secretKey), keyed(cur.Secrets, secretKey),
		func(a, b SecretRef) []string { return diffFields(a, b, "data") })...)
	out = append(out, compareKind(KindDeployment, keyed(old.Deployments, deploymentKey), keyed(cur.Deployments, deploymentKey),
		func(a, b Deployment) []string {
			var w []string
			if a.Replicas != b.Replicas {
				w = append(w, fmt.Sprintf("replicas %d → %d", a.Replicas, b.Replicas))
			}
			if a.Template != b.Template {
				w = append(w, "template")
			}
			return w
		})...)
	out = append(out, compareKind(KindService, keyed(old.Services, serviceKey), keyed(cur.Services, serviceKey),
		func(a, b Service) []string {
			a.Endpoints, b.Endpoints = nil, nil // follow the pods: not the Service's spec
			return diffFields(a, b, "")
		})...)
	out = append(out, compareKind(KindIngress, keyed(old.Ingresses, ingressKey), keyed(cur.Ingresses, ingressKey),
		func(a, b Ingress) []string {
			if string(a.Object) != string(b.Object) {
				return []string{"spec"}
			}
			return nil
		})...)
	return out, nil
}

func secretKey(s SecretRef) string      { return s.Namespace + "/" + s.Name }
func deploymentKey(d Deployment) string { return d.Namespace + "/" + d.Name }
func serviceKey(s Service) string       { return s.Namespace + "/" + s.Name }
func ingressKey(i Ingress) string       { return i.Namespace + "/" + i.Name }

func keyed[T any](xs []T, key func(T) string) map[string]T {
	m := make(map[string]T, len(xs))
	for _, x := range xs {
		m[key(x)] = x
	}
	return m
}

func compareKind[T any](kind string, old, cur map[string]T, diff func(a, b T) []string) Changes {
	keys := make([]string, 0, len(old)+len(cur))
	for k := range old {
		keys = append(keys, k)
	}
	for k := range cur {
		if _, ok := old[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out Changes
	for _, k := range keys {
		ns, name, _ := strings.Cut(k, "/")
		c := Change{Kind: kind, Namespace: ns, Name: name}
		a, inOld := old[k]
		b, inCur := cur[k]
		switch {
		case !inOld:
			c.Action = Created
		case !inCur:
			c.Action = Deleted
		default:
			c.What = diff(a, b)
			c.Action = Unchanged
			if len(c.What) > 0 {
				c.Action = Configured
			}
		}
		out = append(out, c)
	}
	return out
}

// diffFields names the top-level JSON fields that differ between a and b (whole: label).
func diffFields(a, b any, whole string) []string {
	if whole != "" {
		if equalJSON(a, b) {
			return nil
		}
		return []string{whole}
	}
	ma, mb := jsonMap(a), jsonMap(b)
	var out []string
	for k := range ma {
		if string(ma[k]) != string(mb[k]) {
			out = append(out, k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func jsonMap(v any) map[string]json.RawMessage {
	b, _ := json.Marshal(v)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	return m
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// refusals lists the fields of the Lab that a live change may not touch.
func refusals(old, cur *Plan) []Refusal {
	var out []Refusal
	add := func(field string, a, b any) {
		if !equalJSON(a, b) {
			out = append(out, Refusal{Field: field, Old: show(a), New: show(b)})
		}
	}
	add("metadata.name", old.Lab, cur.Lab)
	add("spec.network.mode", old.Network.Mode, cur.Network.Mode)
	add("spec.network.wanCIDR", old.Network.WanCIDR, cur.Network.WanCIDR)
	add("spec.network.nodeCIDR", old.Network.NodeCIDR, cur.Network.NodeCIDR)
	add("spec.network.podCIDR", old.Network.PodCIDR, cur.Network.PodCIDR)
	add("spec.network.serviceCIDR", old.Network.ServiceCIDR, cur.Network.ServiceCIDR)
	add("spec.network.clientRoutesToPods", old.Network.ClientRoutesToPods, cur.Network.ClientRoutesToPods)
	// kube-proxy's mode is how every node's table is built: a new lab.
	add("spec.kubeProxy.mode", orIPTables(old.KubeProxy.Mode), orIPTables(cur.KubeProxy.Mode))
	// The pod slices follow from nodePodMaskSize: a changed one shows in the nodes.
	nodeNames := func(p *Plan) []string {
		var n []string
		for _, x := range p.Nodes {
			n = append(n, x.Name)
		}
		return n
	}
	if !reflect.DeepEqual(nodeNames(old), nodeNames(cur)) {
		add("spec.nodes", nodeNames(old), nodeNames(cur))
	} else {
		for i := range old.Nodes {
			a, b := old.Nodes[i], cur.Nodes[i]
			f := "spec.nodes[" + a.Name + "]"
			add(f+".labels", a.Labels, b.Labels)
			add(f+".weight", a.Weight, b.Weight)
			add(f+" pod CIDR (spec.network.nodePodMaskSize)", a.PodCIDR, b.PodCIDR)
		}
	}
	add("spec.loadBalancer.vip", old.LB.VIP, cur.LB.VIP)
	// The classes served follow the IngressClass objects, which may change live.
	oi, ci := old.Ingress, cur.Ingress
	oi.Classes, oi.IgnoreWithoutClass, oi.DefaultClass, ci.Classes, ci.IgnoreWithoutClass, ci.DefaultClass = nil, false, "", nil, false, ""
	add("spec.ingress", oi, ci)
	return out
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		if x == "" {
			return `""`
		}
		return x
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func orIPTables(mode string) string {
	if mode == "" {
		return "iptables"
	}
	return mode
}
