package plan

// controllerProcesses returns the endpoints controller (issue 3): one per lab, in the root
// namespace (it only probes pods from inside their nodes' namespaces and writes files).
func controllerProcesses(p *Plan) []Process {
	return []Process{{Role: "controller", Name: "controller", Args: []string{"agent", "controller", "--lab", p.Lab}}}
}
