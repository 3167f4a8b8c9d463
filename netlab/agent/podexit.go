package agent

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
	"golang.org/x/sys/unix"
)

// watchPodProcess follows the process that runs pod (its pid record) through a pidfd: when
// it ends, the pod is not ready at once (a result on out) and its probe loop is kicked, so
// that it probes at the fast pace until the pod answers again. A process that ends is
// noticed when it ends, not at the next probe: the probes of ready pods are spaced
// (readyPodPeriod) without slowing a killed pod's way out of its Services. While the pod
// has no process, its record is read every fast period for the next one.
func watchPodProcess(ctx context.Context, dir rundir.Dir, pod string, fast time.Duration, out chan<- probeResult, kick chan<- struct{}) {
	last := 0
	for {
		if rec, err := supervise.ReadRecord(dir, "pod", pod); err == nil && rec.PID != last && rec.Alive() {
			last = rec.PID
			if waitExit(ctx, rec.PID) {
				select {
				case out <- probeResult{pod: pod, ready: false, err: fmt.Errorf("process %d ended (%w)", rec.PID, rundir.ErrNotRunning), at: time.Now()}:
				case <-ctx.Done():
					return
				}
				select {
				case kick <- struct{}{}:
				default:
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(fast):
		}
	}
}

// waitExit waits until process pid ends (true) or ctx does (false). Without pidfds (Linux
// before 5.3), it returns false when ctx ends.
func waitExit(ctx context.Context, pid int) bool {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		<-ctx.Done()
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd") // pollable: readable once the process ends
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		<-ctx.Done()
		return false
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Now()) })
	defer stop()
	// Each call looks whether the process has ended (the pidfd is readable, a zombie too);
	// when it has not, the runtime's poller waits for the kernel's wake-up on exit. The
	// first look matters: the poller's notice of an already readable pidfd may have come,
	// and been cleared by Read, before Read waits, and it does not come twice.
	err = rc.Read(func(fd uintptr) bool { return pidfdEnded(int(fd)) })
	return err == nil
}

// pidfdEnded reports whether the process behind pidfd fd has ended, without waiting.
func pidfdEnded(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
	}
}
