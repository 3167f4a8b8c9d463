package plan

import "strconv"

// ingressProcesses returns the per-node ingress agents (issue 5): one in each node's
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
	var out []Process
	for _, n := range p.Nodes {
		args := append([]string{"agent", "ingress", "--lab", p.Lab, "--node", n.Name}, ports...)
		out = append(out, Process{Role: "ingress", Name: n.Name, Netns: n.Netns, Args: args})
	}
	return out
}
