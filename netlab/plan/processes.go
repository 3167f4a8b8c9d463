package plan

import (
	"fmt"
	"strconv"
)

// Processes lists every agent of the lab p describes (its pods, nodes, DNS, Ingress
// ports and LB set), one function per role.
func Processes(p *Plan) []Process {
	var out []Process
	out = append(out, podProcesses(p)...)
	out = append(out, dnsProcesses(p)...)
	out = append(out, controllerProcesses(p)...)
	out = append(out, kubeProxyProcesses(p)...)
	out = append(out, ingressProcesses(p)...)
	out = append(out, lbProcesses(p)...)
	return out
}

// podProcesses: one echo agent per pod, in the pod's namespace.
func podProcesses(p *Plan) []Process {
	var out []Process
	for _, pod := range p.Pods {
		if pod.Agent != "" {
			continue // not the echo agent: dnsProcesses
		}
		args := []string{"agent", "pod", "--lab", p.Lab, "--pod", pod.Name, "--node", pod.Node, "--ip", addrOf(pod.IP)}
		for _, cp := range pod.Ports {
			args = append(args, "--port", fmt.Sprintf("%d/%s", cp.Port, cp.Protocol))
		}
		out = append(out, Process{Role: "pod", Name: pod.Name, Netns: pod.Netns, Args: args})
	}
	return out
}

// controllerProcesses returns the endpoints controller: one per lab, in the root
// namespace (it only probes pods from inside their nodes' namespaces and writes files).
func controllerProcesses(p *Plan) []Process {
	return []Process{{Role: "controller", Name: "controller", Args: []string{"agent", "controller", "--lab", p.Lab}}}
}

// kubeProxyProcesses returns the per-node kube-proxy agents: one in each node's
// namespace; it renders and applies that node's Service rules and serves the
// healthCheckNodePorts.
func kubeProxyProcesses(p *Plan) []Process {
	var out []Process
	for _, n := range p.Nodes {
		out = append(out, Process{Role: "kube-proxy", Name: n.Name, Netns: n.Netns,
			Args: []string{"agent", "kube-proxy", "--lab", p.Lab, "--node", n.Name}})
	}
	return out
}

// ingressProcesses returns the per-node ingress agents: one in each node's
// namespace, listening on the node's HTTP and HTTPS ports (the real-server ports of the
// LB's ingress virtual services), reading the Ingresses, Services and TLS material from
// plan.json and re-reading it on SIGHUP.
func ingressProcesses(p *Plan) []Process {
	var ports []string
	for _, v := range p.LB.VIPs {
		switch v.Name {
		case "ingress-http":
			ports = append(ports, "--http-port", strconv.Itoa(int(v.NodePort)))
		case "ingress-https":
			ports = append(ports, "--https-port", strconv.Itoa(int(v.NodePort)))
		}
	}
	if p.Ingress.ClassName != "" {
		ports = append(ports, "--class", p.Ingress.ClassName)
	}
	if p.Ingress.MetricsPort != 0 {
		ports = append(ports, "--metrics-port", strconv.Itoa(p.Ingress.MetricsPort))
	}
	if w := p.Ingress.Workers; w != "" && w != "1" {
		ports = append(ports, "--workers", w)
	}
	var out []Process
	for _, n := range p.Nodes {
		args := append([]string{"agent", "ingress", "--lab", p.Lab, "--node", n.Name}, ports...)
		out = append(out, Process{Role: "ingress", Name: n.Name, Netns: n.Netns, Args: args})
	}
	return out
}

// lbProcesses returns the LB agent: one process in the LB namespace that
// health-checks every node and reprograms the LB's iptables rules on each transition.
func lbProcesses(p *Plan) []Process {
	if len(p.LB.VIPs) == 0 {
		return nil
	}
	return []Process{{Role: "lb", Name: "lb", Netns: p.LB.Netns, Args: []string{"agent", "lb", "--lab", p.Lab}}}
}
