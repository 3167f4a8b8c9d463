package kernel

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// Terminate ends every process it is given: those that end on SIGTERM by it, one that
// ignores SIGTERM by SIGKILL once the grace is over; a pid already gone is no error. (No
// root needed: the processes are this test's children.) The same for the fallback that
// looks every 10 ms, for kernels without pidfds.
func TestTerminate(t *testing.T) {
	t.Run("pidfds", func(t *testing.T) { testTerminate(t, Terminate) })
	t.Run("polling", func(t *testing.T) { testTerminate(t, terminatePolling) })
}

func testTerminate(t *testing.T, terminate func([]int, time.Duration)) {
	var cmds []*exec.Cmd
	start := func(args ...string) *exec.Cmd {
		c := exec.Command(args[0], args[1:]...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
		return c
	}
	polite := []*exec.Cmd{start("sleep", "60"), start("sleep", "60"), start("sleep", "60")}
	stubborn := start("sh", "-c", `trap "" TERM; exec sleep 60`)
	gone := start("true")
	_ = gone.Wait()
	// the shell must have set its trap before the signal comes
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if len(Cmdline(stubborn.Process.Pid)) == 2 {
			break // exec'd into sleep, the trap inherited
		}
	}
	var pids []int
	for _, c := range cmds {
		pids = append(pids, c.Process.Pid)
	}
	terminate(pids, 300*time.Millisecond)
	for _, c := range cmds {
		if c == gone {
			continue
		}
		if Alive(c.Process.Pid) {
			t.Errorf("pid %d still alive after Terminate", c.Process.Pid)
		}
	}
	for _, c := range polite {
		if err := c.Wait(); err == nil || c.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			t.Errorf("pid %d: %v, want ended by SIGTERM", c.Process.Pid, err)
		}
	}
	if err := stubborn.Wait(); err == nil || stubborn.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("a process ignoring SIGTERM: %v, want ended by SIGKILL", err)
	}
	terminate(nil, time.Second)
}

// AliveSince is Alive and StartTime together: a live process with its start time, not
// one with another start (a reused pid), not a zombie, not a process gone.
func TestAliveSince(t *testing.T) {
	self := os.Getpid()
	if !AliveSince(self, StartTime(self)) || !Alive(self) {
		t.Errorf("this process is not alive since its start %q", StartTime(self))
	}
	if AliveSince(self, "1") {
		t.Error("alive since another start time")
	}
	c := exec.Command("true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pid, start := c.Process.Pid, StartTime(c.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && Alive(pid); {
		time.Sleep(5 * time.Millisecond)
	}
	if start == "" || AliveSince(pid, start) || Alive(pid) || Cmdline(pid) != nil {
		t.Errorf("a zombie (start %q) is alive: AliveSince %v, Alive %v, argv %q", start, AliveSince(pid, start), Alive(pid), Cmdline(pid))
	}
	_ = c.Wait()
	if AliveSince(pid, start) || StartTime(pid) != "" {
		t.Error("a process gone is alive")
	}
	if argv := Cmdline(self); len(argv) == 0 || argv[0] != os.Args[0] {
		t.Errorf("Cmdline(self) = %q, want %q...", argv, os.Args[0])
	}
}
