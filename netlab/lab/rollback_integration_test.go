package lab_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
)

// Up starts every agent and pod beside the links, in the background: when a step of the
// fabric fails after that, the rollback waits for those starts and ends every process
// they made, and leaves nothing else behind either.
func TestIntegrationFailedFabricRollsBackAgentsStartedBeside(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Plan(t, "rb", "")
	t.Cleanup(func() { labtest.Remove(t, p.Lab) })
	// A route through a device no namespace has: the routes step, after the links, fails.
	pod := labtest.EchoPods(p)[0]
	p.Routes = append(p.Routes, plan.Route{Netns: pod.Netns, Dst: "192.0.2.0/24", Dev: "nosuchdev0"})

	var mu sync.Mutex
	var started []int
	defer lab.OnAgentStarted(func(pid int) {
		mu.Lock()
		started = append(started, pid)
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
	for _, pid := range started {
		if kernel.Alive(pid) {
			t.Errorf("process %d, started by the failed up, still runs: %v", pid, kernel.Cmdline(pid))
		}
	}
	assertGone(t, p.Lab)
}
