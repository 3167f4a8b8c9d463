// Integration tests of the kernel's drop reasons on real labs: the default scenario plus
// testdata/drops-extra.yaml (solo-1 on node-1, 10.244.1.x; Service solo; NodePort 30081
// with externalTrafficPolicy: Local). Nodes: node-1 172.18.0.11, node-2 172.18.0.12.
package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/netlabdev/netlab/netlab/drops"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// dropPrograms lists the IDs of the drop programs loaded in the kernel above an ID (IDs
// only grow: programs loaded before a test have lower ones, and the kernel frees a closed
// program a moment later, so counting them would race with earlier tests).
func dropPrograms(t *testing.T, above ebpf.ProgramID) []ebpf.ProgramID {
	t.Helper()
	var out []ebpf.ProgramID
	id := ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return out
		}
		id = next
		if id <= above {
			continue
		}
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := prog.Info(); err == nil && len(info.Name) >= 12 && strings.HasPrefix(drops.ProgramName, info.Name) {
			out = append(out, id)
		}
		prog.Close()
	}
}

// lastProgramID is the highest program ID in use now.
func lastProgramID() ebpf.ProgramID {
	id, last := ebpf.ProgramID(0), ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return last
		}
		id, last = next, next
	}
}

// programsOf lists the IDs of the BPF programs process pid holds open (its bpf-prog
// descriptors' fdinfo names them): what that process loaded, whatever else runs on the
// machine.
func programsOf(pid int) map[ebpf.ProgramID]bool {
	out := map[ebpf.ProgramID]bool{}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if target, _ := os.Readlink(filepath.Join(dir, e.Name())); target != "anon_inode:bpf-prog" {
			continue
		}
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		for line := range strings.Lines(string(info)) {
			var id ebpf.ProgramID
			if _, err := fmt.Sscanf(line, "prog_id: %d", &id); err == nil {
				out[id] = true
			}
		}
	}
	return out
}

// stillLoaded returns those of ids the kernel still holds.
func stillLoaded(ids map[ebpf.ProgramID]bool) []ebpf.ProgramID {
	var out []ebpf.ProgramID
	for id := range ids {
		if prog, err := ebpf.NewProgramFromID(id); err == nil {
			prog.Close()
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func failTrace(t *testing.T, labName string, o lab.TraceOptions) *lab.Trace {
	t.Helper()
	o.Packets = true
	tr, err := lab.TraceWith(context.Background(), labName, o)
	var failed *lab.RequestFailedError
	if !errors.As(err, &failed) || tr == nil || tr.Drop == nil {
		t.Fatalf("%s from %q: want a failed trace with its drop, got %v", o.URL, o.From, err)
	}
	return tr
}

func TestIntegrationDrops(t *testing.T) {
	labtest.RequireRoot(t)
	extra, err := os.ReadFile("testdata/drops-extra.yaml")
	if err != nil {
		t.Fatal(err)
	}
	before := lastProgramID()
	// ours collects the programs this test's watchers and its `drops --follow` hold: at
	// the end none may be left in the kernel. Only those: other processes on the machine
	// (another test binary, a user's `drops --follow`) load the same programs, so counting
	// every drop program failed this test for them. A program a watcher loaded and freed
	// between two collect calls, or one kept alive only by a pin or a link, is not seen.
	ours := map[ebpf.ProgramID]bool{}
	collect := func(pid int) int {
		n := 0
		for id := range programsOf(pid) {
			if !ours[id] && slices.Contains(dropPrograms(t, before), id) {
				ours[id] = true
				n++
			}
		}
		return n
	}
	p := labtest.Up(t, "drp", string(scenario.DefaultYAML())+string(extra))
	other := labtest.Up(t, "drq", "")
	var api1 string
	for _, pod := range p.Pods {
		if pod.Name == "api-1" {
			api1 = plan.Addr(pod.IP)
		}
	}

	// `drops` of one lab shows its drops and nothing of the lab beside it.
	w, err := lab.WatchDrops(p.Lab)
	if errors.Is(err, drops.ErrUnsupported) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*plan.Plan{other, p} {
		ns := plan.NetnsName(l.Lab, "node-1")
		if _, err := kernel.Run(ns, nil, "curl", "-s", "-m", "1", "http://"+api1+":9/"); err == nil {
			t.Fatalf("a closed port answered in %s", l.Lab)
		}
	}
	collect(os.Getpid())
	w.SetDeadline(time.Now().Add(time.Second))
	var mine bool
	for {
		d, err := w.Next()
		if err != nil {
			break
		}
		if !strings.HasPrefix(d.Namespace, plan.NetnsName(p.Lab, "")) {
			t.Errorf("lab %s's watcher reported a drop elsewhere: %+v", p.Lab, d)
		}
		if d.Object == "api-1" && d.Reason == "NO_SOCKET" && strings.HasSuffix(d.Dst, ":9") {
			mine = true
		}
	}
	w.Close()
	if !mine {
		t.Error("the SYN to a closed port in this lab was not reported as NO_SOCKET on api-1")
	}

	// Each failing request ends with the right object and reason.
	tr := failTrace(t, p.Lab, lab.TraceOptions{From: "node-1", URL: "tcp://" + api1 + ":9"})
	if tr.Drop.Object != "api-1" || tr.Drop.Reason != "NO_SOCKET" || tr.Drop.Interface != "api-1/eth0" {
		t.Errorf("closed port: %+v", tr.Drop)
	}
	tr = failTrace(t, p.Lab, lab.TraceOptions{URL: "tcp://172.18.0.12:30081"})
	if tr.Drop.Object != "node-2" || tr.Drop.Reason != "NETFILTER_DROP" || !strings.Contains(tr.Drop.Rule, "has no local endpoints") {
		t.Errorf("NodePort without a local endpoint: %+v", tr.Drop)
	}
	if _, err := lab.KillPod(p.Lab, "solo-1"); err != nil {
		t.Fatal(err)
	}
	var solo string
	for _, s := range p.Services {
		if s.Name == "solo" {
			solo = s.ClusterIP
		}
	}
	// Until the controller has taken the endpoint away and node-1 applied it (a bound on
	// a hang: it takes well under a second).
	for end := time.Now().Add(15 * time.Second); ; {
		tr = failTrace(t, p.Lab, lab.TraceOptions{From: "web-1", URL: "tcp://" + solo + ":80"})
		if tr.Drop.Reason == "NETFILTER_DROP" || time.Now().After(end) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if tr.Drop.Object != "node-1" || tr.Drop.Reason != "NETFILTER_DROP" || !strings.Contains(tr.Drop.Rule, "has no endpoints") || !strings.Contains(tr.Drop.Rule, "REJECT") {
		t.Errorf("Service without endpoints: %+v", tr.Drop)
	}
	if err := lab.SetNodeLink(p.Lab, "node-2", false); err != nil {
		t.Fatal(err)
	}
	tr = failTrace(t, p.Lab, lab.TraceOptions{URL: "tcp://172.18.0.12:30081"})
	if !strings.Contains(tr.Drop.Detail, "node-2 is off the fabric") {
		t.Errorf("failed node: %+v", tr.Drop)
	}
	if err := lab.SetNodeLink(p.Lab, "node-2", true); err != nil {
		t.Fatal(err)
	}

	// A watcher started before a pod exists sees that pod's drops (drops --follow while
	// `scale` or `apply` adds pods).
	w, err = lab.WatchDrops(p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Scale(context.Background(), p.Lab, "api", 3, lab.ChangeOptions{Binary: labtest.Binary(t)}); err != nil {
		w.Close()
		t.Fatal(err)
	}
	np, err := lab.LoadPlan(p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	var api3 string
	for _, pod := range np.Pods {
		if pod.Name == "api-3" {
			api3 = plan.Addr(pod.IP)
		}
	}
	var seen3 bool
	// The watcher picks the new namespace up within lab.RefreshEvery: tries, for up to 15 s.
	for end := time.Now().Add(15 * time.Second); !seen3 && api3 != "" && time.Now().Before(end); {
		_, _ = kernel.Run(plan.NetnsName(p.Lab, "node-1"), nil, "curl", "-s", "-m", "1", "http://"+api3+":9/")
		w.SetDeadline(time.Now().Add(500 * time.Millisecond))
		collect(os.Getpid())
		for {
			d, err := w.Next()
			if err != nil {
				break
			}
			if d.Object == "api-3" && d.Reason == "NO_SOCKET" {
				seen3 = true
			}
		}
	}
	w.Close()
	if !seen3 {
		t.Errorf("a watcher started before pod api-3 (%q) did not report its drop", api3)
	}

	// Close while Next waits for a drop, from two goroutines at once (Ctrl-C's and a
	// deferred one) and once more after: each returns, Next ends, and the program goes
	// (the check at the end).
	w, err = lab.WatchDrops(p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	collect(os.Getpid())
	nextDone := make(chan error, 1)
	go func() {
		for {
			if _, err := w.Next(); err != nil {
				nextDone <- err
				return
			}
		}
	}()
	closed := make(chan error, 2)
	for range 2 {
		go func() { closed <- w.Close() }()
	}
	for range 2 {
		if err, ok := within(closed); !ok {
			t.Fatalf("DropWatcher.Close did not return within %s while Next waited (a hang)", exitGuard)
		} else if err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if _, ok := within(nextDone); !ok {
		t.Fatalf("Next did not return within %s after Close (a hang)", exitGuard)
	}
	if err := w.Close(); err != nil {
		t.Errorf("a third Close: %v", err)
	}

	// Ctrl-C (or SIGTERM) on `netlab drops --follow` ends it, whenever it comes: at once,
	// or after a refresh of the lab's namespaces or two (lab.RefreshEvery); it leaves no
	// program behind, nor does anything above.
	for _, c := range []struct {
		sig   syscall.Signal
		after time.Duration
	}{{syscall.SIGINT, 0}, {syscall.SIGINT, lab.RefreshEvery + lab.RefreshEvery/5}, {syscall.SIGTERM, 2*lab.RefreshEvery + lab.RefreshEvery/2}} {
		cmd := exec.Command(labtest.Binary(t), "drops", "--name", p.Lab, "--follow")
		// GOTRACEBACK=all: should it hang, the SIGQUIT below prints every goroutine.
		cmd.Env = append(os.Environ(), labtest.AsCLIEnv+"=1", "GOTRACEBACK=all")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		if !labtest.WaitFor(15*time.Second, func() bool { return collect(pid) > 0 }) {
			t.Errorf("drops --follow (pid %d) holds no drop program 15 s after it started", pid)
		}
		time.Sleep(c.after)
		_ = cmd.Process.Signal(c.sig)
		if err := waitExit(cmd, &stderr); err != nil {
			t.Errorf("drops --follow (pid %d), %v %s after it held its program: %v", pid, c.sig, c.after, err)
		}
	}
	// The kernel frees a program a moment after its last descriptor closes.
	if !labtest.WaitFor(15*time.Second, func() bool { return len(stillLoaded(ours)) == 0 }) {
		t.Errorf("drop programs left in the kernel by this test 15 s after their last holder closed them: %v (of %d it loaded)", stillLoaded(ours), len(ours))
	}
}

// exitGuard bounds a wait that only a hang makes long, so that a hang fails the test
// instead of holding the suite.
const exitGuard = 20 * time.Second

// within receives from ch, or reports false after exitGuard.
func within[T any](ch <-chan T) (T, bool) {
	select {
	case v := <-ch:
		return v, true
	case <-time.After(exitGuard):
		var zero T
		return zero, false
	}
}

// waitExit waits for a signalled command to exit cleanly. If it has not after exitGuard it
// is sent SIGQUIT (a Go program then prints every goroutine on stderr), then killed, and
// the error carries its stderr.
func waitExit(cmd *exec.Cmd, stderr *bytes.Buffer) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err, ok := within(exited); ok {
		if err != nil {
			return fmt.Errorf("%w; stderr:\n%s", err, stderr)
		}
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	return fmt.Errorf("still running %s after the signal (a hang: sent SIGQUIT, then killed); stderr:\n%s", exitGuard, stderr)
}
