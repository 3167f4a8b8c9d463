package supervise

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/rundir"
)

func TestBackoffShape(t *testing.T) {
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 30 * time.Second, 30 * time.Second}
	for f, w := range want {
		if got := Backoff(f); got != w {
			t.Errorf("Backoff(%d) = %s, want %s", f, got, w)
		}
	}
	if got := Backoff(1000); got != BackoffCap {
		t.Errorf("Backoff(1000) = %s, want the cap %s", got, BackoffCap)
	}
}

func TestTryLockRefusesAGoneLab(t *testing.T) {
	d := rundir.At(filepath.Join(t.TempDir(), "x"))
	if _, err := TryLock(d); err != ErrGone {
		t.Errorf("no lock file: %v, want ErrGone", err)
	}
}
