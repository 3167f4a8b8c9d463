package ingressagent

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// The ingress agent runs on half the processors unless told otherwise, by flag first,
// then by the GOMAXPROCS environment variable.
func TestIngressProcs(t *testing.T) {
	cur := runtime.GOMAXPROCS(0)
	t.Setenv("GOMAXPROCS", "")
	if got, want := IngressProcs(0), max(1, cur/2); got != want {
		t.Errorf("default: %d, want %d (half of %d, at least 1)", got, want, cur)
	}
	if got := IngressProcs(3); got != 3 {
		t.Errorf("--procs 3: %d", got)
	}
	t.Setenv("GOMAXPROCS", "7")
	if got := IngressProcs(0); got != cur {
		t.Errorf("with GOMAXPROCS set: %d, want the runtime's %d", got, cur)
	}
	if got := IngressProcs(2); got != 2 {
		t.Errorf("--procs 2 beats the environment: %d", got)
	}
}

// --workers: a number from 1 to 64 or auto (one per CPU); anything else is refused with
// the flag and the value named. With several workers each runs on one Go processor unless
// told otherwise.
func TestParseWorkers(t *testing.T) {
	for v, want := range map[string]int{"": 1, "1": 1, "3": 3, "64": 64, "auto": runtime.NumCPU()} {
		if got, err := ParseWorkers(v); err != nil || got != want {
			t.Errorf("--workers %q: %d %v, want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"0", "65", "-1", "two", "Auto"} {
		if _, err := ParseWorkers(v); err == nil || !strings.Contains(err.Error(), "--workers") || !strings.Contains(err.Error(), strconv.Quote(v)) {
			t.Errorf("--workers %q: %v, want an error naming the flag and the value", v, err)
		}
	}
	t.Setenv("GOMAXPROCS", "")
	if got := WorkerProcs(0, 2); got != 1 {
		t.Errorf("two workers: %d Go processors each, want 1", got)
	}
	if got := WorkerProcs(2, 2); got != 2 {
		t.Errorf("two workers, --procs 2: %d", got)
	}
	if got, want := WorkerProcs(0, 1), IngressProcs(0); got != want {
		t.Errorf("one worker: %d, want IngressProcs's %d", got, want)
	}
}
