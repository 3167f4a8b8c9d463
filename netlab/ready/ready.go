// Package ready is how an agent tells whoever started it that it serves: it writes
// "READY\n" to the file descriptor named by NETLAB_READY_FD (when set) and closes it. It
// imports nothing but the standard library, so the small pod agent binary can use it.
package ready

import (
	"os"
	"strconv"
	"syscall"
)

// FDEnv names the environment variable holding the readiness pipe's descriptor.
const FDEnv = "NETLAB_READY_FD"

// The readiness pipe must not leak into the commands an agent runs (iptables-restore and
// the like): a child still holding it would keep `up` waiting after the agent died.
func init() {
	if fd, err := strconv.Atoi(os.Getenv(FDEnv)); err == nil && fd >= 3 {
		syscall.CloseOnExec(fd)
	}
}

// Notify tells whoever started this agent that it serves. It is a no-op when the agent
// was started by hand.
func Notify() {
	fd, err := strconv.Atoi(os.Getenv(FDEnv))
	if err != nil || fd < 3 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	if f == nil {
		return
	}
	_, _ = f.Write([]byte("READY\n"))
	_ = f.Close()
	os.Unsetenv(FDEnv)
}
