package plan

// lbProcesses returns the LB agent (issue 4): one process in the LB namespace that
// health-checks every node and reprograms the LB's iptables rules on each transition.
func lbProcesses(p *Plan) []Process {
	if len(p.LB.VIPs) == 0 {
		return nil
	}
	return []Process{{Role: "lb", Name: "lb", Netns: p.LB.Netns, Args: []string{"agent", "lb", "--lab", p.Lab}}}
}
