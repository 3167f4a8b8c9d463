package kernel

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// SetAutogroupNice sets the nice value of the scheduling group (autogroup) of pid's
// session, as `echo N > /proc/PID/autogroup` does: with the kernel's autogroups on, every
// session is a group weighed against the others by that value. A lower value than the
// group has needs CAP_SYS_NICE.
func SetAutogroupNice(pid, nice int) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/autogroup", pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(strconv.Itoa(nice)))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// AtThreadNice runs fn on the calling goroutine's thread, locked to it, at the given nice
// value (setpriority of the thread alone), and sets the thread back before handing it
// back to the Go runtime. Where the value cannot be set (no CAP_SYS_NICE for a negative
// one) fn runs as it would anyway.
func AtThreadNice(nice int, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	old, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil || unix.Setpriority(unix.PRIO_PROCESS, tid, nice) != nil {
		return fn()
	}
	// The raw getpriority value is 20 - nice (golang.org/x/sys/unix returns it as is).
	defer unix.Setpriority(unix.PRIO_PROCESS, tid, 20-old)
	return fn()
}
