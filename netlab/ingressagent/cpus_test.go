package ingressagent

import (
	"bytes"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Worker i's CPU: the i-th the agent may run on, round again past the last; none pinned
// with fewer workers than CPUs, with one CPU, or when turned off.
func TestWorkerCPUs(t *testing.T) {
	for _, c := range []struct {
		workers int
		allowed []int
		off     bool
		want    []int
	}{
		{2, []int{0, 1}, false, []int{0, 1}},
		{2, []int{2, 5}, false, []int{2, 5}},
		{5, []int{0, 1}, false, []int{0, 1, 0, 1, 0}},
		{4, []int{0, 1, 2, 3}, false, []int{0, 1, 2, 3}},
		{2, []int{0, 1, 2, 3}, false, nil}, // fewer workers than CPUs
		{3, []int{0}, false, nil},          // one CPU
		{2, []int{0, 1}, true, nil},        // off
		{1, []int{0, 1}, false, nil},
	} {
		if got := workerCPUs(c.workers, c.allowed, c.off); !slices.Equal(got, c.want) {
			t.Errorf("workerCPUs(%d, %v, off %v) = %v, want %v", c.workers, c.allowed, c.off, got, c.want)
		}
	}
}

// NETLAB_INGRESS_CPU_AFFINITY: off in its usual spellings, on when unset or on; any other
// value leaves the workers pinned and says so.
func TestParseAffinity(t *testing.T) {
	for v, off := range map[string]bool{"": false, "on": false, "ON": false, "1": false, "true": false, "yes": false,
		"off": true, "Off": true, " OFF ": true, "0": true, "false": true, "no": true} {
		got, err := parseAffinity(v)
		if err != nil || got != off {
			t.Errorf("parseAffinity(%q) = %v, %v; want %v, nil", v, got, err, off)
		}
	}
	for _, v := range []string{"disabled", "none", "2"} {
		got, err := parseAffinity(v)
		if err == nil || got {
			t.Errorf("parseAffinity(%q) = %v, %v; want on with an error", v, got, err)
		} else if !strings.Contains(err.Error(), CPUAffinityEnv) || !strings.Contains(err.Error(), v) {
			t.Errorf("parseAffinity(%q)'s error %q names neither the variable nor the value", v, err)
		}
	}
}

// threadCPUs is the affinity of the calling thread.
func threadCPUs(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	return cpuList(&set)
}

// childCPUs runs cat on /proc/self/status through start and returns its Cpus_allowed_list.
func childCPUs(t *testing.T, start func(*exec.Cmd) error) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command("cat", "/proc/self/status")
	cmd.Stdout = &out
	if err := start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return statusCPUs(t, out.String())
}

// statusCPUs is the Cpus_allowed_list of a /proc/PID/status text.
func statusCPUs(t *testing.T, status string) string {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no Cpus_allowed_list in %q", status)
	return ""
}

// pinTestThread locks the test's goroutine to its thread and runs that thread on the
// first CPU this process may run on, until the test ends; it returns those CPUs (the
// test is skipped with fewer than two).
func pinTestThread(t *testing.T) []int {
	t.Helper()
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	allowed := threadCPUs(t)
	if len(allowed) < 2 {
		t.Skipf("needs two CPUs, this thread may run on %v", allowed)
	}
	var all, one unix.CPUSet
	for _, c := range allowed {
		all.Set(c)
	}
	one.Set(allowed[0])
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.SchedSetaffinity(0, &all) })
	return allowed
}

// A worker started from a thread pinned to one CPU (worker 1's, once it pinned every
// thread of its process) begins on the CPUs it is started on, and the starting thread
// keeps its own.
func TestStartOnGivesTheChildItsCPUs(t *testing.T) {
	allowed := pinTestThread(t)

	// startOn locks the calling goroutine to its thread, here this one's: the one pinned to
	// allowed[0].
	if got, want := childCPUs(t, func(c *exec.Cmd) error { return startOn(c, allowed) }), cpuListText(allowed); got != want {
		t.Errorf("child started with startOn(%v) runs on %s, want %s", allowed, got, want)
	}
	if got := threadCPUs(t); !slices.Equal(got, allowed[:1]) {
		t.Errorf("after startOn the starting thread runs on %v, want %v", got, allowed[:1])
	}
	if got, want := childCPUs(t, func(c *exec.Cmd) error { return startOn(c, nil) }), cpuListText(allowed[:1]); got != want {
		t.Errorf("child started with startOn(nil) runs on %s, want its starter's %s", got, want)
	}
}

// cpuListText is a CPU list as /proc's Cpus_allowed_list writes it (ranges: 0-3,5).
func cpuListText(cpus []int) string {
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(cpus[i]))
		} else {
			parts = append(parts, strconv.Itoa(cpus[i])+"-"+strconv.Itoa(cpus[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// A pin that fails (a CPU this process may not run on) changes nothing: every thread keeps
// its CPUs and the listener stays unmarked.
func TestPinWorkerFailureChangesNothing(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	before, err := allowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for slices.Contains(before, bad) {
		bad++
	}
	if _, err := pinWorker(bad, ln); err == nil {
		t.Fatalf("pinWorker(%d) on a process that may run on %v: no error", bad, before)
	}
	if after, _ := allowedCPUs(); !slices.Equal(after, before) {
		t.Errorf("after a failed pin this process runs on %v, want %v", after, before)
	}
	rc, err := ln.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mark int
	var gerr error
	if err := rc.Control(func(fd uintptr) { mark, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_INCOMING_CPU) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if mark != -1 {
		t.Errorf("after a failed pin the listener's SO_INCOMING_CPU is %d, want -1 (unset)", mark)
	}
}

// A worker the group starts from a thread on worker 1's CPU (a restart, once worker 1
// pinned every thread of its process) begins on every CPU the agent may run on; unpinned
// (worker 1's pin failed), it begins as its starter's thread is.
func TestSpawnStartsAWorkerOnEveryAllowedCPU(t *testing.T) {
	allowed := pinTestThread(t)

	var out bytes.Buffer
	g := &workerGroup{cpus: allowed, allowed: allowed, command: func(int) *exec.Cmd {
		out.Reset()
		cmd := exec.Command("cat", "/proc/self/status")
		cmd.Stdout = &out
		return cmd
	}}
	startedOn := func() string {
		t.Helper()
		w, cmd, err := g.spawn(2)
		if err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		_ = w.ctl.c.Close()
		return statusCPUs(t, out.String())
	}
	if got, want := startedOn(), cpuListText(allowed); got != want {
		t.Errorf("worker started by a pinned group from a thread on CPU %d begins on %s, want %s", allowed[0], got, want)
	}
	g.unpin()
	if got, want := startedOn(), cpuListText(allowed[:1]); got != want {
		t.Errorf("worker started by an unpinned group begins on %s, want its starter's %s", got, want)
	}
}
