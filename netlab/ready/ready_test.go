package ready

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
)

// held sets up a hold pipe as a starter would — the agent owns its copy of the read end,
// which WaitRelease closes — and returns the starter's write end.
func held(t *testing.T) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	fd, err := syscall.Dup(int(r.Fd()))
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(HoldFDEnv, strconv.Itoa(fd))
	return w
}

func TestWaitReleaseWaitsUntilTheStarterClosesItsEnd(t *testing.T) {
	w := held(t)
	if HoldFD() < 3 {
		t.Fatalf("HoldFD() = %d with %s set", HoldFD(), HoldFDEnv)
	}
	done := make(chan error, 1)
	go func() { done <- WaitRelease(context.Background()) }()
	// The starter has not let go: nothing can have come back yet, since only the close
	// below ends the read.
	select {
	case err := <-done:
		t.Fatalf("WaitRelease returned %v before the release", err)
	default:
	}
	w.Close()
	if err := <-done; err != nil {
		t.Fatalf("WaitRelease after the release: %v", err)
	}
	if _, set := os.LookupEnv(HoldFDEnv); set {
		t.Errorf("%s still set after the release: a restart by hand would wait on a closed descriptor", HoldFDEnv)
	}
}

func TestWaitReleaseGivesUpWhenTheAgentStops(t *testing.T) {
	held(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WaitRelease(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitRelease with a stopped context = %v, want context.Canceled", err)
	}
}

func TestWaitReleaseWithoutHoldReturnsAtOnce(t *testing.T) {
	t.Setenv(HoldFDEnv, "")
	if err := WaitRelease(context.Background()); err != nil {
		t.Fatal(err)
	}
	if HoldFD() != -1 {
		t.Errorf("HoldFD() = %d without %s", HoldFD(), HoldFDEnv)
	}
}
