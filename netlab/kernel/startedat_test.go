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
