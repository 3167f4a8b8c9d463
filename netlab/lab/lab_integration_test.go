// Integration tests of the lab fabric: real namespaces, real packets. Run as root.
//
// Address plan (the embedded default scenario, under a unique lab name per test):
//
//	wan 203.0.113.0/24      client .2, lb eth0 .1, ingress VIP .100
//	fabric 172.18.0.0/24    lb eth1 .1 (the nodes' gateway), node-1 .11, node-2 .12
//	pods 10.244.0.0/16      node-1 10.244.1.0/24: web-1 .2, web-3 .3, api-2 .4
//	                        node-2 10.244.2.0/24: web-2 .2, api-1 .3
package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

func TestMain(m *testing.M) { labtest.Main(m) }

func TestIntegrationPodToPod(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "fab", "")
	pods := labtest.EchoPods(p)
	if len(pods) != 5 || len(p.Pods) != 7 {
		t.Fatalf("default lab has %d pods, %d of them echo pods; want 7 and 5 (and 2 DNS pods)", len(p.Pods), len(pods))
	}
	crossNode := 0
	for _, from := range pods {
		for _, to := range pods {
			if from.Name == to.Name {
				continue
			}
			url := fmt.Sprintf("http://%s:8080/from/%s", plan.Addr(to.IP), from.Name)
			e, _, err := labtest.GetEcho(from.Netns, url)
			if err != nil {
				t.Errorf("%s -> %s: %v", from.Name, to.Name, err)
				continue
			}
			if e.Pod != to.Name || e.Node != to.Node || e.ClientIP != plan.Addr(from.IP) || e.Path != "/from/"+from.Name {
				t.Errorf("%s -> %s: echo %+v, want pod %s on %s seeing client %s", from.Name, to.Name, e, to.Name, to.Node, plan.Addr(from.IP))
			}
			if from.Node != to.Node {
				crossNode++
			}
		}
	}
	if crossNode == 0 {
		t.Error("no cross-node pair was tested")
	}
	// Node to pod, on both nodes, across nodes too.
	for _, n := range p.Nodes {
		for _, to := range pods {
			e, _, err := labtest.GetEcho(n.Netns, fmt.Sprintf("http://%s:8080/", plan.Addr(to.IP)))
			if err != nil {
				t.Errorf("node %s -> %s: %v", n.Name, to.Name, err)
				continue
			}
			if e.Pod != to.Name {
				t.Errorf("node %s -> %s: answered by %s", n.Name, to.Name, e.Pod)
			}
			if to.Node == n.Name && e.ClientIP != plan.Addr(n.Gateway) {
				t.Errorf("node %s -> local pod %s: client %s, want the node's cni0 %s", n.Name, to.Name, e.ClientIP, plan.Addr(n.Gateway))
			}
			if to.Node != n.Name && e.ClientIP != plan.Addr(n.IP) {
				t.Errorf("node %s -> remote pod %s: client %s, want the node's eth0 %s", n.Name, to.Name, e.ClientIP, plan.Addr(n.IP))
			}
		}
	}
	// Pods and their node know each other by permanent neighbour entries: the kernel's
	// neighbour table is shared with the host and has a global limit.
	for _, pod := range p.Pods[:2] {
		out, err := labtest.Exec(pod.Netns, "ip", "neigh", "show", plan.Addr(pod.Gateway))
		if err != nil || !strings.Contains(out, "PERMANENT") {
			t.Errorf("pod %s: gateway neighbour %q %v", pod.Name, out, err)
		}
		var nodeNS string
		for _, n := range p.Nodes {
			if n.Name == pod.Node {
				nodeNS = n.Netns
			}
		}
		out, err = labtest.Exec(nodeNS, "ip", "neigh", "show", plan.Addr(pod.IP))
		if err != nil || !strings.Contains(out, pod.MAC+" PERMANENT") {
			t.Errorf("node %s: neighbour for %s: %q %v", pod.Node, pod.Name, out, err)
		}
	}
	// The client has no route to pods: the connection fails at once.
	c := p.Clients[0]
	_, err := kernel.DialIn(c.Netns, "tcp", plan.Addr(p.Pods[0].IP)+":8080", time.Second)
	if err == nil || !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("client -> pod IP: err %v, want network unreachable", err)
	}
	// ...but it reaches the node network through the LB.
	if out, err := labtest.Exec(c.Netns, "ip", "route", "get", plan.Addr(p.Nodes[0].IP)); err != nil || !strings.Contains(out, "via "+plan.Addr(p.LB.WanIP)) {
		t.Errorf("client route to node: %q %v", out, err)
	}
}

func TestIntegrationStatusIsLive(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "live", "")
	st, err := lab.GetStatus(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range st.Pods {
		if !ps.Ready {
			t.Errorf("pod %s not ready after up: %s", ps.Name, ps.Reason)
		}
	}
	for _, n := range st.Nodes {
		if !n.Ready || n.Namespace != plan.NetnsName(p.Lab, n.Name) {
			t.Errorf("node %+v", n)
		}
	}
	for _, n := range st.Nodes {
		if !n.Agents["kube-proxy"] || !n.Agents["ingress"] || n.KubeProxy == nil || n.KubeProxy.Error != "" {
			t.Errorf("node %s agents %v kube-proxy %+v", n.Name, n.Agents, n.KubeProxy)
		}
	}
	// A node whose ingress agent died is not ready, and says why. (Marked stopped, so the
	// supervisor leaves it down, as it does a pod after `pod kill`.)
	n2 := p.Nodes[1]
	if err := os.WriteFile(rundir.ForLab(p.Lab).StoppedMark("ingress", n2.Name), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, pid := range kernel.PIDsIn([]string{n2.Netns})[n2.Netns] {
		if argv := kernel.Cmdline(pid); len(argv) > 2 && argv[2] == "ingress" {
			kernel.Terminate([]int{pid}, time.Second)
		}
	}
	st, err = lab.GetStatus(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.Nodes[1]; n.Ready || n.Agents["ingress"] || n.Reason != "ingress not running" {
		t.Errorf("node %s after its ingress died: ready=%v agents=%v reason=%q", n.Name, n.Ready, n.Agents, n.Reason)
	}
	victim := p.Pods[1].Name
	if n, err := lab.KillPod(p.Lab, victim); err != nil || n != 1 {
		t.Fatalf("kill %s: %d processes, %v", victim, n, err)
	}
	st, err = lab.GetStatus(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range st.Pods {
		if ps.Ready == (ps.Name == victim) {
			t.Errorf("after killing %s: pod %s ready=%v (%s)", victim, ps.Name, ps.Ready, ps.Reason)
		}
	}
	// The Service's endpoints follow within the controller's detection window.
	if !waitEndpoint(t, p.Lab, victim, false) {
		t.Errorf("services still list %s as a ready endpoint 15 s after it was killed", victim)
	}
	if err := lab.StartPod(p.Lab, victim, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	st, _ = lab.GetStatus(context.Background(), p.Lab)
	for _, ps := range st.Pods {
		if !ps.Ready {
			t.Errorf("after start: pod %s not ready: %s", ps.Name, ps.Reason)
		}
	}
	if !waitEndpoint(t, p.Lab, victim, true) {
		t.Errorf("%s is not a ready endpoint again 15 s after it started", victim)
	}
}

// waitEndpoint polls status until every endpoint of pod has readiness ready, for 15 s
// (the controller reacts within half a second; the bound is for a loaded machine).
func waitEndpoint(t *testing.T, labName, pod string, ready bool) bool {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := lab.GetStatus(context.Background(), labName)
		if err != nil {
			t.Fatal(err)
		}
		ok, seen := true, false
		for _, s := range st.Services {
			for _, e := range s.Endpoints {
				if e.Pod == pod {
					seen = true
					ok = ok && e.Ready == ready
				}
			}
		}
		if !seen {
			t.Fatalf("pod %s is no Service's endpoint", pod)
		}
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lifetimes are the parts of `ip` output that count down by themselves (DHCP and router
// advertisement lifetimes), not changes.
var lifetimes = regexp.MustCompile(`(valid_lft|preferred_lft|expires) \S+`)

// rootSnapshot is what must not change in the root namespace.
func rootSnapshot(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	// Neighbour entries come and go by themselves (the host's own traffic), and address
	// and route lifetimes count down: the snapshot leaves both out.
	for _, argv := range [][]string{
		{"ip", "-d", "link", "show"}, {"ip", "addr", "show"}, {"ip", "route", "show", "table", "all"},
		{"ip", "rule", "show"},
	} {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v", argv, err)
		}
		out = lifetimes.ReplaceAll(out, []byte("$1 _"))
		fmt.Fprintf(&b, "## %s\n%s", strings.Join(argv, " "), out)
	}
	for _, table := range []string{"filter", "nat", "mangle", "raw"} {
		out, _ := exec.Command("iptables-save", "-t", table).CombinedOutput()
		var keep []string
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "#") { // the generated-at comments carry a time
				keep = append(keep, l)
			}
		}
		fmt.Fprintf(&b, "## iptables %s\n%s\n", table, strings.Join(keep, "\n"))
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter",
		"net/bridge/bridge-nf-call-iptables", "net/ipv4/conf/all/route_localnet", "net/netfilter/nf_conntrack_tcp_loose"} {
		v, _ := os.ReadFile(filepath.Join("/proc/sys", k))
		fmt.Fprintf(&b, "%s=%s", k, v)
	}
	return b.String()
}

func TestIntegrationRootNamespaceUnchanged(t *testing.T) {
	labtest.RequireRoot(t)
	before := rootSnapshot(t)
	p := labtest.Plan(t, "root", "")
	if err := lab.Up(context.Background(), p, lab.Options{Binary: labtest.Binary(t)}); err != nil {
		lab.Down(p.Lab, nil)
		t.Fatal(err)
	}
	during := rootSnapshot(t)
	if err := lab.Down(p.Lab, nil); err != nil {
		t.Fatal(err)
	}
	after := rootSnapshot(t)
	if during != before {
		t.Errorf("the root namespace changed while the lab was up:\n%s", diffLines(before, during))
	}
	if after != before {
		t.Errorf("the root namespace changed after up+down:\n%s", diffLines(before, after))
	}
	assertGone(t, p.Lab)
}

func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	seen := map[string]int{}
	for _, l := range al {
		seen[l]++
	}
	var out []string
	for _, l := range bl {
		if seen[l] > 0 {
			seen[l]--
			continue
		}
		out = append(out, "+ "+l)
	}
	for l, n := range seen {
		for ; n > 0; n-- {
			out = append(out, "- "+l)
		}
	}
	return strings.Join(out, "\n")
}

// assertGone checks that nothing of a lab is left: namespace, process, file.
func assertGone(t *testing.T, name string) {
	t.Helper()
	if left, _ := kernel.ListNetns(plan.NetnsName(name, "")); len(left) > 0 {
		t.Errorf("namespaces left: %v", left)
	}
	if _, err := os.Stat(rundir.ForLab(name).Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind (%v)", rundir.ForLab(name).Path(), err)
	}
	if m, _ := filepath.Glob(filepath.Join(rundir.EtcNetns, plan.NetnsName(name, "")+"*")); len(m) > 0 {
		t.Errorf("hosts files left: %v", m)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		if lab.IsAgentOf(kernel.Cmdline(pid), name) && kernel.Alive(pid) {
			t.Errorf("agent process left: %d %v", pid, kernel.Cmdline(pid))
		}
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mi), plan.NetnsName(name, "")) {
		t.Errorf("namespace mounts left in /proc/self/mountinfo for %s", name)
	}
	out, _ := exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if strings.Contains(string(out), "veth") {
		t.Errorf("veth in the root namespace:\n%s", out)
	}
}

func TestIntegrationKilledUpThenDown(t *testing.T) {
	labtest.RequireRoot(t)
	up := func(name string) *exec.Cmd {
		cmd := exec.Command(labtest.Binary(t), "up", "--name", name)
		cmd.Env = append(os.Environ(), labtest.AsCLIEnv+"=1")
		return cmd
	}
	down := func(name, when string) {
		t.Helper()
		if err := lab.Down(name, nil); err != nil {
			t.Errorf("down after kill at %s: %v", when, err)
		}
		assertGone(t, name)
		// A second down is a no-op.
		if err := lab.Down(name, nil); err != nil {
			t.Errorf("second down after kill at %s: %v", when, err)
		}
	}

	// Whole runs of `up` of the default lab set the time scale: its phases (namespaces,
	// links, rules, cluster agents, the LB wave, the ready wait) spread over it. Its
	// length varies with the machine's load (200-550 ms on 2 busy cores), so the scale is
	// the median of three runs and the fractions are dense enough that, whatever this run
	// takes, kills land in its early, middle and late phases.
	var runs []time.Duration
	for range 3 {
		name := labtest.LabName("kill")
		cmd := up(name)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		runs = append(runs, time.Since(start))
		if err != nil {
			_ = lab.Down(name, nil)
			t.Fatalf("full up: %v\n%s", err, out)
		}
		down(name, "the end (no kill)")
	}
	slices.Sort(runs)
	full := runs[1]
	t.Logf("whole ups take %v", runs)

	// Kill -9 `up` at fractions of that; down must leave nothing each time.
	for _, pct := range []int{0, 5, 15, 25, 40, 50, 60, 75, 90, 98} {
		delay := full * time.Duration(pct) / 100
		when := fmt.Sprintf("%d%% (%v)", pct, delay.Round(time.Millisecond))
		name := labtest.LabName("kill")
		cmd := up(name)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err == nil {
			t.Logf("kill at %s: up had already finished", when)
		}
		down(name, when)
	}
}

func TestIntegrationTwoLabsSideBySide(t *testing.T) {
	labtest.RequireRoot(t)
	a := labtest.Up(t, "twoa", "")
	b := labtest.Up(t, "twob", "")
	for _, p := range []*plan.Plan{a, b} {
		pods := labtest.EchoPods(p)
		from, to := pods[0], pods[len(pods)-1]
		e, _, err := labtest.GetEcho(from.Netns, fmt.Sprintf("http://%s:8080/", plan.Addr(to.IP)))
		if err != nil || e.Pod != to.Name {
			t.Errorf("lab %s: %s -> %s: %+v %v", p.Lab, from.Name, to.Name, e, err)
		}
	}
	// Same addresses, isolated: taking lab a down leaves b serving.
	if err := lab.Down(a.Lab, nil); err != nil {
		t.Fatal(err)
	}
	assertGone(t, a.Lab)
	from, to := b.Pods[0], b.Pods[1]
	if _, _, err := labtest.GetEcho(from.Netns, fmt.Sprintf("http://%s:8080/", plan.Addr(to.IP))); err != nil {
		t.Errorf("lab %s after %s went down: %v", b.Lab, a.Lab, err)
	}
}

func TestIntegrationSecondUpFails(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "twice", "")
	err := lab.Up(context.Background(), p, lab.Options{Binary: labtest.Binary(t)})
	if !errors.Is(err, lab.ErrExists) {
		t.Fatalf("second up: %v, want ErrExists", err)
	}
	// The first lab is untouched.
	from, to := p.Pods[0], p.Pods[1]
	if _, _, err := labtest.GetEcho(from.Netns, fmt.Sprintf("http://%s:8080/", plan.Addr(to.IP))); err != nil {
		t.Errorf("after the refused second up: %v", err)
	}
}

func TestIntegrationCLI(t *testing.T) {
	labtest.RequireRoot(t)
	name := labtest.LabName("cli")
	t.Cleanup(func() { lab.Down(name, nil) })
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: netlab.dev/v1alpha1\nkind: Lab\nspec:\n  network: {podCIDR: 10.244.0.0/99}\n  bogus: 1\n"), 0o644)
	out, err := labtest.CLI(t, "up", "--name", name, "-f", bad)
	if err == nil {
		t.Fatalf("up with a bad file succeeded: %s", out)
	}
	if !strings.Contains(out, "bad.yaml") {
		t.Errorf("error does not name the file: %s", out)
	}
	if left, _ := kernel.ListNetns(plan.NetnsName(name, "")); len(left) > 0 {
		t.Errorf("bad input created namespaces: %v", left)
	}
	if out, err := labtest.CLI(t, "up", "--name", name); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	out, err = labtest.CLI(t, "exec", "--name", name, "client", "--", "cat", "/etc/hosts")
	if err != nil || !strings.Contains(out, "203.0.113.100\tapp.example") {
		t.Errorf("exec client cat /etc/hosts: %v\n%s", err, out)
	}
	out, err = labtest.CLI(t, "status", "--name", name, "-o", "json")
	if err != nil || !strings.Contains(out, `"namespace": "nl-`+name+`-node-1"`) {
		t.Errorf("status: %v\n%s", err, out)
	}
	if out, err := labtest.CLI(t, "down", "--name", name); err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	assertGone(t, name)
	if out, err := labtest.CLI(t, "down", "--name", name); err != nil {
		t.Errorf("second down: %v\n%s", err, out)
	}
}

// A command that needs root, run by another user: one clear line, exit code 1, nothing made.
func TestIntegrationNonRootRefused(t *testing.T) {
	labtest.RequireRoot(t)
	name := labtest.LabName("nonroot")
	dir, err := os.MkdirTemp("", "netlab-nonroot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // another user must be able to run the copy
	bin := filepath.Join(dir, "netlab")
	data, err := os.ReadFile(labtest.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"up", "--name", name}, {"down", "--name", name}, {"status", "--name", name}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), labtest.AsCLIEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("%v as nobody: %v, want exit 1", args, err)
		}
		if got := strings.TrimSpace(string(out)); got != "netlab: this command needs root: run it with sudo" {
			t.Errorf("%v as nobody printed %q", args, got)
		}
	}
	if left, _ := kernel.ListNetns(plan.NetnsName(name, "")); len(left) > 0 {
		t.Errorf("a refused up created %v", left)
	}
}

// A node dropping off the fabric: its pods leave every Service on the other nodes and the
// LB stops sending to it; after the LB's detection window (interval 1 s × fall 2, + 1 s)
// no request through the VIP fails. Recovering brings both back.
func TestIntegrationNodeFailure(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "nodefail", "")
	verdicts := func() map[string]bool {
		checks, err := lab.CheckLab(context.Background(), p.Lab)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, c := range checks {
			out[c.Name] = c.OK
		}
		return out
	}
	before := verdicts()
	for _, name := range []string{"namespaces", "agents", "pods ready", "nodes", "kube-proxy synced", "load balancer", "host network untouched", "request http://app.example/"} {
		if ok, present := before[name]; !ok || !present {
			t.Errorf("check %q on a healthy lab: ok=%v present=%v", name, ok, present)
		}
	}
	// Fill node-1's ingress upstream pool with concurrent requests: some of its pooled
	// connections to the ClusterIPs now lead to node-2's pods.
	var wg sync.WaitGroup
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			url := "http://" + plan.Addr(p.Nodes[0].IP) + []string{"/", "/api"}[i%2]
			labtest.GetEchoHost(p.Clients[0].Netns, url, "app.example")
		}(i)
	}
	wg.Wait()
	if err := lab.SetNodeLink(p.Lab, "node-2", false); err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{"web-2", "api-1"} { // node-2's pods
		if !waitEndpoint(t, p.Lab, pod, false) {
			t.Errorf("%s is still a ready endpoint 15 s after its node failed", pod)
		}
	}
	// The LB's health checks mark node-2's real servers down (what `node fail --wait`
	// waits for); a bound on a hang, not a timing.
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	err := lab.WaitNode(wctx, p.Lab, "node-2", false)
	wcancel()
	if err != nil {
		t.Fatal(err)
	}
	// node-1's kube-proxy sends its ingress's ClusterIP connections only to node-1's pods.
	labtest.WaitSynced(t, p)
	client := p.Clients[0].Netns
	for i := 0; i < 40; i++ {
		path := []string{"/", "/api"}[i%2]
		e, _, err := labtest.GetEchoHost(client, "http://"+p.LB.VIP+path, "app.example")
		if err != nil {
			t.Errorf("request %d after the detection window: %v", i, err)
			continue
		}
		if e.Node != "node-1" {
			t.Errorf("request %d answered by a pod on %s", i, e.Node)
		}
	}
	if verdicts()["nodes"] {
		t.Error(`check "nodes" passes with node-2 off the fabric`)
	}
	if err := lab.SetNodeLink(p.Lab, "node-2", true); err != nil {
		t.Fatal(err)
	}
	for _, pod := range []string{"web-2", "api-1"} {
		if !waitEndpoint(t, p.Lab, pod, true) {
			t.Errorf("%s did not come back 15 s after its node recovered", pod)
		}
	}
}
