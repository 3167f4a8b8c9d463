// Package ready is how an agent tells whoever started it that it serves: it writes
// "READY\n" to the file descriptor named by NETLAB_READY_FD (when set) and closes it. It
// imports nothing but the standard library, so the small pod agent binary can use it.
package ready

import (
	"context"
	"os"
	"strconv"
	"syscall"
)

// FDEnv names the environment variable holding the readiness pipe's descriptor.
const FDEnv = "NETLAB_READY_FD"

// HoldFDEnv names the environment variable holding the read end of a pipe that whoever
// started the agent closes to let it go on past a point it must not pass too early (the
// controller before every pod reported, the ingress before the endpoints, the LB's first
// health checks before the nodes serve): see WaitRelease.
const HoldFDEnv = "NETLAB_HOLD_FD"

// The readiness pipe must not leak into the commands an agent runs (iptables-restore and
// the like): a child still holding it would keep `up` waiting after the agent died.
func init() {
	for _, env := range []string{FDEnv, HoldFDEnv} {
		if fd, err := strconv.Atoi(os.Getenv(env)); err == nil && fd >= 3 {
			syscall.CloseOnExec(fd)
		}
	}
}

// HoldFD returns the hold pipe's descriptor, or -1 when the agent was not started held.
func HoldFD() int {
	if fd, err := strconv.Atoi(os.Getenv(HoldFDEnv)); err == nil && fd >= 3 {
		return fd
	}
	return -1
}

// WaitRelease blocks until whoever started this agent releases it (closes its end of the
// hold pipe, or dies), or ctx ends. It returns at once when the agent was not started
// held: by hand, or restarted by the supervisor.
func WaitRelease(ctx context.Context) error {
	fd := HoldFD()
	if fd < 0 {
		return nil
	}
	os.Unsetenv(HoldFDEnv)
	f := os.NewFile(uintptr(fd), "hold")
	if f == nil {
		return nil
	}
	released := make(chan struct{})
	go func() {
		var b [1]byte
		_, _ = f.Read(b[:]) // EOF once released; a byte means the same
		_ = f.Close()
		close(released)
	}()
	select {
	case <-released:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Notify tells whoever started this agent that it serves. It is a no-op when the agent
// was started by hand. An agent started quietly (QuietStart) first gets back what its
// start went without.
func Notify() {
	endQuietStart()
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
