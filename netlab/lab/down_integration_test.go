package lab_test

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

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

// Processes that are not the lab's agents but live in its namespaces (a shell started
// with `netlab exec`, a user's `ip netns exec`), one of them ignoring SIGTERM: down ends
// both, and removes a namespace's name only once nothing lives in it, so that no
// namespace outlives its name (a down stopped halfway leaves its processes where the
// next down finds them, and a namespace's identity is never looked for after its name
// is gone, when the kernel may give it to another).
func TestIntegrationDownEndsOtherProcesses(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "downoth", "")
	type proc struct {
		what, ns string
		cmd      *exec.Cmd
	}
	var procs []proc
	for _, c := range []proc{
		{what: "a shell in the client", ns: p.Clients[0].Netns, cmd: exec.Command("sh", "-c", "exec sleep 300")},
		{what: "a shell ignoring SIGTERM in a pod", ns: p.Pods[0].Netns, cmd: exec.Command("sh", "-c", "trap '' TERM; exec sleep 300")},
	} {
		// ip netns exec execs sh, which execs sleep: one pid throughout. It is reaped
		// only at the end, so that its pid cannot be another's meanwhile.
		c.cmd = exec.Command("ip", append([]string{"netns", "exec", c.ns}, c.cmd.Args...)...)
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() }()
		procs = append(procs, c)
	}
	for _, pr := range procs {
		if !labtest.WaitFor(10*time.Second, func() bool { return slices.Contains(kernel.PIDsIn([]string{pr.ns})[pr.ns], pr.cmd.Process.Pid) }) {
			t.Fatalf("%s (pid %d) never showed in namespace %s", pr.what, pr.cmd.Process.Pid, pr.ns)
		}
	}
	// While down runs: a namespace's name never goes while a process still lives in it.
	stop, watched := make(chan struct{}), make(chan []string, 1)
	go func() {
		var bad []string
		for {
			select {
			case <-stop:
				watched <- bad
				return
			default:
			}
			for _, pr := range procs {
				pid := pr.cmd.Process.Pid
				if !kernel.Alive(pid) {
					continue
				}
				if _, err := os.Stat(kernel.NetnsPath(pr.ns)); os.IsNotExist(err) && kernel.Alive(pid) {
					bad = append(bad, fmt.Sprintf("%s's namespace %s lost its name while pid %d still lived in it", pr.what, pr.ns, pid))
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	err := lab.Down(p.Lab, nil)
	close(stop)
	bad := <-watched
	slices.Sort(bad)
	for _, b := range slices.Compact(bad) {
		t.Error(b)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range procs {
		if kernel.Alive(pr.cmd.Process.Pid) {
			t.Errorf("%s (pid %d) still runs after down", pr.what, pr.cmd.Process.Pid)
		}
	}
}
