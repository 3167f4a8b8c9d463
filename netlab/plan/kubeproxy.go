package plan

import (
	"fmt"
	"strings"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

// ServicePorts returns the plan's Services as kube-proxy service ports, one per Service
// port, each with the endpoints of its selected pods. ready says whether a pod is ready;
// nil means every pod is (what `netlab plan` shows). Endpoints of terminating pods are
// not ready, serving while ready says their pod answers, and terminating.
func (p *Plan) ServicePorts(ready func(pod string) bool) []kubeproxy.ServicePort {
	var out []kubeproxy.ServicePort
	leaving := map[string]bool{}
	for _, pod := range p.Pods {
		if pod.Terminating {
			leaving[pod.Name] = true
		}
	}
	for _, s := range p.Services {
		if s.Headless() || s.ExternalName != "" {
			continue // kube-proxy skips Services without a ClusterIP: DNS alone serves them
		}
		for _, sp := range s.Ports {
			kp := kubeproxy.ServicePort{
				Namespace: s.Namespace, Name: s.Name, PortName: sp.Name, Protocol: sp.Protocol,
				ClusterIP: s.ClusterIP, Port: sp.Port, NodePort: sp.NodePort,
				ExternalIPs:              s.ExternalIPs,
				LoadBalancerSourceRanges: s.LoadBalancerSourceRanges,
				ExternalLocal:            s.ExternalTrafficLocal, InternalLocal: s.InternalTrafficLocal,
				HealthCheckNodePort: s.HealthCheckNodePort,
				AffinityClientIP:    s.SessionAffinityClient, AffinitySeconds: s.AffinitySeconds,
				Endpoints: []kubeproxy.Endpoint{},
			}
			if s.LoadBalancerIP != "" {
				kp.LoadBalancerIPs = []string{s.LoadBalancerIP}
			}
			for _, ep := range s.Endpoints {
				if ep.PortName != sp.Name || !strings.EqualFold(ep.Protocol, sp.Protocol) {
					continue
				}
				e := kubeproxy.Endpoint{Pod: ep.Pod, Node: ep.Node, IP: ep.IP, Port: ep.Port,
					Ready: ready == nil || s.PublishNotReady || ready(ep.Pod)}
				if leaving[ep.Pod] {
					// A leaving pod is not ready at once; it serves while it answers.
					e.Ready, e.Serving, e.Terminating = false, e.Ready, true
				}
				kp.Endpoints = append(kp.Endpoints, e)
			}
			out = append(out, kp)
		}
	}
	return out
}

// ProxyNode returns what kube-proxy needs to know about a node of the plan.
func (p *Plan) ProxyNode(name string) (kubeproxy.Node, error) {
	for _, n := range p.Nodes {
		if n.Name == name {
			// The iptables mode's nfacct counters: the agent makes them in the node's
			// namespace (and writes the rules without them if the kernel cannot).
			return kubeproxy.Node{Name: n.Name, IP: addrOf(n.IP), ClusterCIDR: p.Network.PodCIDR,
				ServiceCIDR: p.Network.ServiceCIDR, NFAcct: !p.NFTables()}, nil
		}
	}
	return kubeproxy.Node{}, fmt.Errorf("lab %s has no node %q", p.Lab, name)
}

// NodeRules returns what kube-proxy writes on node when every pod is ready, in the lab's
// mode: iptables-restore input, or in nftables mode the table ip kube-proxy as nft
// commands (kube-proxy's dump). It is what `netlab plan` prints.
func (p *Plan) NodeRules(node string) ([]byte, error) {
	n, err := p.ProxyNode(node)
	if err != nil {
		return nil, err
	}
	if p.NFTables() {
		return nftables.Dump(nftables.Render(n, p.ServicePorts(nil))), nil
	}
	return kubeproxy.Render(n, p.ServicePorts(nil), nil), nil
}
