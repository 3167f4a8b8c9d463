package lab

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// Status is `netlab status -o json` (a contract of its JSON: these fields at least).
type Status struct {
	Name         string          `json:"name"`
	Nodes        []NodeStatus    `json:"nodes"`
	Pods         []PodStatus     `json:"pods"`
	Services     []ServiceStatus `json:"services"`
	Ingresses    []IngressStatus `json:"ingresses"`
	LoadBalancer LBStatus        `json:"loadBalancer"`
	Clients      []ClientStatus  `json:"clients"`
	// Readiness says where the pods' readiness came from: the controller's record (and
	// how old it was), or status's own probes.
	Readiness *ReadinessSource `json:"readiness,omitempty"`
	// Agents is every process of the lab as its supervisor sees it, with restart counts.
	Agents []AgentStatus `json:"agents"`
}

// AgentStatus is one agent process: whether it runs, how often it was restarted, and
// the supervisor's word on it (Running, CrashLoopBackOff, Stopped, Failed ...).
type AgentStatus struct {
	Role      string `json:"role"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	PID       int    `json:"pid,omitempty"`
	Running   bool   `json:"running"`
	Restarts  int    `json:"restarts"`
	State     string `json:"state"`
	Message   string `json:"message,omitempty"`
}

// ingressFailing says why the LB holds node's ingress unhealthy ("" when it does not).
func ingressFailing(st *lb.State, node string) string {
	if st == nil {
		return ""
	}
	for _, vs := range st.Services {
		if !strings.HasPrefix(vs.Name, "ingress-") {
			continue
		}
		for _, b := range vs.Backends {
			if b.Name == node && !b.Healthy {
				msg := "ingress fails the load balancer's health check"
				if ps, ok := st.Probes[lb.BackendKey(vs, b)]; ok && ps.Err != "" {
					msg += ": " + ps.Err
				}
				return msg
			}
		}
	}
	return ""
}

// missingRoutes lists the plan's routes in ns that the kernel does not have.
func missingRoutes(h *kernel.Handles, p *plan.Plan, ns string) []string {
	var want []plan.Route
	for _, r := range p.Routes {
		if r.Netns == ns {
			want = append(want, r)
		}
	}
	if len(want) == 0 {
		return nil
	}
	live, err := h.Routes(ns)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, r := range want {
		if !live.Has(r.Dst, r.Via) {
			out = append(out, r.Dst+" via "+r.Via)
		}
	}
	return out
}

// agentStatuses reads every agent's pid file and the supervisor's report.
func agentStatuses(lab string, p *plan.Plan) []AgentStatus {
	rep, _ := supervise.ReadReport(rundir.ForLab(lab))
	said := map[string]supervise.AgentState{}
	if rep != nil {
		for _, a := range rep.Agents {
			said[a.Role+"/"+a.Name] = a
		}
	}
	procs := append(append([]plan.Process(nil), p.Processes...), supervise.SupervisorProcess(lab))
	out := make([]AgentStatus, 0, len(procs))
	for _, pr := range procs {
		a := AgentStatus{Role: pr.Role, Name: pr.Name, Namespace: pr.Netns, State: supervise.StateUnknown}
		if rec, err := supervise.ReadRecord(rundir.ForLab(lab), pr.Role, pr.Name); err == nil {
			a.Restarts = rec.Restarts
			if rec.Alive() {
				a.PID, a.Running, a.State = rec.PID, true, supervise.StateRunning
			} else {
				a.State = "Exited"
			}
		}
		if s, ok := said[pr.Role+"/"+pr.Name]; ok && !a.Running {
			a.State, a.Message = s.State, s.Message
		}
		if !a.Running && supervise.Stopped(rundir.ForLab(lab), pr.Role, pr.Name) {
			a.State = supervise.StateStopped
		}
		out = append(out, a)
	}
	return out
}

// NodeStatus is a node as it is now.
type NodeStatus struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	IP        string `json:"ip"`
	PodCIDR   string `json:"podCIDR"`
	Ready     bool   `json:"ready"`
	Reason    string `json:"reason,omitempty"`
	// Agents says, per role (kube-proxy, ingress), whether its process runs on the node.
	Agents map[string]bool `json:"agents"`
	// Restarts counts, per role, the restarts of the node's agents.
	Restarts map[string]int `json:"restarts"`
	// KubeProxy is the node's last rule sync, as its kube-proxy reported it.
	KubeProxy *kubeproxy.SyncStatus `json:"kubeProxy,omitempty"`
}

// agentRunning says whether one of pids is a netlab agent of role.
func agentRunning(pids []int, role string) bool {
	return slices.ContainsFunc(pids, func(pid int) bool { return IsAgent(kernel.Cmdline(pid), role) })
}

// IsAgent says whether argv (a process's command line) is a netlab agent of role (`agent
// ROLE ...`). An ingress's workers (--worker) are not its agent: the node's agent started
// them and speaks for them.
func IsAgent(argv []string, role string) bool {
	return len(argv) > 2 && argv[1] == "agent" && argv[2] == role && !slices.Contains(argv, "--worker")
}

// PodStatus is a pod as it is now.
type PodStatus struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	K8sNS     string `json:"k8sNamespace"`
	Node      string `json:"node"`
	IP        string `json:"ip"`
	Ready     bool   `json:"ready"`
	// Phase is Running, or Terminating while a live change lets the pod go.
	Phase    string            `json:"phase"`
	PID      int               `json:"pid,omitempty"`
	Restarts int               `json:"restarts"`
	Labels   map[string]string `json:"labels"`
	Reason   string            `json:"reason,omitempty"`
	// ReadinessFrom is "controller" (its record) or "probe" (status probed the pod);
	// absent for a pod whose namespace or process is missing.
	ReadinessFrom string `json:"readinessFrom,omitempty"`
}

// ServiceStatus is a Service with its live endpoints.
type ServiceStatus struct {
	Name           string `json:"name"`
	Namespace      string `json:"namespace"`
	Type           string `json:"type"`
	ClusterIP      string `json:"clusterIP"`
	LoadBalancerIP string `json:"loadBalancerIP,omitempty"`
	// ExternalName is an ExternalName Service's CNAME target in the cluster DNS.
	ExternalName string             `json:"externalName,omitempty"`
	Ports        []ServicePortState `json:"ports"`
	Endpoints    []EndpointStatus   `json:"endpoints"`
}

// ServicePortState is one port of a Service.
type ServicePortState struct {
	Name       string `json:"name"`
	Port       int32  `json:"port"`
	TargetPort string `json:"targetPort"`
	NodePort   int32  `json:"nodePort"`
	Protocol   string `json:"protocol"`
}

// EndpointStatus is one endpoint of a Service.
type EndpointStatus struct {
	Pod      string `json:"pod"`
	IP       string `json:"ip"`
	Port     int32  `json:"port"`
	PortName string `json:"portName,omitempty"`
	Node     string `json:"node"`
	Ready    bool   `json:"ready"`
	// Serving and Terminating are EndpointSlice's conditions (a leaving pod: ready
	// false, serving while it answers, terminating true).
	Serving     bool `json:"serving"`
	Terminating bool `json:"terminating"`
}

// IngressStatus is an Ingress's rules.
type IngressStatus struct {
	Name      string             `json:"name"`
	Namespace string             `json:"namespace"`
	Rules     []IngressRuleState `json:"rules"`
	// Class is the IngressClass the Ingress names ("" when it names none: the lab's class
	// is the cluster default).
	Class string `json:"class,omitempty"`
	// Ignored is true when Class is not the lab's, or, with no Class, when the cluster's
	// default IngressClass is another controller's: no node's ingress serves it and no
	// client resolves its hosts.
	Ignored bool `json:"ignored,omitempty"`
	// IgnoredReason says why, when Ignored: another class, the empty class, or no class
	// while the default IngressClass is another controller's.
	IgnoredReason string `json:"ignoredReason,omitempty"`
	// Upstream is how the ingress reaches its Services: "service" (the ClusterIP;
	// kube-proxy picks a pod per connection) or "endpoints" (the ingress picks a ready
	// endpoint per request). Empty when Ignored.
	Upstream string `json:"upstream,omitempty"`
	// Address is where the Ingress is exposed: the ingress VIP (a cluster's
	// status.loadBalancer.ingress[0].ip). Empty when Ignored.
	Address string `json:"address,omitempty"`
}

// IngressRuleState is one host/path rule.
type IngressRuleState struct {
	Host     string `json:"host"`
	Path     string `json:"path"`
	PathType string `json:"pathType"`
	Service  string `json:"service"`
	Port     string `json:"port"`
}

// LBStatus is the external load balancer.
type LBStatus struct {
	Namespace string     `json:"namespace"`
	VIPs      []VIPState `json:"vips"`
}

// VIPState is one virtual service.
type VIPState struct {
	IP        string         `json:"ip"`
	Port      int32          `json:"port"`
	Protocol  string         `json:"protocol"`
	Scheduler string         `json:"scheduler"`
	Name      string         `json:"name"`
	Backends  []BackendState `json:"backends"`
}

// BackendState is one real server of a virtual service.
type BackendState struct {
	Node    string `json:"node"`
	IP      string `json:"ip"`
	Port    int32  `json:"port"`
	Healthy bool   `json:"healthy"`
	Weight  int    `json:"weight"`
}

// ClientStatus is a client.
type ClientStatus struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	IP        string `json:"ip"`
}

// GetStatus reads a lab's live state: the objects come from its plan, their readiness from
// the kernel (namespaces, links, processes) and from probing every pod as the kubelet does.
func GetStatus(ctx context.Context, lab string) (*Status, error) {
	p, err := LoadPlan(lab)
	if err != nil {
		return nil, err
	}
	st := &Status{Name: p.Lab, LoadBalancer: LBStatus{Namespace: p.LB.Netns, VIPs: []VIPState{}},
		Nodes: []NodeStatus{}, Services: []ServiceStatus{}, Ingresses: []IngressStatus{}, Clients: []ClientStatus{}}
	nss := map[string]bool{}
	all, _ := kernel.ListNetns(plan.NetnsName(lab, ""))
	for _, n := range all {
		nss[n] = true
	}
	pids := kernel.PIDsIn(all)
	st.Agents = agentStatuses(lab, p)
	restarts := map[string]int{}
	agentState := map[string]AgentStatus{}
	for _, a := range st.Agents {
		restarts[a.Role+"/"+a.Name] = a.Restarts
		agentState[a.Role+"/"+a.Name] = a
	}
	h := kernel.NewHandles()
	defer h.Close()
	lbNow, _ := rundir.ForLab(lab).ReadLBState()
	nodeReady := map[string]bool{}
	for _, n := range p.Nodes {
		ns := NodeStatus{Name: n.Name, Namespace: n.Netns, IP: plan.Addr(n.IP), PodCIDR: n.PodCIDR, Agents: map[string]bool{}, Restarts: map[string]int{}}
		for _, pr := range p.Processes {
			if pr.Netns == n.Netns {
				ns.Agents[pr.Role] = agentRunning(pids[n.Netns], pr.Args[1])
				ns.Restarts[pr.Role] = restarts[pr.Role+"/"+pr.Name]
			}
		}
		var down []string
		for role, ok := range ns.Agents {
			if !ok {
				down = append(down, role+" not running")
			}
		}
		sort.Strings(down)
		if ss, err := rundir.ForLab(lab).ReadSyncStatus(n.Name); err == nil {
			ns.KubeProxy = ss
		}
		switch up, err := h.LinkUp(n.Netns, plan.NodeIface); {
		case !nss[n.Netns]:
			ns.Reason = "namespace missing"
		case err != nil:
			ns.Reason = err.Error()
		case !up:
			ns.Reason = "eth0 is down"
		case len(down) > 0:
			ns.Reason = strings.Join(down, ", ")
		case len(missingRoutes(h, p, n.Netns)) > 0:
			ns.Reason = "routes missing: " + strings.Join(missingRoutes(h, p, n.Netns), ", ")
		case ingressFailing(lbNow, n.Name) != "":
			// The agent runs but does not answer (hung, stopped): what users would see.
			ns.Reason = ingressFailing(lbNow, n.Name)
		default:
			ns.Ready = true
		}
		nodeReady[n.Name] = ns.Ready
		st.Nodes = append(st.Nodes, ns)
	}
	st.Pods = make([]PodStatus, len(p.Pods))
	var running []int
	for i, pod := range p.Pods {
		ps := PodStatus{Name: pod.Name, Namespace: pod.Netns, K8sNS: pod.Namespace, Node: pod.Node, IP: plan.Addr(pod.IP), Labels: pod.Labels, Phase: "Running",
			Restarts: restarts["pod/"+pod.Name]}
		if pod.Terminating {
			ps.Phase = "Terminating"
		}
		if ps.Labels == nil {
			ps.Labels = map[string]string{}
		}
		if l := pids[pod.Netns]; len(l) > 0 {
			ps.PID = l[0]
		}
		st.Pods[i] = ps
		if !nss[pod.Netns] {
			st.Pods[i].Reason = "namespace missing"
			continue
		}
		if ps.PID == 0 {
			st.Pods[i].Reason = "not running"
			if a := agentState["pod/"+pod.Name]; a.State != "" && a.State != "Exited" && a.State != supervise.StateUnknown {
				st.Pods[i].Reason += " (" + a.State + ")"
			}
			continue
		}
		running = append(running, i)
	}
	// Readiness of the pods that run: the controller's record, as kubectl shows what the
	// kubelet reported, when it is fresh; else status probes them itself.
	rec, err := rundir.ForLab(lab).ReadReadiness()
	pidOf := map[string]int{}
	for _, i := range running {
		pidOf[st.Pods[i].Name] = st.Pods[i].PID
	}
	started := func(pod string) time.Time { return kernel.StartedAt(pidOf[pod]) }
	st.Readiness = FillPodReadiness(ctx, rec, err, p, st.Pods, running, started, time.Now())
	podReady := map[string]bool{}
	for _, ps := range st.Pods {
		podReady[ps.Name] = ps.Ready
	}
	// Endpoint readiness: the controller's endpoints file when the lab has one.
	var ctl map[string]kubeproxy.Endpoint
	var ctlPods map[string]bool
	if ef, err := rundir.ForLab(lab).ReadEndpoints(); err == nil {
		ctl, ctlPods = map[string]kubeproxy.Endpoint{}, ef.PodReady
		for _, sp := range ef.Ports {
			for _, e := range sp.Endpoints {
				ctl[endpointKey(sp.Namespace+"/"+sp.Name, sp.PortName, e.IP, e.Port)] = e
			}
		}
	}
	leaving := map[string]bool{}
	for _, pod := range p.Pods {
		leaving[pod.Name] = pod.Terminating
	}
	for _, s := range p.Services {
		ss := ServiceStatus{Name: s.Name, Namespace: s.Namespace, Type: s.Type, ClusterIP: s.ClusterIP, LoadBalancerIP: s.LoadBalancerIP,
			ExternalName: s.ExternalName, Ports: []ServicePortState{}, Endpoints: []EndpointStatus{}}
		for _, sp := range s.Ports {
			ss.Ports = append(ss.Ports, ServicePortState{Name: sp.Name, Port: sp.Port, TargetPort: sp.TargetPort, NodePort: sp.NodePort, Protocol: sp.Protocol})
		}
		for _, e := range s.Endpoints {
			es := EndpointStatus{Pod: e.Pod, IP: e.IP, Port: e.Port, PortName: e.PortName, Node: e.Node, Ready: podReady[e.Pod]}
			if leaving[e.Pod] {
				es.Ready, es.Serving, es.Terminating = false, podReady[e.Pod], true
			}
			if ctl != nil { // the controller's view is what kube-proxy programs
				c := ctl[endpointKey(s.Namespace+"/"+s.Name, e.PortName, e.IP, e.Port)]
				es.Ready, es.Serving, es.Terminating = c.Ready, c.IsServing(), c.Terminating
				if s.Headless() { // no kube-proxy port: the pod's readiness, as DNS publishes it
					es.Ready = s.PublishNotReady || ctlPods[e.Pod]
				}
			}
			es.Serving = es.Serving || es.Ready
			ss.Endpoints = append(ss.Endpoints, es)
		}
		st.Services = append(st.Services, ss)
	}
	st.Ingresses = ingressStatus(p)
	// Health is what the lb agent's checks decided (its state file); without the agent,
	// a backend is as healthy as its node.
	lbState, _ := rundir.ForLab(lab).ReadLBState()
	for _, vs := range p.LB.VIPs {
		v := VIPState{IP: vs.IP, Port: vs.Port, Protocol: vs.Protocol, Scheduler: vs.Scheduler, Name: vs.Name, Backends: []BackendState{}}
		for _, n := range p.Nodes {
			b := BackendState{Node: n.Name, IP: plan.Addr(n.IP), Port: vs.NodePort, Weight: n.Weight, Healthy: nodeReady[n.Name]}
			if lbState != nil {
				b.Healthy = false
				for _, lvs := range lbState.Services {
					if lvs.Name != vs.Name {
						continue
					}
					for _, lbk := range lvs.Backends {
						if lbk.Name == n.Name {
							b.Healthy, b.Weight = lbk.Healthy, lbState.ShownWeight(lbk)
						}
					}
				}
			}
			v.Backends = append(v.Backends, b)
		}
		st.LoadBalancer.VIPs = append(st.LoadBalancer.VIPs, v)
	}
	for _, c := range p.Clients {
		st.Clients = append(st.Clients, ClientStatus{Name: c.Name, Namespace: c.Netns, IP: plan.Addr(c.IP)})
	}
	// The cluster's own pods (kube-system: the DNS agents) come first and the workloads
	// last, each group in plan order: readers and tools that take "the last pod" as a
	// workload pod get one that serves the echo contract.
	sort.SliceStable(st.Pods, func(i, j int) bool {
		return st.Pods[i].K8sNS == "kube-system" && st.Pods[j].K8sNS != "kube-system"
	})
	return st, nil
}

func endpointKey(svc, port, ip string, p int32) string {
	return fmt.Sprintf("%s:%s %s:%d", svc, port, ip, p)
}
