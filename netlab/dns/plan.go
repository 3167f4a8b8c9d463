package dns

import (
	"sort"

	"github.com/netlabdev/netlab/netlab/plan"
)

// FromPlan is the table's configuration for a lab: its Services (the cluster DNS's own
// among them), their endpoints with ready saying which pods are ready (nil: none is),
// and every Kubernetes namespace of the lab (with those every cluster has).
func FromPlan(p *plan.Plan, ready func(pod string) bool) Config {
	var c Config
	if p.DNS != nil {
		c.Domain, c.ServerIP = p.DNS.ClusterDomain, p.DNS.ServiceIP
	}
	nss := map[string]bool{"default": true, "kube-system": true, "kube-public": true, "kube-node-lease": true}
	for _, pod := range p.Pods {
		nss[pod.Namespace] = true
	}
	for _, s := range p.Services {
		nss[s.Namespace] = true
		svc := Service{Namespace: s.Namespace, Name: s.Name, ClusterIP: s.ClusterIP, ExternalName: s.ExternalName,
			PublishNotReady: s.PublishNotReady || s.TolerateUnready}
		for _, sp := range s.Ports {
			svc.Ports = append(svc.Ports, Port{Name: sp.Name, Port: sp.Port, Protocol: sp.Protocol})
		}
		byPod := map[string]int{}
		for _, ep := range s.Endpoints {
			i, ok := byPod[ep.Pod]
			if !ok {
				i = len(svc.Endpoints)
				byPod[ep.Pod] = i
				svc.Endpoints = append(svc.Endpoints, Endpoint{IP: ep.IP, Hostname: ep.Hostname, Ready: ready != nil && ready(ep.Pod)})
			}
			if ep.Port != 0 { // a port-less endpoint: a headless Service without ports
				svc.Endpoints[i].Ports = append(svc.Endpoints[i].Ports, Port{Name: ep.PortName, Port: ep.Port, Protocol: ep.Protocol})
			}
		}
		c.Services = append(c.Services, svc)
	}
	for ns := range nss {
		c.Namespaces = append(c.Namespaces, ns)
	}
	sort.Strings(c.Namespaces)
	return c
}
