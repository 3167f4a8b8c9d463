package ingressagent

import (
	"slices"
	"testing"
)

// Worker i's CPU: the i-th the agent may run on, round again past the last; none pinned
// with fewer workers than CPUs, with one CPU, or when turned off.
func TestWorkerCPUs(t *testing.T) {
	for _, c := range []struct {
		workers int
		allowed []int
		off     bool
		want    []int
	}{
		{2, []int{0, 1}, false, []int{0, 1}},
		{2, []int{2, 5}, false, []int{2, 5}},
		{5, []int{0, 1}, false, []int{0, 1, 0, 1, 0}},
		{4, []int{0, 1, 2, 3}, false, []int{0, 1, 2, 3}},
		{2, []int{0, 1, 2, 3}, false, nil}, // fewer workers than CPUs
		{3, []int{0}, false, nil},          // one CPU
		{2, []int{0, 1}, true, nil},        // off
		{1, []int{0, 1}, false, nil},
	} {
		if got := workerCPUs(c.workers, c.allowed, c.off); !slices.Equal(got, c.want) {
			t.Errorf("workerCPUs(%d, %v, off %v) = %v, want %v", c.workers, c.allowed, c.off, got, c.want)
		}
	}
}
