package plan

import "fmt"

// processes lists every agent of the lab. Each role has its own function in its own file
// (proc_<role>.go) so that the role's owner can change it alone.
func (b *builder) processes() {
	p := b.p
	p.Processes = append(p.Processes, podProcesses(p)...)
	p.Processes = append(p.Processes, dnsProcesses(p)...)
	p.Processes = append(p.Processes, controllerProcesses(p)...)
	p.Processes = append(p.Processes, kubeProxyProcesses(p)...)
	p.Processes = append(p.Processes, ingressProcesses(p)...)
	p.Processes = append(p.Processes, lbProcesses(p)...)
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
