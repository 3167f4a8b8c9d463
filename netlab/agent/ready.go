package agent

import (
	"os"
	"strconv"
	"syscall"
)

// ReadyFDEnv names the environment variable holding the readiness pipe's descriptor.
const ReadyFDEnv = "NETLAB_READY_FD"

// The readiness pipe must not leak into the commands an agent runs (iptables-restore and
// the like): a child still holding it would keep `up` waiting after the agent died.
func init() {
	if fd, err := strconv.Atoi(os.Getenv(ReadyFDEnv)); err == nil && fd >= 3 {
		syscall.CloseOnExec(fd)
	}
}

// NotifyReady tells whoever started this agent that it serves. It is a no-op when the
// agent was started by hand.
func NotifyReady() {
	fd, err := strconv.Atoi(os.Getenv(ReadyFDEnv))
	if err != nil || fd < 3 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	if f == nil {
		return
	}
	_, _ = f.Write([]byte("READY\n"))
	_ = f.Close()
	os.Unsetenv(ReadyFDEnv)
}
