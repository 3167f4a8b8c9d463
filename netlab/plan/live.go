package plan

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Deployment is what the lab keeps of an apps/v1 Deployment: enough to place, replace and
// count its pods on a running lab (apply, scale, rollout restart) without the scenario.
type Deployment struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Replicas  int32  `json:"replicas"`
	// Template is a hash of the pod template: pods made from another template are
	// replaced. A rollout restart gives the Deployment a new one.
	Template     string            `json:"template"`
	NodeName     string            `json:"nodeName,omitempty"`
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Pod is the pod every replica is made from (name, node and address left empty).
	Pod Pod `json:"pod"`
}

// SecretRef records a Secret of the scenario by name and content hash, so a live change
// can say whether it changed.
type SecretRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Hash      string `json:"hash"`
}

// DefaultTerminationGrace is Kubernetes' default terminationGracePeriodSeconds.
const DefaultTerminationGrace = 30

// Clone returns a deep copy of p (through JSON: plans are plain data).
func (p *Plan) Clone() *Plan {
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("plan clone: %v", err))
	}
	var out Plan
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("plan clone: %v", err))
	}
	return &out
}

// PodByName finds a pod of the plan.
func (p *Plan) PodByName(name string) (Pod, bool) {
	for _, pod := range p.Pods {
		if pod.Name == name {
			return pod, true
		}
	}
	return Pod{}, false
}

// DeploymentByName finds a Deployment of the plan (namespace "" matches any).
func (p *Plan) DeploymentByName(namespace, name string) (*Deployment, bool) {
	for i := range p.Deployments {
		d := &p.Deployments[i]
		if d.Name == name && (namespace == "" || d.Namespace == namespace) {
			return d, true
		}
	}
	return nil, false
}

func (p *Plan) node(name string) (Node, bool) {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// AddPod adds a pod and everything that wires it: its veth pair to the node's cni0, its
// default route, the permanent neighbour entries both ways and its echo agent. pod must
// have its Name, Node and IP set.
func (p *Plan) AddPod(pod Pod) {
	node, _ := p.node(pod.Node)
	pod.Netns = NetnsName(p.Lab, pod.Name)
	pod.Gateway = addrOf(node.Gateway)
	pod.HostVeth = HostVethName(p.Lab, pod.Name)
	pod.MAC = MACOf(p.Lab, "pod/"+pod.Name)
	p.Pods = append(p.Pods, pod)
	mtu := 0
	if node.VTEP != nil {
		mtu = node.VTEP.MTU
	}
	p.Links = append(p.Links, Link{
		A: LinkEnd{Netns: pod.Netns, Name: PodIface, MAC: pod.MAC, MTU: mtu, Addrs: []string{pod.IP}},
		B: LinkEnd{Netns: node.Netns, Name: pod.HostVeth, Master: BridgeCNI, MTU: mtu},
	})
	p.Routes = append(p.Routes, Route{Netns: pod.Netns, Dst: "default", Via: pod.Gateway})
	p.Neighbors = append(p.Neighbors,
		Neighbor{Netns: pod.Netns, Dev: PodIface, IP: pod.Gateway, MAC: node.BridgeMAC},
		Neighbor{Netns: node.Netns, Dev: BridgeCNI, IP: addrOf(pod.IP), MAC: pod.MAC})
	p.ResolvConfs = append(p.ResolvConfs, p.PodResolvConf(pod))
	one := &Plan{Lab: p.Lab, DNS: p.DNS, Pods: []Pod{pod}}
	p.Processes = append(p.Processes, podProcesses(one)...)
	p.Processes = append(p.Processes, dnsProcesses(one)...)
}

// RemovePod removes a pod and everything AddPod (or Build) made for it.
func (p *Plan) RemovePod(name string) (Pod, bool) {
	i := slices.IndexFunc(p.Pods, func(x Pod) bool { return x.Name == name })
	if i < 0 {
		return Pod{}, false
	}
	pod := p.Pods[i]
	p.Pods = slices.Delete(p.Pods, i, i+1)
	node, _ := p.node(pod.Node)
	ip := addrOf(pod.IP)
	p.Links = slices.DeleteFunc(p.Links, func(l Link) bool { return l.A.Netns == pod.Netns || l.B.Netns == pod.Netns })
	p.Routes = slices.DeleteFunc(p.Routes, func(r Route) bool { return r.Netns == pod.Netns })
	p.Neighbors = slices.DeleteFunc(p.Neighbors, func(n Neighbor) bool {
		return n.Netns == pod.Netns || (n.Netns == node.Netns && n.Dev == BridgeCNI && n.IP == ip)
	})
	p.Sysctls = slices.DeleteFunc(p.Sysctls, func(s Sysctl) bool { return s.Netns == pod.Netns })
	p.ResolvConfs = slices.DeleteFunc(p.ResolvConfs, func(r ResolvConf) bool { return r.Netns == pod.Netns })
	p.Processes = slices.DeleteFunc(p.Processes, func(pr Process) bool { return pr.Role == "pod" && pr.Name == pod.Name })
	return pod, true
}

// RecomputeEndpoints lists every Service's endpoints again from the plan's pods, as Build
// does: every selected pod (terminating ones too), every port whose targetPort it has (a
// headless Service without ports: one port-less endpoint per pod).
func (p *Plan) RecomputeEndpoints() {
	for i := range p.Services {
		s := &p.Services[i]
		s.Endpoints = nil
		if len(s.Selector) == 0 {
			continue
		}
		for _, pod := range p.Pods {
			if pod.Namespace != s.Namespace || !MatchesSet(s.Selector, pod.Labels) {
				continue
			}
			host := pod.EndpointHostname(s.Name)
			if len(s.Ports) == 0 && s.Headless() {
				s.Endpoints = append(s.Endpoints, Endpoint{Pod: pod.Name, Node: pod.Node, IP: addrOf(pod.IP), Hostname: host})
			}
			for _, sp := range s.Ports {
				tp, ok := ResolveTargetPort(pod.Ports, sp.TargetPort, sp.Protocol)
				if !ok {
					continue
				}
				s.Endpoints = append(s.Endpoints, Endpoint{PortName: sp.Name, Pod: pod.Name, Node: pod.Node,
					IP: addrOf(pod.IP), Port: tp, Protocol: sp.Protocol, Hostname: host})
			}
		}
	}
}

// MatchesSet says whether labels hold every key and value of selector, as a Kubernetes
// equality-based selector made from a set (labels.SelectorFromSet) matches: an empty
// selector matches everything.
func MatchesSet(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ResolveTargetPort finds a Service port's targetPort, as written (a number or a port
// name), among a pod's container ports: a number is taken as it is (when positive), a
// name must be a container port of that protocol ("" any).
func ResolveTargetPort(ports []ContainerPort, targetPort, proto string) (int32, bool) {
	if n, err := strconv.ParseInt(targetPort, 10, 32); err == nil {
		return int32(n), n > 0
	}
	for _, cp := range ports {
		if cp.Name == targetPort && (proto == "" || cp.Protocol == proto) {
			return cp.Port, true
		}
	}
	return 0, false
}

// EndpointHostname is the hostname of the pod's endpoints of Service svc (of the pod's
// namespace): the pod's hostname when its subdomain is svc, as Kubernetes' endpoints
// controllers set it; "" otherwise.
func (pod Pod) EndpointHostname(svc string) string {
	if pod.Hostname != "" && pod.Subdomain == svc {
		return pod.Hostname
	}
	return ""
}

// podIndex is n of a pod named <deployment>-<n>.
func podIndex(deployment, pod string) (int, bool) {
	rest, ok := strings.CutPrefix(pod, deployment+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n > 0
}

// Current says whether pod is a live replica of d made from d's template.
func (d *Deployment) Current(pod Pod) bool {
	return !pod.Terminating && pod.Namespace == d.Namespace && pod.Deployment == d.Name && pod.Template == d.Template
}

func (d *Deployment) owns(pod Pod) bool {
	return pod.Namespace == d.Namespace && pod.Deployment == d.Name
}

// eligible lists the nodes d's pods may run on.
func (p *Plan) eligible(d *Deployment) []int {
	var out []int
	for i, n := range p.Nodes {
		if d.NodeName != "" && d.NodeName != n.Name {
			continue
		}
		if !MatchesSet(d.NodeSelector, n.Labels) {
			continue
		}
		out = append(out, i)
	}
	return out
}

// NewPod places one more replica of d: on the eligible node with the fewest live pods of
// d, then the fewest live pods, then in node order; named <deployment>-<n> with n after
// every index the plan holds (terminating pods included), addressed with the lowest
// address of the node's slice that no pod of the plan holds.
func (p *Plan) NewPod(d *Deployment) (Pod, error) {
	cands := p.eligible(d)
	if len(cands) == 0 {
		return Pod{}, fmt.Errorf("deployment %s/%s: no node matches nodeName/nodeSelector", d.Namespace, d.Name)
	}
	mine, total := map[string]int{}, map[string]int{}
	next := 1
	names := map[string]bool{}
	usedIP := map[string]bool{}
	for _, pod := range p.Pods {
		names[pod.Name] = true
		usedIP[addrOf(pod.IP)] = true
		if n, ok := podIndex(d.Name, pod.Name); ok && n >= next {
			next = n + 1
		}
		if pod.Terminating {
			continue
		}
		total[pod.Node]++
		if d.owns(pod) {
			mine[pod.Node]++
		}
	}
	best := cands[0]
	for _, c := range cands[1:] {
		bn, cn := p.Nodes[best].Name, p.Nodes[c].Name
		if mine[cn] < mine[bn] || (mine[cn] == mine[bn] && total[cn] < total[bn]) {
			best = c
		}
	}
	node := p.Nodes[best]
	name := fmt.Sprintf("%s-%d", d.Name, next)
	for names[name] {
		next++
		name = fmt.Sprintf("%s-%d", d.Name, next)
	}
	slice := netip.MustParsePrefix(node.PodCIDR)
	gw := addrOf(node.Gateway)
	for host := 2; host < hostCount(slice)+1; host++ {
		a := nth(slice, host)
		if usedIP[a.String()] || a.String() == gw {
			continue
		}
		pod := d.Pod
		pod.Name, pod.Node, pod.IP = name, node.Name, cidr(a, slice)
		pod.Labels = maps(d.Pod.Labels)
		pod.Ports = slices.Clone(d.Pod.Ports)
		pod.Namespace, pod.Deployment, pod.Template, pod.Terminating = d.Namespace, d.Name, d.Template, false
		return pod, nil
	}
	return Pod{}, fmt.Errorf("deployment %s/%s: node %s's pod CIDR %s is full", d.Namespace, d.Name, node.Name, slice)
}

func maps(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Reconcile makes the plan's live pods what its Deployments ask for: pods of a
// Deployment's current template are kept (the lowest indexes first, up to its replicas),
// every other live pod is removed, and missing replicas are placed with NewPod.
// Terminating pods are left as they are. It returns the pods added and removed.
func (p *Plan) Reconcile() (added, removed []Pod, err error) {
	keep := map[string]bool{}
	for i := range p.Deployments {
		d := &p.Deployments[i]
		var cur []Pod
		for _, pod := range p.Pods {
			if d.Current(pod) {
				cur = append(cur, pod)
			}
		}
		sort.SliceStable(cur, func(a, b int) bool {
			x, _ := podIndex(d.Name, cur[a].Name)
			y, _ := podIndex(d.Name, cur[b].Name)
			return x < y
		})
		for j, pod := range cur {
			if j < int(d.Replicas) {
				keep[pod.Name] = true
			}
		}
	}
	for _, pod := range slices.Clone(p.Pods) {
		if !pod.Terminating && !keep[pod.Name] {
			p.RemovePod(pod.Name)
			removed = append(removed, pod)
		}
	}
	// Removed pods still hold their names and addresses until they are gone: new pods
	// neither reuse them nor count them.
	held := &Plan{Lab: p.Lab, Nodes: p.Nodes, Pods: append(slices.Clone(p.Pods), terminatingCopies(removed)...)}
	for i := range p.Deployments {
		d := &p.Deployments[i]
		n := 0
		for _, pod := range p.Pods {
			if d.Current(pod) {
				n++
			}
		}
		for ; n < int(d.Replicas); n++ {
			pod, err := held.NewPod(d)
			if err != nil {
				return nil, nil, err
			}
			held.Pods = append(held.Pods, pod)
			p.AddPod(pod)
			added = append(added, pod)
		}
	}
	p.RecomputeEndpoints()
	return added, removed, nil
}

func terminatingCopies(pods []Pod) []Pod {
	out := make([]Pod, len(pods))
	for i, pod := range pods {
		pod.Terminating = true
		out[i] = pod
	}
	return out
}

// Rebase carries a running lab's state over to a plan freshly built from edited files:
// the pods of prev (with their names, nodes and addresses) replace the fresh plan's, and
// Reconcile then keeps, removes and adds pods against the fresh Deployments. Allocations
// of Services are carried by BuildFrom, not here.
func Rebase(fresh, prev *Plan) (*Plan, error) {
	out := fresh.Clone()
	return out, out.RebaseOn(prev)
}

// RebaseOn is Rebase in place: out, a plan nobody else holds, takes prev's pods.
func (out *Plan) RebaseOn(prev *Plan) error {
	// A fresh pod identical to the running one of its name stays where it is (the same
	// files give the very same plan); every other one gives way to the running pods.
	running := map[string]Pod{}
	for _, pod := range prev.Pods {
		running[pod.Name] = pod
	}
	same := map[string]bool{}
	for _, pod := range slices.Clone(out.Pods) {
		if r, ok := running[pod.Name]; ok && equalJSON(r, pod) {
			same[pod.Name] = true
			continue
		}
		out.RemovePod(pod.Name)
	}
	for _, pod := range prev.Pods {
		if _, ok := out.node(pod.Node); !ok || same[pod.Name] {
			continue // a node that went is refused by Compare: nodes do not change live
		}
		out.AddPod(pod)
	}
	if _, _, err := out.Reconcile(); err != nil {
		return err
	}
	out.sortPodsLike(prev)
	return nil
}

// sortPodsLike keeps prev's pods in prev's order, new ones after them in their order.
func (p *Plan) sortPodsLike(prev *Plan) {
	at := map[string]int{}
	for i, pod := range prev.Pods {
		at[pod.Name] = i
	}
	rank := func(pod Pod) int {
		if i, ok := at[pod.Name]; ok {
			return i
		}
		return len(prev.Pods)
	}
	sort.SliceStable(p.Pods, func(a, b int) bool { return rank(p.Pods[a]) < rank(p.Pods[b]) })
}
