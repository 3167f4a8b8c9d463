package lab

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// Check is one verdict of `netlab check`.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// Scenario: one of the scenario's own checks (Lab.spec.checks), after the lab's.
	Scenario bool `json:"scenario,omitempty"`
	// Seen is what a failed scenario check got instead of what it expected.
	Seen string `json:"seen,omitempty"`
	// Drop is where a request died, when one did.
	Drop *TraceDrop `json:"drop,omitempty"`
}

// CheckLab verifies a running lab from the wires up: namespaces, agents, pods, kube-proxy
// syncs, LB health, the host's own network untouched, and a request through every entry
// point (each Ingress host through the VIP, each LoadBalancer Service's VIP).
func CheckLab(ctx context.Context, labName string) ([]Check, error) {
	p, err := LoadPlan(labName)
	if err != nil {
		return nil, err
	}
	var out []Check
	add := func(name string, ok bool, format string, args ...any) {
		out = append(out, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}

	want := p.Namespaces()
	have, _ := kernel.ListNetns(plan.NetnsName(labName, ""))
	missing := diff(want, have)
	add("namespaces", len(missing) == 0, "%d of %d present%s", len(want)-len(missing), len(want), listed("; missing: ", missing))

	pids := kernel.PIDsIn(have)
	var down []string
	procs := append(append([]plan.Process(nil), p.Processes...), supervise.SupervisorProcess(labName))
	for _, pr := range procs {
		if pr.Netns == "" {
			if rec, err := supervise.ReadRecord(rundir.ForLab(labName), pr.Role, pr.Name); err != nil || !rec.Alive() {
				down = append(down, pr.Role+" "+pr.Name)
			}
			continue
		}
		if !agentRunning(pids[pr.Netns], pr.Args[1]) {
			down = append(down, pr.Role+" "+pr.Name)
		}
	}
	add("agents", len(down) == 0, "%d of %d running%s", len(procs)-len(down), len(procs), listed("; not running: ", down))

	st, err := GetStatus(ctx, labName)
	if err != nil {
		return nil, err
	}
	var notReady []string
	for _, ps := range st.Pods {
		if !ps.Ready {
			notReady = append(notReady, ps.Name+" ("+ps.Reason+")")
		}
	}
	add("pods ready", len(notReady) == 0, "%d of %d%s", len(st.Pods)-len(notReady), len(st.Pods), listed("; not ready: ", notReady))
	var nodesDown []string
	for _, n := range st.Nodes {
		if !n.Ready {
			nodesDown = append(nodesDown, n.Name+" ("+n.Reason+")")
		}
	}
	add("nodes", len(nodesDown) == 0, "%d of %d up%s", len(st.Nodes)-len(nodesDown), len(st.Nodes), listed("; down: ", nodesDown))

	// Every namespace's routes as the plan has them (a link taken down by hand loses its).
	h := kernel.NewHandles()
	var lost []string
	for _, ns := range p.Namespaces() {
		for _, m := range missingRoutes(h, p, ns) {
			lost = append(lost, strings.TrimPrefix(ns, plan.NetnsName(labName, ""))+": "+m)
		}
	}
	h.Close()
	add("routes", len(lost) == 0, "%d planned routes present%s", len(p.Routes)-len(lost), listed("; missing: ", lost))

	if ef, err := rundir.ForLab(labName).ReadEndpoints(); err == nil {
		var stale []string
		for _, n := range p.Nodes {
			ss, err := rundir.ForLab(labName).ReadSyncStatus(n.Name)
			switch {
			case err != nil:
				stale = append(stale, n.Name+" (no sync yet)")
			case ss.Error != "":
				stale = append(stale, n.Name+" ("+ss.Error+")")
			case ss.Generation < ef.Generation:
				stale = append(stale, fmt.Sprintf("%s (generation %d of %d)", n.Name, ss.Generation, ef.Generation))
			}
		}
		add("kube-proxy synced", len(stale) == 0, "endpoints generation %d on %d nodes%s", ef.Generation, len(p.Nodes)-len(stale), listed("; behind: ", stale))
	} else if len(p.Services) > 0 {
		add("kube-proxy synced", false, "no endpoints file: %v", err)
	}

	if p.NFTables() {
		bad := checkNFTTable(p)
		add("kube-proxy nftables table", len(bad) == 0, "table ip kube-proxy with its %d base chains, no iptables KUBE- chains, on %d nodes%s",
			len(nftables.BaseChains()), len(p.Nodes), listed("; problems: ", bad))
	} else {
		// kube-proxy's jumps from the built-in chains, checked rule by rule in every node.
		var jumps []kernel.Rule
		for _, j := range kubeproxy.JumpRules() {
			jumps = append(jumps, kernel.Rule{Table: j.Table, Chain: j.Chain, Args: j.Args})
		}
		var noJump []string
		for _, n := range p.Nodes {
			have, err := kernel.RulesExist(n.Netns, jumps)
			if err != nil {
				noJump = append(noJump, n.Name+" ("+err.Error()+")")
				continue
			}
			for i, ok := range have {
				if !ok {
					noJump = append(noJump, fmt.Sprintf("%s %s/%s -j %s", n.Name, jumps[i].Table, jumps[i].Chain, kubeproxy.JumpRules()[i].Target))
				}
			}
		}
		add("kube-proxy jump rules", len(noJump) == 0, "%d per node in the built-in chains%s", len(jumps), listed("; missing: ", noJump))
	}

	if ls, err := rundir.ForLab(labName).ReadLBState(); err == nil {
		healthy, total := 0, 0
		for _, vs := range ls.Services {
			for _, b := range vs.Backends {
				total++
				if b.Healthy {
					healthy++
				}
			}
		}
		fresh := time.Since(ls.Updated) < 5*time.Second
		add("load balancer", fresh && healthy > 0, "%d of %d real servers healthy, state %s old", healthy, total, time.Since(ls.Updated).Round(time.Millisecond))
	}

	trace := hostTraces(p)
	add("host network untouched", len(trace) == 0, "the root namespace has none of the lab's links, addresses, routes or rules%s", listed("; found: ", trace))

	// End to end, from the first client.
	if len(p.Clients) > 0 {
		from := p.Clients[0].Name
		for _, host := range IngressHosts(p) {
			url := "http://" + host + "/"
			tr, err := TraceRequest(ctx, labName, from, url)
			switch {
			case err != nil:
				add("request "+url, false, "%v", err)
			default:
				add("request "+url, tr.Status < 500, "%d via %s", tr.Status, hopsOf(tr))
			}
		}
		for _, vs := range p.LB.VIPs {
			if vs.Service == "" || vs.Protocol != "TCP" {
				continue
			}
			url := fmt.Sprintf("http://%s:%d/", vs.IP, vs.Port)
			tr, err := TraceRequest(ctx, labName, from, url)
			if err != nil {
				add("request "+url, false, "%v", err)
				continue
			}
			add("request "+url, tr.Status == 200, "%d via %s", tr.Status, hopsOf(tr))
		}
	}
	return out, nil
}

// IngressHosts lists the Ingress hosts that resolve to the ingress VIP in the clients.
// Every client has the same hosts file, so the first one says it all.
func IngressHosts(p *plan.Plan) []string {
	if len(p.Hosts) == 0 {
		return nil
	}
	var hosts []string
	for _, line := range strings.Split(p.Hosts[0].Content, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == p.LB.VIP {
			hosts = append(hosts, f[1:]...)
		}
	}
	return hosts
}

func hopsOf(tr *Trace) string {
	var steps []string
	for _, h := range tr.Hops {
		steps = append(steps, h.Component)
	}
	return strings.Join(steps, " → ")
}

// hostTraces looks for the lab in the root namespace: its pod-side veths, its exact
// addresses and CIDRs, and iptables rules naming its addresses or netlab's chains. It
// names what it finds; a host with its own Docker or Kubernetes is no false alarm.
func hostTraces(p *plan.Plan) []string {
	var found []string
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, pod := range p.Pods {
		if strings.Contains(string(links), " "+pod.HostVeth+"@") || strings.Contains(string(links), " "+pod.HostVeth+":") {
			found = append(found, "link "+pod.HostVeth)
		}
	}
	addrs, _ := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	var mine []string
	mine = append(mine, p.LB.WanIP, p.LB.FabricIP)
	for _, n := range p.Nodes {
		mine = append(mine, n.IP, n.Gateway)
	}
	for _, c := range p.Clients {
		mine = append(mine, c.IP)
	}
	for _, a := range mine {
		if strings.Contains(string(addrs), " "+a+" ") {
			found = append(found, "address "+a)
		}
	}
	routes, _ := exec.Command("ip", "-4", "route", "show", "table", "all").Output()
	for _, line := range strings.Split(string(routes), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, n := range p.Nodes {
			if f[0] == n.PodCIDR {
				found = append(found, "route "+line)
			}
		}
	}
	rules, _ := exec.Command("iptables-save").Output()
	for _, line := range strings.Split(string(rules), "\n") {
		if strings.Contains(line, "NETLAB-") || (p.LB.VIP != "" && strings.Contains(line, p.LB.VIP+"/32")) {
			found = append(found, "iptables "+line)
			continue
		}
		for _, s := range p.Services {
			if s.ClusterIP != "" && strings.Contains(line, s.ClusterIP+"/32") {
				found = append(found, "iptables "+line)
				break
			}
		}
	}
	return found
}

func diff(want, have []string) []string {
	h := map[string]bool{}
	for _, x := range have {
		h[x] = true
	}
	var out []string
	for _, w := range want {
		if !h[w] {
			out = append(out, w)
		}
	}
	return out
}

func listed(prefix string, xs []string) string {
	if len(xs) == 0 {
		return ""
	}
	return prefix + strings.Join(xs, ", ")
}
