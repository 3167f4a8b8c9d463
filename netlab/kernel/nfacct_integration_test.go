package kernel_test

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
	"golang.org/x/sys/unix"
)

// nfacct counters live in a namespace of their own (nl-kn<pid>): made once, kept (with
// their counts) when made again, readable by name, absent elsewhere.
func TestIntegrationNFAcct(t *testing.T) {
	labtest.RequireRoot(t)
	ns := fmt.Sprintf("nl-kn%d", os.Getpid())
	if err := kernel.CreateNetns(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kernel.DeleteNetns(ns) })
	err := kernel.Do(ns, func() error {
		for range 2 { // the second time finds them there
			if err := kernel.EnsureNFAcctHere("a_pkts", "b_pkts"); err != nil {
				return err
			}
		}
		for _, name := range []string{"a_pkts", "b_pkts"} {
			if p, b, err := kernel.NFAcctHere(name); err != nil || p != 0 || b != 0 {
				return fmt.Errorf("%s: %d packets, %d bytes, %v; want a new counter", name, p, b, err)
			}
		}
		if _, _, err := kernel.NFAcctHere("c_pkts"); !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("a counter never made: %v, want ENOENT", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := kernel.NFAcctHere("a_pkts"); err == nil {
		t.Error("the namespace's counter is seen from the test's own namespace")
	}
}
