package lab_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// Up starts every agent and the first pods beside the links, in the background: when a
// step of the fabric fails after that, the rollback waits for those starts and ends every
// process they made, starts none of the pods that were to wait for the fabric, and leaves
// nothing else behind either.
func TestIntegrationFailedFabricRollsBackAgentsStartedBeside(t *testing.T) {
	labtest.RequireRoot(t)
	const beside = 2
	defer lab.SetPodsBeforeFabric(beside)()
	p := labtest.Plan(t, "rb", "")
	t.Cleanup(func() { labtest.Remove(t, p.Lab) })
	// A route through a device no namespace has: the routes step, after the links, fails.
	pod := labtest.EchoPods(p)[0]
	p.Routes = append(p.Routes, plan.Route{Netns: pod.Netns, Dst: "192.0.2.0/24", Dev: "nosuchdev0"})

	var mu sync.Mutex
	var started []int
	startedNames := map[string]bool{}
	echoPods := 0
	defer lab.OnAgentStarted(func(pid int, pr plan.Process) {
		mu.Lock()
		started = append(started, pid)
		startedNames[pr.Name] = true
		if pr.Role == "pod" && !(len(pr.Args) >= 2 && pr.Args[1] == "dns") {
			echoPods++
		}
		mu.Unlock()
	})()
	err := lab.Up(context.Background(), p, lab.Options{Binary: labtest.Binary(t), ReadyTimeout: 30 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "routes") {
		t.Fatalf("up with a route through a missing device: %v, want the routes step's error", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(started) == 0 {
		t.Fatal("no agent was started before the routes step failed: the agents are to start beside the links")
	}
	if echoPods > beside {
		t.Errorf("%d echo pods started; only %d were to start before the fabric was wired (it never was)", echoPods, beside)
	}
	for _, pid := range started {
		if kernel.Alive(pid) {
			t.Errorf("process %d, started by the failed up, still runs: %v", pid, kernel.Cmdline(pid))
		}
	}
	assertGone(t, p.Lab)
	// The logs stay for the post-mortem, but only started processes have one: up makes the
	// logs of the pods that wait for the fabric ahead (createPodLogs), and a rollback
	// removes those still empty.
	for _, pr := range p.Processes {
		if pr.Role != "pod" || startedNames[pr.Name] {
			continue
		}
		if _, err := os.Stat(rundir.ForLab(p.Lab).Log(pr.Role, pr.Name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("pod %s never started, but has a log file (%v)", pr.Name, err)
		}
	}
}

// Up lowers every agent's scheduling group while it makes the fabric and gives it back:
// once up returned, every process of the lab runs at autogroup nice 0, and the caller's own
// session (this test's) is as it was. The same after a failed up that keeps what it made.
func TestIntegrationAgentsRunAtNiceZeroAfterUp(t *testing.T) {
	labtest.RequireRoot(t)
	if _, err := os.Stat("/proc/self/autogroup"); err != nil {
		t.Skip("no autogroups in this kernel:", err)
	}
	self, err := os.ReadFile("/proc/self/autogroup")
	if err != nil {
		t.Fatal(err)
	}
	check := func(labName string) {
		t.Helper()
		n := 0
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || !lab.IsAgentOf(kernel.Cmdline(pid), labName) {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/autogroup")
			if err != nil {
				continue // gone since
			}
			n++
			if f := strings.Fields(string(b)); f[len(f)-1] != "0" {
				t.Errorf("lab %s: %v runs at autogroup %s", labName, kernel.Cmdline(pid), strings.TrimSpace(string(b)))
			}
		}
		if n == 0 {
			t.Errorf("lab %s: no agent process found", labName)
		}
		if now, _ := os.ReadFile("/proc/self/autogroup"); string(now) != string(self) {
			t.Errorf("the caller's autogroup changed: %q, was %q", now, self)
		}
	}
	p := labtest.Up(t, "nz", "")
	check(p.Lab)

	q := labtest.Plan(t, "nzf", "")
	t.Cleanup(func() { labtest.Remove(t, q.Lab) })
	pod := labtest.EchoPods(q)[0]
	q.Routes = append(q.Routes, plan.Route{Netns: pod.Netns, Dst: "192.0.2.0/24", Dev: "nosuchdev0"})
	if err := lab.Up(context.Background(), q, lab.Options{Binary: labtest.Binary(t), Retain: true, ReadyTimeout: 30 * time.Second}); err == nil {
		t.Fatal("up with a route through a missing device succeeded")
	}
	check(q.Lab)
}
