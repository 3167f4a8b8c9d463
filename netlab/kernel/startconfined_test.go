package kernel_test

import (
	"os/exec"
	"strconv"
	"testing"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/privs"
)

// A process started confined has exactly the kept capabilities and NoNewPrivs from its
// first instruction, and the threads that started it are not reused: a process started
// normally right after still has every capability.
func TestIntegrationStartConfined(t *testing.T) {
	labtest.RequireRoot(t)
	keep := privs.Mask(privs.NetBindService)
	_, full, _, err := privs.Current()
	if err != nil {
		t.Fatal(err)
	}
	status := func(confine bool) (eff, bnd uint64, nnp bool) {
		t.Helper()
		cmd := exec.Command("sleep", "30")
		if confine {
			err = kernel.StartConfined("", cmd, func() error { return privs.ConfineThread(keep) })
		} else {
			err = cmd.Start()
		}
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		eff, bnd, nnp, err := privs.Of(strconv.Itoa(cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		return eff, bnd, nnp
	}
	for i := 0; i < 20; i++ {
		if eff, bnd, nnp := status(true); eff != keep || bnd != keep || !nnp {
			t.Fatalf("confined: CapEff %#x CapBnd %#x NoNewPrivs %v, want %#x %#x true", eff, bnd, nnp, keep, keep)
		}
		if eff, bnd, nnp := status(false); bnd != full || eff == keep || nnp {
			t.Fatalf("started after a confined start: CapEff %#x CapBnd %#x NoNewPrivs %v, want the full bounding set %#x", eff, bnd, nnp, full)
		}
	}
}
