package lab_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// A pod's namespace deleted by hand: its process lives on in a namespace no name leads
// to; down still ends it, and every other agent of the lab.
func TestIntegrationDownAfterNetnsDeleted(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "healns", "")
	pod := p.Pods[0]
	rec := labtest.Record(t, p.Lab, "pod", pod.Name)
	if err := kernel.DeleteNetns(pod.Netns); err != nil {
		t.Fatal(err)
	}
	var all []supervise.Record
	for _, pr := range append(p.Processes, supervise.SupervisorProcess(p.Lab)) {
		all = append(all, labtest.Record(t, p.Lab, pr.Role, pr.Name))
	}
	if !rec.Alive() {
		t.Fatal("the pod's process ended with its namespace: the case this test is for did not happen")
	}
	if err := lab.Down(p.Lab, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if r.Alive() {
			t.Errorf("pid %d (%v) still runs after down", r.PID, kernel.Cmdline(r.PID))
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if lab.IsAgentOf(kernel.Cmdline(pid), p.Lab) && kernel.Alive(pid) {
			t.Errorf("agent %d %v of the lab still runs after down", pid, kernel.Cmdline(pid))
		}
	}
}
