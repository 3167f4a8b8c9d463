package planbuild

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Build turns a validated, defaulted scenario into a plan. name overrides the Lab's
// metadata.name when not empty. Problems found while allocating (a pod CIDR too small, no
// node for a nodeSelector, an exhausted range) are returned together as scenario.Problems.
func Build(s *scenario.Scenario, name string) (*plan.Plan, error) {
	b := &builder{s: s}
	return b.build(name)
}

type builder struct {
	s     *scenario.Scenario
	p     *plan.Plan
	probs scenario.Problems
	// prev is the running lab's plan when building for a live change (BuildFrom): its
	// Services keep their addresses and ports, which no new Service may take.
	prev *plan.Plan
	// deps and svcs are the scenario's Deployments and Services followed by the cluster
	// DNS's, when the lab runs one.
	deps []scenario.Deployment
	svcs []scenario.Service
}

func (b *builder) problem(src scenario.Source, obj, field, msg string) {
	b.probs = append(b.probs, scenario.Problem{File: src.File, Object: obj, Field: field, Msg: msg})
}

func (b *builder) build(name string) (*plan.Plan, error) {
	s := b.s
	lab := s.Lab
	if name == "" {
		name = lab.Metadata.Name
	}
	if err := plan.CheckLabName(name); err != nil {
		b.problem(s.LabSource, "Lab "+name, "metadata.name", err.Error())
		return nil, b.probs
	}
	net := lab.Spec.Network
	p := &plan.Plan{Lab: name, Network: plan.Network{
		Mode: net.Mode, WanCIDR: net.WanCIDR, NodeCIDR: net.NodeCIDR, PodCIDR: net.PodCIDR,
		ServiceCIDR: net.ServiceCIDR, NodePortRange: fmt.Sprintf("%d-%d", plan.NodePortMin, plan.NodePortMax),
		ClientRoutesToPods: net.ClientRoutesToPods,
	}, KubeProxy: plan.KubeProxyConfig{Mode: lab.Spec.KubeProxy.Mode}}
	b.p = p
	for _, c := range lab.Spec.Checks {
		j, err := json.Marshal(c)
		if err != nil {
			b.problem(s.LabSource, "Lab "+name, "spec.checks", err.Error())
			continue
		}
		p.Checks = append(p.Checks, j)
	}
	in := lab.Spec.Ingress
	cp := s.ClassPolicy()
	p.Ingress = plan.IngressConfig{ClassName: in.ClassName, Upstream: in.Upstream, HTTPPort: in.HTTPPort, HTTPSPort: in.HTTPSPort, MetricsPort: in.MetricsPort,
		UseForwardedHeaders: in.UseForwardedHeaders, Classes: cp.Classes, IgnoreWithoutClass: cp.IgnoreWithoutClass, Workers: in.IngressWorkers()}
	if cp.IgnoreWithoutClass {
		p.Ingress.DefaultClass = cp.Default
	}
	for _, w := range s.Warnings {
		p.Warnings = append(p.Warnings, w.String())
	}
	wan, err1 := netip.ParsePrefix(net.WanCIDR)
	fab, err2 := netip.ParsePrefix(net.NodeCIDR)
	pods, err3 := netip.ParsePrefix(net.PodCIDR)
	svcs, err4 := netip.ParsePrefix(net.ServiceCIDR)
	for i, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			b.problem(s.LabSource, "Lab "+name, []string{"spec.network.wanCIDR", "spec.network.nodeCIDR", "spec.network.podCIDR", "spec.network.serviceCIDR"}[i], err.Error())
		}
	}
	if len(b.probs) > 0 {
		return nil, b.probs
	}
	wan, fab, pods, svcs = wan.Masked(), fab.Masked(), pods.Masked(), svcs.Masked()
	dns, dnsDeps, dnsSvcs := dnsObjects(s, svcs)
	p.DNS = dns
	b.deps = append(append([]scenario.Deployment{}, s.Deployments...), dnsDeps...)
	b.svcs = append(append([]scenario.Service{}, s.Services...), dnsSvcs...)

	ns := func(obj string) string { return plan.NetnsName(name, obj) }
	p.Switches = []plan.Switch{
		{Name: "wan", Netns: ns("wan"), Bridge: "wan"},
		{Name: "fabric", Netns: ns("fabric"), Bridge: "fabric"},
	}

	// LB: .1 on both segments.
	lbWan, lbFab := nth(wan, 1), nth(fab, 1)
	lbs := lab.Spec.LoadBalancer
	hc := lbs.HealthCheck
	p.LB = plan.LB{
		Netns: ns("lb"), WanIP: cidr(lbWan, wan), FabricIP: cidr(lbFab, fab), VIP: lbs.VIP,
		Scheduler: lbs.Scheduler, Persistence: lbs.Persistence.Duration.String(),
		ExposeNodes: lbs.ExposeNodes == nil || *lbs.ExposeNodes,
		HealthCheck: plan.HealthCheck{Type: hc.Type, Path: hc.Path, Interval: hc.Interval.Duration.String(),
			Timeout: hc.Timeout.Duration.String(), Rise: hc.Rise, Fall: hc.Fall, Inhibit: hc.Inhibit,
			Ingress: hc.Ingress},
	}
	p.Links = append(p.Links,
		plan.Link{A: plan.LinkEnd{Netns: p.LB.Netns, Name: plan.LBWanIface, Addrs: []string{p.LB.WanIP}}, B: plan.LinkEnd{Netns: ns("wan"), Name: "lb", Master: "wan"}},
		plan.Link{A: plan.LinkEnd{Netns: p.LB.Netns, Name: plan.LBFabIface, Addrs: []string{p.LB.FabricIP}}, B: plan.LinkEnd{Netns: ns("fabric"), Name: "lb", Master: "fabric"}},
	)
	p.Sysctls = append(p.Sysctls,
		plan.Sysctl{Netns: p.LB.Netns, Key: "net.ipv4.ip_forward", Value: "1"},
		plan.Sysctl{Netns: p.LB.Netns, Key: "net.ipv4.conf.all.rp_filter", Value: "0"},
		plan.Sysctl{Netns: p.LB.Netns, Key: "net.ipv4.conf.default.rp_filter", Value: "0"},
		// conntrack must not be loose: a mid-stream packet of a connection the LB never saw
		// is not a new connection to schedule.
		plan.Sysctl{Netns: p.LB.Netns, Key: "net.netfilter.nf_conntrack_tcp_loose", Value: "0"},
	)
	for _, sw := range p.Switches {
		p.Sysctls = append(p.Sysctls, plan.Sysctl{Netns: sw.Netns, Key: "net.bridge.bridge-nf-call-iptables", Value: "0"})
	}

	// Nodes: fabric .11+, pod slice i = node i (1-based).
	if net.NodePodMaskSize < pods.Bits() || net.NodePodMaskSize > 30 {
		b.problem(s.LabSource, "Lab "+name, "spec.network.nodePodMaskSize",
			fmt.Sprintf("%d must be between the pod CIDR's prefix length %d and 30", net.NodePodMaskSize, pods.Bits()))
		return nil, b.probs
	}
	slices := 1 << (net.NodePodMaskSize - pods.Bits())
	if len(lab.Spec.Nodes)+1 > slices {
		b.problem(s.LabSource, "Lab "+name, "spec.network.podCIDR",
			fmt.Sprintf("%s has %d /%d slices; %d nodes need %d (slice 0 is unused)", pods, slices, net.NodePodMaskSize, len(lab.Spec.Nodes), len(lab.Spec.Nodes)+1))
		return nil, b.probs
	}
	if hosts := hostCount(fab); len(lab.Spec.Nodes)+10 > hosts {
		b.problem(s.LabSource, "Lab "+name, "spec.network.nodeCIDR",
			fmt.Sprintf("%s holds %d hosts; the LB (.1) and %d nodes from .11 do not fit", fab, hosts, len(lab.Spec.Nodes)))
		return nil, b.probs
	}
	for i, n := range lab.Spec.Nodes {
		slice := netip.PrefixFrom(addOffset(pods.Addr(), uint64(i+1)<<(32-net.NodePodMaskSize)), net.NodePodMaskSize)
		node := plan.Node{Name: n.Name, Netns: ns(n.Name), IP: cidr(nth(fab, 11+i), fab),
			PodCIDR: slice.String(), Gateway: cidr(nth(slice, 1), slice), Labels: n.Labels, Weight: *n.Weight,
			BridgeMAC: plan.MACOf(name, "node/"+n.Name+"/cni0")}
		p.Nodes = append(p.Nodes, node)
		p.Links = append(p.Links, plan.Link{
			A: plan.LinkEnd{Netns: node.Netns, Name: plan.NodeIface, Addrs: []string{node.IP}},
			B: plan.LinkEnd{Netns: ns("fabric"), Name: n.Name, Master: "fabric"},
		})
		p.Routes = append(p.Routes, plan.Route{Netns: node.Netns, Dst: "default", Via: lbFab.String()})
		p.Sysctls = append(p.Sysctls,
			plan.Sysctl{Netns: node.Netns, Key: "net.ipv4.ip_forward", Value: "1"},
			plan.Sysctl{Netns: node.Netns, Key: "net.ipv4.conf.all.rp_filter", Value: "0"},
			plan.Sysctl{Netns: node.Netns, Key: "net.ipv4.conf.default.rp_filter", Value: "0"},
			// Pod-to-Service traffic answered by a pod on the same bridge must pass the
			// node's conntrack to be un-DNATed: kube-proxy needs bridge netfilter.
			plan.Sysctl{Netns: node.Netns, Key: "net.bridge.bridge-nf-call-iptables", Value: "1"},
		)
		if !p.NFTables() {
			// NodePorts on 127.0.0.1, as kube-proxy's iptables mode sets it (with the
			// KUBE-FIREWALL rule against martians from off the node). Its nftables mode
			// serves no localhost NodePorts and leaves the sysctl alone.
			p.Sysctls = append(p.Sysctls, plan.Sysctl{Netns: node.Netns, Key: "net.ipv4.conf.all.route_localnet", Value: "1"})
		}
	}
	if net.Mode == scenario.ModeVXLAN {
		b.vxlan()
	} else {
		// host-gw: every node routes every other node's pod slice via that node.
		for _, a := range p.Nodes {
			for _, o := range p.Nodes {
				if a.Name != o.Name {
					p.Routes = append(p.Routes, plan.Route{Netns: a.Netns, Dst: o.PodCIDR, Via: addrOf(o.IP)})
				}
			}
		}
	}
	if net.ClientRoutesToPods {
		for _, o := range p.Nodes {
			p.Routes = append(p.Routes, plan.Route{Netns: p.LB.Netns, Dst: o.PodCIDR, Via: addrOf(o.IP)})
		}
	}

	// Clients: wan .2+ (skipping explicit ones, the LB and VIPs).
	usedWan := map[netip.Addr]bool{lbWan: true}
	if vip, err := netip.ParseAddr(lbs.VIP); err == nil {
		usedWan[vip] = true
	}
	for _, c := range lab.Spec.Clients {
		if a, err := netip.ParseAddr(c.IP); err == nil {
			usedWan[a] = true
		}
	}
	// Addresses Services ask for are taken before clients get theirs.
	for _, svc := range s.Services {
		if a, err := netip.ParseAddr(svc.Spec.LoadBalancerIP); err == nil {
			usedWan[a] = true
		}
	}
	next := 2
	for _, c := range lab.Spec.Clients {
		addr, err := netip.ParseAddr(c.IP)
		if c.IP == "" {
			for ; usedWan[nth(wan, next)]; next++ {
			}
			addr = nth(wan, next)
			usedWan[addr] = true
		} else if err != nil {
			b.problem(s.LabSource, "Lab "+name, "spec.clients", fmt.Sprintf("client %s: bad ip %q", c.Name, c.IP))
			continue
		}
		if !wan.Contains(addr) {
			b.problem(s.LabSource, "Lab "+name, "spec.clients", fmt.Sprintf("client %s: %s is outside the wan %s", c.Name, addr, wan))
			continue
		}
		cl := plan.Client{Name: c.Name, Netns: ns(c.Name), IP: cidr(addr, wan)}
		p.Clients = append(p.Clients, cl)
		p.Links = append(p.Links, plan.Link{
			A: plan.LinkEnd{Netns: cl.Netns, Name: plan.ClientIface, Addrs: []string{cl.IP}},
			B: plan.LinkEnd{Netns: ns("wan"), Name: c.Name, Master: "wan"},
		})
		// Clients reach the node network (NodePorts) through the LB, never pods or
		// ClusterIPs, unless the scenario says so.
		p.Routes = append(p.Routes, plan.Route{Netns: cl.Netns, Dst: fab.String(), Via: lbWan.String()})
		if net.ClientRoutesToPods {
			p.Routes = append(p.Routes, plan.Route{Netns: cl.Netns, Dst: pods.String(), Via: lbWan.String()})
		}
	}

	b.placePods(ns)
	b.services(svcs, wan, usedWan)
	// The LB answers ARP for every VIP: they are /32s on its wan interface.
	vips := map[string]bool{}
	for _, vs := range p.LB.VIPs {
		if vs.IP != "" && !vips[vs.IP] {
			vips[vs.IP] = true
			p.Links[0].A.Addrs = append(p.Links[0].A.Addrs, vs.IP+"/32")
		}
	}
	b.ingresses()
	b.resolvConfs()
	p.Processes = append(p.Processes, plan.Processes(p)...)
	if len(b.probs) > 0 {
		return nil, b.probs
	}
	return p, nil
}

// VXLAN constants, flannel's.
const (
	VXLANDev  = "flannel.1"
	VXLANVNI  = 1
	VXLANPort = 8472
	VXLANMTU  = 1450
)

// vxlan gives every node a VTEP and routes every other node's pod slice through it:
// onlink via that node's VTEP address, with permanent neighbour and FDB entries (flannel's
// vxlan backend, without its daemon).
func (b *builder) vxlan() {
	p := b.p
	for i := range p.Nodes {
		n := &p.Nodes[i]
		slice := netip.MustParsePrefix(n.PodCIDR)
		n.VTEP = &plan.VTEP{Dev: VXLANDev, VNI: VXLANVNI, Port: VXLANPort, MTU: VXLANMTU,
			Addr: netip.PrefixFrom(slice.Addr(), 32).String(), MAC: plan.MACOf(p.Lab, "node/"+n.Name+"/"+VXLANDev)}
	}
	for _, a := range p.Nodes {
		for _, o := range p.Nodes {
			if a.Name == o.Name {
				continue
			}
			via := addrOf(o.VTEP.Addr)
			p.Routes = append(p.Routes, plan.Route{Netns: a.Netns, Dst: o.PodCIDR, Via: via, Dev: VXLANDev, Onlink: true})
			p.Neighbors = append(p.Neighbors, plan.Neighbor{Netns: a.Netns, Dev: VXLANDev, IP: via, MAC: o.VTEP.MAC})
			p.FDB = append(p.FDB, plan.FDBEntry{Netns: a.Netns, Dev: VXLANDev, MAC: o.VTEP.MAC, Dst: addrOf(o.IP)})
		}
	}
}

// placePods spreads each Deployment's replicas over the nodes it may run on: fewest pods
// of the same Deployment first, then fewest pods overall, then node order.
func (b *builder) placePods(ns func(string) string) {
	p := b.p
	total := map[string]int{}
	nextIP := map[string]int{}
	nodeByName := map[string]int{}
	for i, n := range p.Nodes {
		nodeByName[n.Name] = i
		nextIP[n.Name] = 2
	}
	for _, d := range b.deps {
		obj := fmt.Sprintf("Deployment %s/%s", d.Namespace, d.Name)
		var candidates []int
		tmpl := d.Spec.Template.Spec
		for i, n := range p.Nodes {
			if tmpl.NodeName != "" && tmpl.NodeName != n.Name {
				continue
			}
			if !labels.SelectorFromSet(tmpl.NodeSelector).Matches(labels.Set(n.Labels)) {
				continue
			}
			candidates = append(candidates, i)
		}
		dep := deploymentRecord(d.Deployment)
		if d.Source.File == dnsSource {
			dep.Pod.Agent = plan.DNSAgent
		}
		p.Deployments = append(p.Deployments, dep)
		replicas := int(*d.Spec.Replicas)
		if replicas > 0 && len(candidates) == 0 {
			b.problem(d.Source, obj, "spec.template.spec", "no node matches nodeName/nodeSelector")
			continue
		}
		mine := map[int]int{}
		for r := 1; r <= replicas; r++ {
			best := candidates[0]
			for _, c := range candidates[1:] {
				if mine[c] < mine[best] || (mine[c] == mine[best] && total[p.Nodes[c].Name] < total[p.Nodes[best].Name]) {
					best = c
				}
			}
			mine[best]++
			node := p.Nodes[best]
			total[node.Name]++
			slice := netip.MustParsePrefix(node.PodCIDR)
			host := nextIP[node.Name]
			nextIP[node.Name]++
			if host >= hostCount(slice)+1 {
				b.problem(d.Source, obj, "spec.replicas", fmt.Sprintf("node %s's pod CIDR %s is full", node.Name, slice))
				return
			}
			podName := fmt.Sprintf("%s-%d", d.Name, r)
			pod := plan.Pod{
				Name: podName, Namespace: d.Namespace, Deployment: d.Name, Netns: ns(podName),
				Node: node.Name, IP: cidr(nth(slice, host), slice), Gateway: addrOf(node.Gateway),
				HostVeth: plan.HostVethName(name(p), podName), MAC: plan.MACOf(name(p), "pod/"+podName), Labels: d.Spec.Template.Labels,
				Ports: containerPorts(d.Deployment), Probe: readiness(d.Deployment),
				Template: dep.Template, GraceSeconds: dep.Pod.GraceSeconds, PreStopSleep: dep.Pod.PreStopSleep,
				Hostname: dep.Pod.Hostname, Subdomain: dep.Pod.Subdomain,
			}
			if d.Source.File == dnsSource {
				pod.Agent = plan.DNSAgent
			}
			p.Pods = append(p.Pods, pod)
			mtu := 0
			if node.VTEP != nil {
				mtu = node.VTEP.MTU // room for the encapsulation, as flannel sets it
			}
			p.Links = append(p.Links, plan.Link{
				A: plan.LinkEnd{Netns: pod.Netns, Name: plan.PodIface, MAC: pod.MAC, MTU: mtu, Addrs: []string{pod.IP}},
				B: plan.LinkEnd{Netns: node.Netns, Name: pod.HostVeth, Master: plan.BridgeCNI, MTU: mtu},
			})
			p.Routes = append(p.Routes, plan.Route{Netns: pod.Netns, Dst: "default", Via: pod.Gateway})
			p.Neighbors = append(p.Neighbors,
				plan.Neighbor{Netns: pod.Netns, Dev: plan.PodIface, IP: pod.Gateway, MAC: node.BridgeMAC},
				plan.Neighbor{Netns: node.Netns, Dev: plan.BridgeCNI, IP: addrOf(pod.IP), MAC: pod.MAC})
		}
	}
}

func name(p *plan.Plan) string { return p.Lab }

func containerPorts(d appsv1.Deployment) []plan.ContainerPort {
	var out []plan.ContainerPort
	seen := map[string]bool{}
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, cp := range c.Ports {
			proto := string(cp.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			k := fmt.Sprintf("%d/%s", cp.ContainerPort, proto)
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, plan.ContainerPort{Name: cp.Name, Port: cp.ContainerPort, Protocol: proto})
		}
	}
	return out
}

// resolvePort finds a container port by number or name among the pod's ports.
func resolvePort(ports []plan.ContainerPort, p intstr.IntOrString, proto string) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, p.IntVal > 0
	}
	for _, cp := range ports {
		if cp.Name == p.StrVal && (proto == "" || cp.Protocol == proto) {
			return cp.Port, true
		}
	}
	return 0, false
}

func readiness(d appsv1.Deployment) plan.Probe {
	ports := containerPorts(d)
	pr := plan.Probe{Type: "tcp", Period: plan.DefaultProbePeriod.String()}
	for _, c := range d.Spec.Template.Spec.Containers {
		rp := c.ReadinessProbe
		if rp == nil {
			continue
		}
		switch {
		case rp.HTTPGet != nil:
			pr.Type, pr.Path = "http", rp.HTTPGet.Path
			if pr.Path == "" {
				pr.Path = "/"
			}
			pr.Port, _ = resolvePort(ports, rp.HTTPGet.Port, "TCP")
			return pr
		case rp.TCPSocket != nil:
			pr.Port, _ = resolvePort(ports, rp.TCPSocket.Port, "TCP")
			return pr
		}
	}
	for _, cp := range ports {
		if cp.Protocol == "TCP" {
			pr.Port = cp.Port
			return pr
		}
	}
	if len(ports) > 0 { // UDP only: the agent's /healthz is not reachable; probe the process
		pr.Type = "exec"
	}
	return pr
}

// services allocates ClusterIPs, NodePorts and LB addresses, and lists endpoints.
func (b *builder) services(svcCIDR, wan netip.Prefix, usedWan map[netip.Addr]bool) {
	p := b.p
	usedIP := map[netip.Addr]bool{}
	usedNP := map[int32]bool{}
	for _, s := range b.svcs {
		if a, err := netip.ParseAddr(s.Spec.ClusterIP); err == nil {
			usedIP[a] = true
		}
		for _, sp := range s.Spec.Ports {
			if sp.NodePort != 0 {
				usedNP[sp.NodePort] = true
			}
		}
		if s.Spec.HealthCheckNodePort != 0 {
			usedNP[s.Spec.HealthCheckNodePort] = true
		}
		if a, err := netip.ParseAddr(s.Spec.LoadBalancerIP); err == nil {
			usedWan[a] = true
		}
	}
	b.holdPrevious(usedIP, usedNP, usedWan)
	// .1 is the kubernetes Service's and .10 the cluster DNS's (kubeadm's): start after.
	nextIP := scenario.DNSServiceHost + 1
	nextNP := int32(plan.NodePortMin + 80)
	allocIP := func() (netip.Addr, bool) {
		for ; nextIP < hostCount(svcCIDR); nextIP++ {
			a := nth(svcCIDR, nextIP)
			if !usedIP[a] {
				usedIP[a] = true
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	allocNP := func() (int32, bool) {
		for n := 0; n <= plan.NodePortMax-plan.NodePortMin; n++ {
			np := nextNP
			nextNP++
			if nextNP > plan.NodePortMax {
				nextNP = plan.NodePortMin
			}
			if !usedNP[np] {
				usedNP[np] = true
				return np, true
			}
		}
		return 0, false
	}
	vip, _ := netip.ParseAddr(p.LB.VIP)
	nextLB := vip
	allocLB := func() (netip.Addr, bool) {
		for a := nextLB.Next(); wan.Contains(a) && a != lastAddr(wan); a = a.Next() {
			if !usedWan[a] {
				usedWan[a] = true
				nextLB = a
				return a, true
			}
		}
		return netip.Addr{}, false
	}
	lbs := b.s.Lab.Spec.LoadBalancer
	// Ingress VIP virtual services first.
	ingSpec := b.s.Lab.Spec.Ingress
	for _, vp := range []struct {
		name string
		port int
	}{{"ingress-http", ingSpec.HTTPPort}, {"ingress-https", ingSpec.HTTPSPort}} {
		p.LB.VIPs = append(p.LB.VIPs, plan.VirtualServ{Name: vp.name, IP: p.LB.VIP, Port: int32(vp.port), Protocol: "TCP",
			Scheduler: lbs.Scheduler, Persistence: lbs.Persistence.Duration.String(), NodePort: int32(vp.port)})
	}

	for _, s := range b.svcs {
		obj := fmt.Sprintf("Service %s/%s", s.Namespace, s.Name)
		ps := plan.Service{Namespace: s.Namespace, Name: s.Name, Type: string(s.Spec.Type), Selector: s.Spec.Selector,
			ExternalIPs: s.Spec.ExternalIPs, PublishNotReady: s.Spec.PublishNotReadyAddresses,
			TolerateUnready: scenario.TolerateUnready(&s.Service)}
		for _, r := range s.Spec.LoadBalancerSourceRanges {
			if pr, err := netip.ParsePrefix(strings.TrimSpace(r)); err == nil && pr.Addr().Is4() {
				ps.LoadBalancerSourceRanges = append(ps.LoadBalancerSourceRanges, pr.Masked().String())
			}
		}
		if s.Spec.Type == corev1.ServiceTypeExternalName {
			// A CNAME in the cluster DNS: no ClusterIP, no endpoints, no rules.
			ps.ExternalName = s.Spec.ExternalName
			for _, sp := range s.Spec.Ports {
				ps.Ports = append(ps.Ports, plan.ServicePort{Name: sp.Name, Port: sp.Port, TargetPort: sp.TargetPort.String(), Protocol: string(sp.Protocol)})
			}
			p.Services = append(p.Services, ps)
			continue
		}
		prev, hasPrev := b.previous(s)
		if s.Spec.ClusterIP == corev1.ClusterIPNone {
			ps.ClusterIP = corev1.ClusterIPNone
		} else if a, err := netip.ParseAddr(s.Spec.ClusterIP); err == nil {
			ps.ClusterIP = a.String()
		} else if hasPrev && prev.ClusterIP != "" {
			ps.ClusterIP = prev.ClusterIP
		} else if a, ok := allocIP(); ok {
			ps.ClusterIP = a.String()
		} else {
			b.problem(s.Source, obj, "spec.clusterIP", fmt.Sprintf("service CIDR %s is exhausted", svcCIDR))
		}
		external := s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer
		ps.ExternalTrafficLocal = external && s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
		ps.InternalTrafficLocal = s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal
		if s.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			ps.SessionAffinityClient = true
			ps.AffinitySeconds = 10800
			if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				ps.AffinitySeconds = *c.ClientIP.TimeoutSeconds
			}
		}
		for _, sp := range s.Spec.Ports {
			port := plan.ServicePort{Name: sp.Name, Port: sp.Port, TargetPort: sp.TargetPort.String(), Protocol: string(sp.Protocol), NodePort: sp.NodePort}
			if np := nodePortOf(prev, sp.Port, string(sp.Protocol)); external && port.NodePort == 0 && np != 0 {
				port.NodePort = np
			}
			if external && port.NodePort == 0 {
				np, ok := allocNP()
				if !ok {
					b.problem(s.Source, obj, "spec.ports", "the NodePort range is exhausted")
				}
				port.NodePort = np
			}
			ps.Ports = append(ps.Ports, port)
		}
		// Only a LoadBalancer Service gets a healthCheckNodePort (the API server allocates
		// it for LoadBalancer + Local alone): its load balancer asks each node.
		if ps.ExternalTrafficLocal && s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			ps.HealthCheckNodePort = s.Spec.HealthCheckNodePort
			if ps.HealthCheckNodePort == 0 && hasPrev {
				ps.HealthCheckNodePort = prev.HealthCheckNodePort
			}
			if ps.HealthCheckNodePort == 0 {
				ps.HealthCheckNodePort, _ = allocNP()
			}
		}
		// Endpoints: every selected pod, every port (readiness is decided live); a headless
		// Service without ports has one port-less endpoint per pod, as Kubernetes lists.
		sel := labels.SelectorFromSet(s.Spec.Selector)
		for _, pod := range p.Pods {
			if pod.Namespace != s.Namespace || len(s.Spec.Selector) == 0 || !sel.Matches(labels.Set(pod.Labels)) {
				continue
			}
			host := pod.EndpointHostname(s.Name)
			if len(s.Spec.Ports) == 0 && ps.Headless() {
				ps.Endpoints = append(ps.Endpoints, plan.Endpoint{Pod: pod.Name, Node: pod.Node, IP: addrOf(pod.IP), Hostname: host})
			}
			for _, sp := range s.Spec.Ports {
				tp, ok := resolvePort(pod.Ports, sp.TargetPort, string(sp.Protocol))
				if !ok {
					continue
				}
				ps.Endpoints = append(ps.Endpoints, plan.Endpoint{PortName: sp.Name, Pod: pod.Name, Node: pod.Node,
					IP: addrOf(pod.IP), Port: tp, Protocol: string(sp.Protocol), Hostname: host})
			}
		}
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			sched, pers := lbs.Scheduler, lbs.Persistence.Duration.String()
			if v := s.Annotations[scenario.AnnotationLBScheduler]; v != "" {
				sched = v
			}
			if v := s.Annotations[scenario.AnnotationLBPersistence]; v != "" {
				if d, err := time.ParseDuration(v); err == nil {
					pers = d.String()
				}
			}
			ps.LBScheduler, ps.LBPersistence = sched, pers
			if a, err := netip.ParseAddr(s.Spec.LoadBalancerIP); err == nil {
				ps.LoadBalancerIP = a.String()
			} else if hasPrev && prev.LoadBalancerIP != "" {
				ps.LoadBalancerIP = prev.LoadBalancerIP
			} else if a, ok := allocLB(); ok {
				ps.LoadBalancerIP = a.String()
			} else {
				b.problem(s.Source, obj, "spec.loadBalancerIP", fmt.Sprintf("no free address left in the wan %s", wan))
			}
			for _, sp := range ps.Ports {
				vs := plan.VirtualServ{Name: fmt.Sprintf("%s/%s:%s", s.Namespace, s.Name, portLabel(sp)), IP: ps.LoadBalancerIP,
					Port: sp.Port, Protocol: sp.Protocol, Scheduler: sched, Persistence: pers, NodePort: sp.NodePort,
					Service: s.Namespace + "/" + s.Name, SourceRanges: ps.LoadBalancerSourceRanges}
				if ps.ExternalTrafficLocal {
					vs.CheckPort, vs.CheckPath = ps.HealthCheckNodePort, "/healthz"
				}
				p.LB.VIPs = append(p.LB.VIPs, vs)
			}
		}
		p.Services = append(p.Services, ps)
	}
}

func portLabel(sp plan.ServicePort) string {
	if sp.Name != "" {
		return sp.Name
	}
	return strconv.Itoa(int(sp.Port))
}

// ingresses keeps the Ingress objects for the ingress agents, the TLS material, and the
// hosts files that make every Ingress host resolve to the ingress VIP in the clients.
func (b *builder) ingresses() {
	p := b.p
	hosts := map[string]bool{}
	secrets := map[string]scenario.Secret{}
	for _, s := range b.s.Secrets {
		secrets[s.Namespace+"/"+s.Name] = s
	}
	// Creation order: an Ingress of the running lab keeps its number, a new one gets one
	// more than the newest.
	created, next := map[string]int{}, 0
	if b.prev != nil {
		for _, pi := range b.prev.Ingresses {
			created[pi.Namespace+"/"+pi.Name] = pi.Created
			next = max(next, pi.Created+1)
		}
	}
	for _, in := range b.s.Ingresses {
		obj, err := json.Marshal(in.Ingress)
		if err != nil {
			b.problem(in.Source, "Ingress "+in.Namespace+"/"+in.Name, "", err.Error())
			continue
		}
		c, ok := created[in.Namespace+"/"+in.Name]
		if !ok {
			c = next
		}
		p.Ingresses = append(p.Ingresses, plan.Ingress{Namespace: in.Namespace, Name: in.Name, Object: obj, Created: c})
		if !scenario.Serves(&in.Ingress, p.Ingress.ClassName, p.Ingress.Classes, p.Ingress.IgnoreWithoutClass) {
			continue // another controller's: the lab's ingress does not serve it, no host resolves for it
		}
		for _, r := range in.Spec.Rules {
			if r.Host != "" && r.Host[0] != '*' {
				hosts[r.Host] = true
			}
		}
		for _, t := range in.Spec.TLS {
			e := plan.TLSEntry{Hosts: t.Hosts}
			if sec, ok := secrets[in.Namespace+"/"+t.SecretName]; ok && t.SecretName != "" {
				e.Secret = in.Namespace + "/" + t.SecretName
				e.Cert, e.Key = sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]
				if len(e.Cert) == 0 {
					e.Cert, e.Key = []byte(sec.StringData[corev1.TLSCertKey]), []byte(sec.StringData[corev1.TLSPrivateKeyKey])
				}
			}
			p.TLS = append(p.TLS, e)
			for _, h := range t.Hosts {
				if h != "" && h[0] != '*' {
					hosts[h] = true
				}
			}
		}
	}
	for _, sec := range b.s.Secrets {
		p.Secrets = append(p.Secrets, plan.SecretRef{Namespace: sec.Namespace, Name: sec.Name,
			Hash: hashJSON([]any{sec.Type, sec.Data, sec.StringData})})
	}
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	for _, c := range p.Clients {
		content := "127.0.0.1\tlocalhost\n::1\tlocalhost\n"
		for _, h := range names {
			content += p.LB.VIP + "\t" + h + "\n"
		}
		p.Hosts = append(p.Hosts, plan.HostsFile{Netns: c.Netns, Content: content})
	}
}

// hashJSON is a short hash of v's JSON: a Deployment's pod template, a Secret's data.
func hashJSON(v any) string {
	b, _ := json.Marshal(v)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}
