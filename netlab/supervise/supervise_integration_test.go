// Root integration tests of the supervisor: every kind of agent killed is started again,
// counted in status, and the lab serves.
package supervise_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// kill -9 of every kind of agent: each is started again by the supervisor (the supervisor
// by the controller), its restart counted in status, and requests through the VIP work.
func TestIntegrationAgentsRestarted(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "heal", "")
	kills := []struct{ role, name string }{
		{"pod", "web-1"}, {"kube-proxy", "node-1"}, {"ingress", "node-2"},
		{"lb", "lb"}, {"controller", "controller"}, {"supervisor", "supervisor"},
	}
	for _, k := range kills {
		before := labtest.Record(t, p.Lab, k.role, k.name)
		if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s %s: %v", k.role, k.name, err)
		}
		var after supervise.Record
		if !labtest.WaitFor(15*time.Second, func() bool {
			after, _ = supervise.ReadRecord(rundir.ForLab(p.Lab), k.role, k.name)
			return after.PID != before.PID && after.Alive()
		}) {
			t.Fatalf("%s %s (pid %d) was not restarted within 15 s: last record %+v", k.role, k.name, before.PID, after)
		}
		if after.Restarts != before.Restarts+1 {
			t.Errorf("%s %s: restarts %d, want %d", k.role, k.name, after.Restarts, before.Restarts+1)
		}
		if k.role != "supervisor" && k.role != "controller" && kernel.PIDsIn([]string{plan.NetnsName(p.Lab, nsObject(k.role, k.name))})[plan.NetnsName(p.Lab, nsObject(k.role, k.name))] == nil {
			t.Errorf("%s %s restarted outside its namespace", k.role, k.name)
		}
		for _, path := range []string{"/", "/api"} {
			if err := labtest.RequestOK(p, path); err != nil {
				t.Errorf("after the restart of %s %s: %v", k.role, k.name, err)
			}
		}
	}
	// The supervisor said so (the pod was its first death): the line comes once the agent
	// is started again, so a lab's teardown, which ends every agent, says nothing.
	if log, _ := os.ReadFile(rundir.ForLab(p.Lab).Log("supervisor", "supervisor")); !strings.Contains(string(log), `"msg":"agent died, restarted","role":"pod","name":"web-1"`) {
		t.Errorf("the supervisor's log does not tell web-1's restart:\n%s", log)
	}
	// The restarted controller and kube-proxy still follow endpoint changes: a drill kill
	// of web-1 takes it out of every node's rules.
	// (The rules name an endpoint as "-j DNAT --to-destination IP:port".)
	web1 := ""
	for _, pod := range p.Pods {
		if pod.Name == "web-1" {
			web1 = "--to-destination " + plan.Addr(pod.IP) + ":"
		}
	}
	natRules := func() string {
		out, err := labtest.Exec(p.Nodes[0].Netns, "iptables-save", "-t", "nat")
		if err != nil {
			return "iptables-save: " + err.Error()
		}
		return out
	}
	if rules := natRules(); web1 == "" || !strings.Contains(rules, web1) {
		t.Fatalf("web-1 (%q) is not in node-1's rules before its kill:\n%s", web1, rules)
	}
	if _, err := lab.KillPod(p.Lab, "web-1"); err != nil {
		t.Fatal(err)
	}
	var rules string
	if !labtest.WaitFor(15*time.Second, func() bool {
		rules = natRules()
		return !strings.Contains(rules, web1) && !strings.HasPrefix(rules, "iptables-save: ")
	}) {
		ep, _ := os.ReadFile(rundir.ForLab(p.Lab).Endpoints())
		t.Errorf("web-1 (%s) still in node-1's rules 15 s after its kill:\n%s\nendpoints file: %s", web1, rules, ep)
	}
	st, err := lab.GetStatus(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]lab.AgentStatus{}
	for _, a := range st.Agents {
		byName[a.Role+"/"+a.Name] = a
	}
	for _, k := range kills {
		if a := byName[k.role+"/"+k.name]; a.Restarts != 1 {
			t.Errorf("status: %s %s restarts %d, want 1", k.role, k.name, a.Restarts)
		}
	}
	for _, ps := range st.Pods {
		if ps.Name == "web-1" && ps.Restarts != 1 {
			t.Errorf("status: pod web-1 restarts %d, want 1", ps.Restarts)
		}
	}
	// `netlab pod kill` is a drill: the supervisor leaves the pod down until `pod start`.
	var web1State string
	if !labtest.WaitFor(15*time.Second, func() bool {
		rep, err := supervise.ReadReport(rundir.ForLab(p.Lab))
		if err != nil {
			web1State = err.Error()
			return false
		}
		for _, a := range rep.Agents {
			if a.Role == "pod" && a.Name == "web-1" {
				web1State = fmt.Sprintf("%+v", a)
				return a.State == supervise.StateStopped
			}
		}
		web1State = "web-1 not in the report"
		return false
	}) {
		t.Errorf("the supervisor does not report the killed pod web-1 as stopped within 15 s: last %s", web1State)
	}
	if rec := labtest.Record(t, p.Lab, "pod", "web-1"); rec.Alive() {
		t.Error("the supervisor restarted a pod stopped with `pod kill`")
	}
	b, err := json.Marshal(st)
	if err != nil || !strings.Contains(string(b), `"restarts":1`) {
		t.Errorf("status JSON has no restarts: %v", err)
	}
	if err := lab.StartPod(p.Lab, "web-1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if rec := labtest.Record(t, p.Lab, "pod", "web-1"); !rec.Alive() || rec.Restarts != 1 {
		t.Errorf("after pod start: alive %v restarts %d, want alive with 1", rec.Alive(), rec.Restarts)
	}
}

func nsObject(role, name string) string {
	if role == "lb" {
		return "lb"
	}
	return name
}
