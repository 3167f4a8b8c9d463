package lab_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// Every agent runs from the binary its role asks for — the pods from netlab-pod,
// kube-proxy, the ingress, the controller, the LB, the cluster DNS and the supervisor from
// netlab-agent — with the same command line, so status sees them all running and down
// ends every one of them.
func TestAgentsRunFromTheirBinaries(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "abin", "")
	want := map[string]string{
		"pod": supervise.PodBinaryName, "dns": supervise.AgentBinaryName, "kube-proxy": supervise.AgentBinaryName,
		"controller": supervise.AgentBinaryName, "lb": supervise.AgentBinaryName, "supervisor": supervise.AgentBinaryName,
		"ingress": supervise.AgentBinaryName,
	}
	d := rundir.ForLab(p.Lab)
	var pids []int
	seen := map[string]bool{}
	for _, pr := range append(append([]plan.Process{}, p.Processes...), supervise.SupervisorProcess(p.Lab)) {
		rec, err := supervise.ReadRecord(d, pr.Role, pr.Name)
		if err != nil || !rec.Alive() {
			t.Fatalf("%s %s: no live process (%+v, %v)", pr.Role, pr.Name, rec, err)
		}
		exe, err := os.Readlink("/proc/" + strconv.Itoa(rec.PID) + "/exe")
		if err != nil {
			t.Fatal(err)
		}
		if got := filepath.Base(exe); got != want[pr.Args[1]] {
			t.Errorf("%s %s runs %s, want %s", pr.Role, pr.Name, exe, want[pr.Args[1]])
		}
		if argv := kernel.Cmdline(rec.PID); len(argv) < 3 || argv[1] != "agent" || argv[2] != pr.Args[1] {
			t.Errorf("%s %s: command line %q, want \"<binary> agent %s ...\"", pr.Role, pr.Name, argv, pr.Args[1])
		}
		seen[pr.Args[1]] = true
		pids = append(pids, rec.PID)
	}
	for role := range want {
		if !seen[role] {
			t.Errorf("the default lab has no %s agent", role)
		}
	}
	st, err := lab.GetStatus(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.Agents {
		if !a.Running {
			t.Errorf("status: %s %s not running (%s %s)", a.Role, a.Name, a.State, a.Message)
		}
	}
	for _, n := range st.Nodes {
		if !n.Agents["kube-proxy"] || !n.Agents["ingress"] {
			t.Errorf("status: node %s agents %v", n.Name, n.Agents)
		}
	}
	if err := lab.Down(p.Lab, nil); err != nil {
		t.Fatal(err)
	}
	var alive []string
	if !labtest.WaitFor(15*time.Second, func() bool {
		alive = alive[:0]
		for _, pid := range pids {
			if kernel.Alive(pid) {
				alive = append(alive, fmt.Sprint(pid, kernel.Cmdline(pid)))
			}
		}
		return len(alive) == 0
	}) {
		t.Errorf("processes of the lab still run 15 s after down: %v", alive)
	}
}

// Without netlab-agent, up fails before it makes anything, saying where it looked.
func TestUpRefusesWithoutTheAgentBinary(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Plan(t, "nobin", "")
	missing := filepath.Join(t.TempDir(), "netlab-agent")
	t.Setenv(supervise.AgentBinaryEnv, missing)
	err := lab.Up(context.Background(), p, lab.Options{Binary: labtest.Binary(t), ReadyTimeout: 10 * time.Second})
	if err == nil {
		labtest.Remove(t, p.Lab)
		t.Fatal("up succeeded without the agent binary")
	}
	for _, w := range []string{"netlab-agent is missing", missing, supervise.AgentBinaryEnv} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if ns, _ := kernel.ListNetns(plan.NetnsName(p.Lab, "")); len(ns) > 0 {
		t.Errorf("namespaces made: %v", ns)
	}
	if _, err := os.Stat(rundir.ForLab(p.Lab).Path()); !os.IsNotExist(err) {
		t.Errorf("runtime directory made: %v", err)
	}
}
