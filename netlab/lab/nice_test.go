package lab

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The agents' scheduling groups are lowered while up makes the fabric and given back after:
// a process in a session of its own (as every agent) reads nice 19 in /proc/PID/autogroup
// after lower, 0 after restore, and a process lowered after restore is left as it is.
func TestYieldingLowersAndRestoresAutogroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (setting a group's nice back to 0)")
	}
	if _, err := os.Stat("/proc/self/autogroup"); err != nil {
		t.Skip("no autogroups in this kernel:", err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	nice := func(pid int) string {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/autogroup")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b)) // "/autogroup-123 nice 19"
		return f[len(f)-1]
	}
	a, b := start(), start()
	var y yielding
	y.lower(a.Process.Pid)
	if got := nice(a.Process.Pid); got != itoa(startNice) {
		t.Errorf("after lower: nice %s, want %d", got, startNice)
	}
	y.restore()
	if got := nice(a.Process.Pid); got != "0" {
		t.Errorf("after restore: nice %s, want 0", got)
	}
	y.lower(b.Process.Pid)
	if got := nice(b.Process.Pid); got != "0" {
		t.Errorf("lowered after restore: nice %s, want 0 (left as it is)", got)
	}
}

// fabricFirst runs its function on a thread at fabricNice and sets that thread back.
func TestFabricFirstRaisesItsThreadAndSetsItBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a negative nice)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	before, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	var during int
	if err := fabricFirst(func() error {
		during, err = unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if 20-during != fabricNice {
		t.Errorf("during: nice %d, want %d", 20-during, fabricNice)
	}
	after, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("after: nice %d, want %d as before", 20-after, 20-before)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
