package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Start starts cmd so that the whole process lives in the named namespace: it is forked
// from a thread that Do has switched into ns. The caller sets cmd's files and SysProcAttr.
func Start(ns string, cmd *exec.Cmd) error {
	return Do(ns, func() error { return cmd.Start() })
}

// StartConfined starts cmd as Start does (in the named namespace; ns "" is this process's
// own), but from a thread that confine has first changed for good (its capabilities,
// NoNewPrivs): the process starts with what the thread has. The thread is never handed
// back to the Go runtime, which ends it with its goroutine.
func StartConfined(ns string, cmd *exec.Cmd, confine func() error) error {
	var target netns.NsHandle = -1
	if ns != "" {
		var err error
		if target, err = netns.GetFromPath(NetnsPath(ns)); err != nil {
			return fmt.Errorf("open namespace %s: %w", ns, err)
		}
		defer target.Close()
	}
	errc := make(chan error, 1)
	goLocked(func() { // never unlocked: the thread dies with this goroutine
		if ns != "" {
			if err := netns.Set(target); err != nil {
				errc <- fmt.Errorf("setns: %w", err)
				return
			}
		}
		if err := confine(); err != nil {
			errc <- err
			return
		}
		errc <- cmd.Start()
	})
	return <-errc
}

// Run runs a command inside ns and returns its combined output.
func Run(ns string, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := Start(ns, cmd); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	if err := cmd.Wait(); err != nil {
		return out.Bytes(), fmt.Errorf("%s in %s: %w: %s", name, ns, err, bytes.TrimSpace(out.Bytes()))
	}
	return out.Bytes(), nil
}

// RunHere runs a command in this process's own namespace — for agents, which live in
// their lab namespace — and returns its standard output; a failure carries its stderr.
func RunHere(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.Bytes(), nil
}

// restoreArgs makes iptables-restore apply its input as one transaction that leaves the
// chains it does not name alone, waiting up to 5 s for the xtables lock: the only way
// netlab writes rules.
var restoreArgs = []string{"--noflush", "-w", "5"}

// saveArgs are iptables-save's arguments: -c for the counters, -t for one table.
func saveArgs(counters bool, table string) []string {
	args := []string{}
	if counters {
		args = append(args, "-c")
	}
	if table != "" {
		args = append(args, "-t", table)
	}
	return args
}

// Restore applies iptables-restore input in ns as one transaction, without flushing the
// chains it does not name.
func Restore(ns string, input []byte) error {
	_, err := Run(ns, input, "iptables-restore", restoreArgs...)
	return err
}

// Save returns iptables-save output of ns (with counters when counters is true; one
// table, or every table when table is "").
func Save(ns string, counters bool, table string) ([]byte, error) {
	return Run(ns, nil, "iptables-save", saveArgs(counters, table)...)
}

// RestoreHere is Restore in this process's own namespace, for agents.
func RestoreHere(ctx context.Context, input []byte) error {
	_, err := RunHere(ctx, input, "iptables-restore", restoreArgs...)
	return err
}

// SaveHere is Save in this process's own namespace, for agents.
func SaveHere(ctx context.Context, counters bool, table string) ([]byte, error) {
	return RunHere(ctx, nil, "iptables-save", saveArgs(counters, table)...)
}

// Terminate ends processes: SIGTERM, then SIGKILL for those still alive after grace.
// Processes that are already gone are fine. It returns as soon as the last one has ended:
// each is held by a pidfd, polled for its end (a zombie counts as ended), so neither a
// sleep between looks nor a /proc read per process and look is paid; signals go through
// the pidfd, to the process it was opened on even if its pid is reused meanwhile. Without
// pidfds (Linux before 5.3) it looks every 10 ms.
func Terminate(pids []int, grace time.Duration) {
	if len(pids) == 0 {
		return
	}
	fds := make([]unix.PollFd, 0, len(pids))
	var rest []int // pids without a pidfd
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == nil:
			fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
			_ = unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0)
		case errors.Is(err, unix.ESRCH):
			// gone already
		default:
			rest = append(rest, pid)
		}
	}
	defer func() {
		for _, f := range fds {
			unix.Close(int(f.Fd))
		}
	}()
	if len(rest) > 0 { // looked at beside the others, on the same grace
		done := make(chan struct{})
		go func() { terminatePolling(rest, grace); close(done) }()
		defer func() { <-done }()
	}
	if left := waitPidfds(fds, grace); len(left) > 0 {
		for _, f := range left {
			_ = unix.PidfdSendSignal(int(f.Fd), unix.SIGKILL, nil, 0)
		}
		waitPidfds(left, time.Second)
	}
}

// waitPidfds waits until every pidfd is readable (its process ended) or limit passes, and
// returns those of the processes still alive.
func waitPidfds(fds []unix.PollFd, limit time.Duration) []unix.PollFd {
	left := slices.Clone(fds)
	deadline := time.Now().Add(limit)
	for len(left) > 0 {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		for i := range left {
			left[i].Revents = 0
		}
		n, err := unix.Poll(left, int(wait.Milliseconds())+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			break
		}
		if n > 0 {
			left = slices.DeleteFunc(left, func(f unix.PollFd) bool { return f.Revents != 0 })
		}
	}
	return left
}

// terminatePolling is Terminate without pidfds: a look at every process left every 10 ms.
func terminatePolling(pids []int, grace time.Duration) {
	// A process is known by its pid and start time, so a pid the kernel reuses while we
	// wait is never signalled.
	starts := make(map[int]string, len(pids))
	for _, pid := range pids {
		starts[pid] = StartTime(pid)
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	// Only the processes still alive are looked at again: a thousand pods are a thousand
	// /proc reads a round, which cost as much CPU as their exits.
	left := slices.Clone(pids)
	stillAlive := func() {
		left = slices.DeleteFunc(left, func(pid int) bool { return !Alive(pid) })
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if stillAlive(); len(left) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, pid := range left {
		if st := StartTime(pid); st != "" && st == starts[pid] {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for i := 0; i < 100; i++ {
		if stillAlive(); len(left) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// AliveSince says whether pid is a live (not zombie) process that started at start
// (StartTime's clock ticks since boot): one read of /proc/PID/stat, where StartTime and
// Alive make two and a signal.
func AliveSince(pid int, start string) bool {
	f := statFields(pid)
	return len(f) > 19 && f[0] != "Z" && f[0] != "X" && f[19] == start // fields 3 (state) and 22
}

// readProc is /proc/PID/name's content (nil when pid is gone): open, read until the
// end, close, with none of os.ReadFile's stat calls; many are read in a down (every
// process's command line) or a status.
func readProc(pid int, name string) []byte {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b))
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil
		}
		if n == 0 {
			return b
		}
		b = b[:len(b)+n]
	}
}

// Alive says whether pid is a live (not zombie) process.
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b := readProc(pid, "stat")
	if b == nil {
		return false
	}
	// state is the field after the ")" of comm
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z' && b[i+2] != 'X'
	}
	return true
}

// Cmdline returns the NUL-separated argv of pid as a slice.
func Cmdline(pid int) []string {
	b := readProc(pid, "cmdline")
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// DialIn opens a connection from inside the named namespace: the socket is created on a
// thread switched into ns, and a socket stays in the namespace it was made in.
func DialIn(ns, network, addr string, timeout time.Duration) (net.Conn, error) {
	var conn net.Conn
	err := Do(ns, func() error {
		var err error
		conn, err = net.DialTimeout(network, addr, timeout)
		return err
	})
	return conn, err
}

// StartTime returns a process's start time (field 22 of /proc/<pid>/stat, in clock ticks
// since boot) as text, or "" when the process is gone.
func StartTime(pid int) string { return statField(pid, 22) }

// ParentPID is pid's parent process, 0 when pid is gone.
func ParentPID(pid int) int {
	ppid, _ := strconv.Atoi(statField(pid, 4))
	return ppid
}

// statField is field n (from 3, as proc(5) numbers them) of /proc/PID/stat, "" when the
// process is gone.
func statField(pid, n int) string {
	f := statFields(pid)
	if n < 3 || len(f) < n-2 {
		return ""
	}
	return f[n-3]
}

// statFields is /proc/PID/stat's fields from field 3 (state) on, nil when the process is
// gone: the command name before them may hold spaces and parentheses, so they are
// counted from its last ')'.
func statFields(pid int) []string {
	b := readProc(pid, "stat")
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// StartedAt is when a process started, to within a clock tick (10 ms): its start time
// in clock ticks since boot, placed on the wall clock by reading the boot-time clock and
// the wall clock together. Zero when the process is gone.
func StartedAt(pid int) time.Time {
	ticks, err := strconv.ParseInt(StartTime(pid), 10, 64)
	if err != nil {
		return time.Time{}
	}
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}
	}
	boot := now.Add(-time.Duration(ts.Nano()))
	return boot.Add(time.Duration(ticks) * time.Second / clockTicks).Round(0)
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every Linux ABI Go
// runs on.
const clockTicks = 100
