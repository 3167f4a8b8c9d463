package agent

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// waitExit sees a process end when it ends — a zombie (not yet reaped) is ended too — and
// gives up when its context does.
func TestWaitExit(t *testing.T) {
	start := func() *exec.Cmd {
		t.Helper()
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	wait := func(ctx context.Context, pid int) <-chan bool {
		out := make(chan bool, 1)
		go func() { out <- waitExit(ctx, pid) }()
		return out
	}
	result := func(c <-chan bool, what string) bool {
		t.Helper()
		select {
		case v := <-c:
			return v
		case <-time.After(10 * time.Second): // a bound on a hang, not a timing
			t.Fatalf("waitExit did not return: %s", what)
			return false
		}
	}

	// Ends while watched (and stays a zombie: nobody reaps it yet).
	cmd := start()
	done := wait(context.Background(), cmd.Process.Pid)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if !result(done, "a process killed while watched") {
		t.Error("waitExit = false for a process that ended")
	}
	// Already ended (a zombie) when watched.
	if !result(wait(context.Background(), cmd.Process.Pid), "a zombie") {
		t.Error("waitExit = false for a zombie")
	}
	// Already ended, many times over: the poller's one notice of a readable pidfd can come
	// before waitExit waits, and must not be lost (it hung once in CI).
	for i := 0; i < 200; i++ {
		if !result(wait(context.Background(), cmd.Process.Pid), "a zombie, watched again") {
			t.Fatal("waitExit = false for a zombie")
		}
	}
	// Still running: the context ends the wait.
	alive := start()
	ctx, cancel := context.WithCancel(context.Background())
	done = wait(ctx, alive.Process.Pid)
	cancel()
	if result(done, "a cancelled wait") {
		t.Error("waitExit = true for a process that still runs")
	}
}
