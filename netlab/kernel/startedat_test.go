package kernel

import (
	"os"
	"testing"
	"time"
)

func TestStartedAt(t *testing.T) {
	got := StartedAt(os.Getpid())
	if got.IsZero() {
		t.Fatal("no start time for this process")
	}
	// This test process started before now, and not long before.
	if now := time.Now(); got.After(now.Add(20*time.Millisecond)) || got.Before(now.Add(-10*time.Minute)) {
		t.Errorf("StartedAt = %v, now %v", got, now)
	}
	if !StartedAt(-1).IsZero() {
		t.Error("a pid that does not exist has a start time")
	}
}

func TestParentPID(t *testing.T) {
	if got, want := ParentPID(os.Getpid()), os.Getppid(); got != want {
		t.Errorf("ParentPID(self) = %d, want %d", got, want)
	}
	if got := ParentPID(-1); got != 0 {
		t.Errorf("ParentPID of no process = %d", got)
	}
}
