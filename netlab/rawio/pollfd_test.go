//go:build linux && go1.26 && !go1.27

package rawio

import (
	"testing"
	"time"
	"unsafe"
)

// wallStepped is now as time.Now would read it had the wall clock stepped by step (whole
// seconds) while the monotonic clock went on: same monotonic reading, wall reading moved.
// It writes time.Time's fields of this Go release (wall: the monotonic flag, 33 bits of
// seconds since 1885 and 30 of nanoseconds; ext: the monotonic reading) and checks the
// result, so that another layout skips the test instead of testing nothing.
func wallStepped(t *testing.T, now time.Time, step time.Duration) time.Time {
	t.Helper()
	type timeFields struct {
		wall uint64
		ext  int64
		loc  *time.Location
	}
	s := now
	f := (*timeFields)(unsafe.Pointer(&s))
	f.wall += uint64(int64(step/time.Second)) << 30
	if s.Sub(now) != 0 || !s.Round(0).Equal(now.Round(0).Add(step)) {
		t.Skipf("time.Time's layout is not the one this test knows (%v from %v)", s, now)
	}
	return s
}

// Deadlines stored before the poller's registration are on the monotonic clock: a step of
// the wall clock between SetDeadline and the registration (or before the SetDeadline)
// neither stretches nor shortens them. (Kept as Unix ns, a step back by an hour made a
// 10 s deadline an hour and 10 s.)
func TestMonoDeadlineWallStep(t *testing.T) {
	now := time.Now()
	dl := now.Add(10 * time.Second)
	for _, step := range []time.Duration{-time.Hour, time.Hour} {
		d := monoDeadline(dl, now)
		later := wallStepped(t, now.Add(time.Second), step) // registered a second later
		if left := relDeadline(d, monoNow(later)); left != int64(9*time.Second) {
			t.Errorf("wall clock stepped by %v after SetDeadline: %v left at the registration; want 9s", step, time.Duration(left))
		}
		if passed(d) {
			t.Errorf("wall clock stepped by %v: deadline 10s ahead passed", step)
		}
		// The deadline made before a step and set after it.
		set := wallStepped(t, now.Add(time.Second), step)
		if left := relDeadline(monoDeadline(dl, set), monoNow(set)); left != int64(9*time.Second) {
			t.Errorf("deadline set after a wall step of %v: %v left; want 9s", step, time.Duration(left))
		}
	}
	// A deadline without a monotonic reading is measured by the wall clock as it reads
	// when it is set, as net's t.Sub(time.Now()).
	if a, b := monoDeadline(dl.Round(0), now), monoDeadline(dl, now); a != b {
		t.Errorf("deadline without its monotonic reading: %d; want %d", a, b)
	}
	if d := monoDeadline(time.Unix(1, 0), now); d != -1 || !passed(d) {
		t.Errorf("a deadline long ago: %d (passed %v); want -1, passed", d, passed(d))
	}
	if d := monoDeadline(time.Unix(1<<62, 0), now); d <= monoNow(now) || passed(d) {
		t.Errorf("a deadline far ahead: %d (passed %v); want ahead, not passed", d, passed(d))
	}
}
