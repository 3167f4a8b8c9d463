package lab_test

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// Right after up, status takes every pod's readiness from the controller's record, the
// same in every call; with the record stale (its controller stopped), status says so and
// probes the pods itself; with the controller back, the record is used again.
func TestIntegrationStatusReadinessFromController(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "rd", labtest.Fixture(t, "twenty-pods.yaml"))
	for call := 1; call <= 3; call++ {
		st, err := lab.GetStatus(context.Background(), p.Lab)
		if err != nil {
			t.Fatal(err)
		}
		r := st.Readiness
		if r == nil || r.Source != "controller" || r.Stale || r.Probed != 0 || r.RecordAgeMs == nil {
			t.Fatalf("call %d: readiness source %+v, want the controller's fresh record for every pod", call, r)
		}
		ready := 0
		for _, ps := range st.Pods {
			if ps.Ready && ps.ReadinessFrom == "controller" {
				ready++
			} else {
				t.Errorf("call %d: pod %s ready=%v from %q (%s)", call, ps.Name, ps.Ready, ps.ReadinessFrom, ps.Reason)
			}
		}
		if ready != len(p.Pods) || ready < 20 {
			t.Fatalf("call %d: %d of %d pods ready", call, ready, len(p.Pods))
		}
	}

	// The controller stopped: its record ages; status falls back to probing, and says so.
	ctl := controllerPID(t, p.Lab)
	if err := syscall.Kill(ctl, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	continued := false
	resume := func() {
		if !continued {
			continued = true
			_ = syscall.Kill(ctl, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	d := rundir.ForLab(p.Lab)
	rec, err := d.ReadReadiness()
	if err != nil {
		t.Fatal(err)
	}
	rec.Updated = time.Now().Add(-time.Minute) // as if it had been stopped that long
	b, _ := json.Marshal(rec)
	if err := os.WriteFile(d.Readiness(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := lab.GetStatus(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Readiness; r == nil || r.Source != "probe" || !r.Stale || r.Probed != len(p.Pods) || !strings.Contains(r.Note, "stale") {
		t.Fatalf("stale record: readiness source %+v", r)
	}
	for _, ps := range st.Pods {
		if !ps.Ready || ps.ReadinessFrom != "probe" {
			t.Errorf("stale record: pod %s ready=%v from %q (%s)", ps.Name, ps.Ready, ps.ReadinessFrom, ps.Reason)
		}
	}

	// Back: the controller refreshes its record within RecordRefresh.
	resume()
	deadline := time.Now().Add(10 * rundir.RecordRefresh)
	for {
		st, err := lab.GetStatus(context.Background(), p.Lab)
		if err != nil {
			t.Fatal(err)
		}
		if st.Readiness.Source == "controller" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller did not refresh its record after SIGCONT: %+v", st.Readiness)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// controllerPID finds the lab's endpoints controller by its argv.
func controllerPID(t *testing.T, labName string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if argv := kernel.Cmdline(pid); lab.IsAgentOf(argv, labName) && argv[2] == "controller" {
			return pid
		}
	}
	t.Fatalf("no controller of lab %s", labName)
	return 0
}
