package agent

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/plan"
)

// WanFilterOf is what the plan lets the wan reach behind the LB.
func WanFilterOf(p *plan.Plan) lb.WanFilter {
	f := lb.WanFilter{WanIface: plan.LBWanIface, NodeCIDR: p.Network.NodeCIDR, ExposeNodes: p.LB.ExposeNodes,
		NodePortRange: fmt.Sprintf("%d:%d", plan.NodePortMin, plan.NodePortMax)}
	seen := map[string]bool{}
	for _, v := range p.LB.VIPs {
		if !seen[v.IP] {
			seen[v.IP] = true
			f.VIPs = append(f.VIPs, v.IP)
		}
	}
	for _, v := range p.LB.VIPs {
		if v.CheckPort != 0 && !slices.Contains(f.HealthPorts, int(v.CheckPort)) {
			f.HealthPorts = append(f.HealthPorts, int(v.CheckPort))
		}
	}
	for _, port := range []int{p.Ingress.HTTPPort, p.Ingress.HTTPSPort} {
		if port > 0 {
			f.NodeTCPPorts = append(f.NodeTCPPorts, port)
		}
	}
	if p.Network.ClientRoutesToPods {
		f.PodCIDR = p.Network.PodCIDR
	}
	return f
}

// wanFilterInput is the iptables-restore input of the wan filter chain and, when missing
// from saved (the namespace's rules as read at start: only this input writes the jump),
// of the jump to it at the top of FORWARD (one COMMIT: chain and jump go in together); the
// LB gives it to the same restore as its rules at start.
func (a *lbAgent) wanFilterInput(saved []byte) []byte {
	f := WanFilterOf(a.cfg.Plan)
	input := f.Render()
	if !bytes.Contains(saved, []byte("-A FORWARD -i "+f.WanIface+" -m comment --comment \"netlab wan filter\" -j "+lb.ChainWanFilter)) {
		args := f.JumpArgs()
		for i, s := range args {
			if strings.Contains(s, " ") {
				args[i] = strconv.Quote(s)
			}
		}
		input = bytes.Replace(input, []byte("COMMIT\n"), []byte("-I FORWARD 1 "+strings.Join(args, " ")+"\nCOMMIT\n"), 1)
	}
	return input
}
