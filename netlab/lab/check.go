package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/plan"
)

// Check is one verdict of `netlab check`.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
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
	add("namespaces", len(missing) == 0, "%d of %d present%s", len(want)-len(missing), len(want), listed(" missing: ", missing))

	pids := kernel.PIDsIn(have)
	var down []string
	for _, pr := range p.Processes {
		if pr.Netns == "" {
			if len(agentsOutside(labName)) == 0 {
				down = append(down, pr.Role+" "+pr.Name)
			}
			continue
		}
		found := false
		for _, pid := range pids[pr.Netns] {
			if argv := kernel.Cmdline(pid); len(argv) > 2 && argv[1] == "agent" && argv[2] == pr.Args[1] {
				found = true
			}
		}
		if !found {
			down = append(down, pr.Role+" "+pr.Name)
		}
	}
	add("agents", len(down) == 0, "%d of %d running%s", len(p.Processes)-len(down), len(p.Processes), listed(" not running: ", down))

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
	add("pods ready", len(notReady) == 0, "%d of %d%s", len(st.Pods)-len(notReady), len(st.Pods), listed(" not ready: ", notReady))
	var nodesDown []string
	for _, n := range st.Nodes {
		if !n.Ready {
			nodesDown = append(nodesDown, n.Name+" ("+n.Reason+")")
		}
	}
	add("nodes", len(nodesDown) == 0, "%d of %d up%s", len(st.Nodes)-len(nodesDown), len(st.Nodes), listed(" down: ", nodesDown))

	if ef, err := ReadEndpoints(EndpointsPath(labName)); err == nil {
		var stale []string
		for _, n := range p.Nodes {
			var ss kubeproxy.SyncStatus
			b, err := os.ReadFile(filepath.Join(Dir(labName), "kube-proxy", n.Name+".json"))
			switch {
			case err != nil || json.Unmarshal(b, &ss) != nil:
				stale = append(stale, n.Name+" (no sync yet)")
			case ss.Error != "":
				stale = append(stale, n.Name+" ("+ss.Error+")")
			case ss.Generation < ef.Generation:
				stale = append(stale, fmt.Sprintf("%s (generation %d of %d)", n.Name, ss.Generation, ef.Generation))
			}
		}
		add("kube-proxy synced", len(stale) == 0, "endpoints generation %d on %d nodes%s", ef.Generation, len(p.Nodes)-len(stale), listed(" behind: ", stale))
	} else if len(p.Services) > 0 {
		add("kube-proxy synced", false, "no endpoints file: %v", err)
	}

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
	add("kube-proxy jump rules", len(noJump) == 0, "%d per node in the built-in chains%s", len(jumps), listed(" missing: ", noJump))

	if ls, err := lb.LoadState(filepath.Join(Dir(labName), lb.StateFile)); err == nil {
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

	add("host network untouched", hostClean(), "no KUBE-/NETLAB rules and no lab veth in the root namespace")

	// End to end, from the first client.
	if len(p.Clients) > 0 {
		from := p.Clients[0].Name
		for _, host := range ingressHosts(p) {
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

func ingressHosts(p *plan.Plan) []string {
	for _, hf := range p.Hosts {
		var hosts []string
		for _, line := range strings.Split(hf.Content, "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == p.LB.VIP {
				hosts = append(hosts, f[1:]...)
			}
		}
		return hosts
	}
	return nil
}

func hopsOf(tr *Trace) string {
	var steps []string
	for _, h := range tr.Hops {
		steps = append(steps, h.Step)
	}
	return strings.Join(steps, " → ")
}

func hostClean() bool {
	out, err := exec.Command("iptables-save").Output()
	if err == nil && (strings.Contains(string(out), "KUBE-") || strings.Contains(string(out), "NETLAB-")) {
		return false
	}
	links, err := exec.Command("ip", "-o", "link", "show").Output()
	return err != nil || !strings.Contains(string(links), "veth")
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
