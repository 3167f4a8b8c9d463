package ingressagent

import (
	"runtime"
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
