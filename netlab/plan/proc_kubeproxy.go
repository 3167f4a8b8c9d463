package plan

// kubeProxyProcesses returns the per-node kube-proxy agents (issue 3): one in each node's
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
