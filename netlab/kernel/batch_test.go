package kernel

import (
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// After a failed read of a chunk's answers, a creation answered with an error fails (or
// falls back when its name was taken), one answered fine stays, and those whose answer
// was not read or that were never sent count as failed: the later phases leave their
// pairs alone.
func TestBatchFailedReadFailsUnansweredCreations(t *testing.T) {
	b := &Batch{veths: make([]batchVeth, 5)}
	chunk := []batchReq{
		{veth: 0, create: true, what: "veth 0"},
		{veth: 1, create: true, what: "veth 1"},
		{veth: 2, create: true, what: "veth 2"},
		{veth: 3, create: true, what: "veth 3"},
	}
	later := []batchReq{{veth: 4, create: true, what: "veth 4"}, {veth: -1, what: "a route"}}
	answers := []syscall.Errno{0, unix.EEXIST, unix.EPERM, 0}
	unanswered := map[uint32]int{7: 3}
	errs := b.judge(chunk, answers, unanswered)
	b.failCreations([]batchReq{chunk[3]}, later)
	if len(errs) != 1 {
		t.Errorf("errors %v, want veth 2's only", errs)
	}
	want := []batchVeth{{}, {fallback: true}, {failed: true}, {failed: true}, {failed: true}}
	for i, v := range b.veths {
		if v.fallback != want[i].fallback || v.failed != want[i].failed {
			t.Errorf("veth %d: %+v, want %+v", i, v, want[i])
		}
	}
}
