package kernel_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// CreateNetnsAll makes distinct namespaces (their mount-point files hard links of one
// another), each removable on its own; a name already taken is an error naming it, and
// the others are made all the same. Namespaces nl-kn<pid>-{a,b,c,d}; no link is made.
func TestIntegrationCreateNetnsAll(t *testing.T) {
	labtest.RequireRoot(t)
	pre := fmt.Sprintf("nl-kn%d-", os.Getpid())
	names := []string{pre + "a", pre + "b", pre + "c"}
	t.Cleanup(func() {
		for _, n := range append(names, pre+"d") {
			_ = kernel.DeleteNetns(n)
		}
	})
	if err := kernel.CreateNetnsAll(names, 2); err != nil {
		t.Fatal(err)
	}
	ids := map[uint64]string{}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Stat(kernel.NetnsPath(n), &st); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if other, dup := ids[st.Ino]; dup {
			t.Errorf("%s and %s are the same namespace (inode %d)", n, other, st.Ino)
		}
		ids[st.Ino] = n
		// IPv6 is off in it (all and default), when the kernel has IPv6.
		if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
			for _, f := range []string{"all", "default"} {
				var b []byte
				if err := kernel.Do(n, func() (err error) {
					b, err = os.ReadFile("/proc/sys/net/ipv6/conf/" + f + "/disable_ipv6")
					return err
				}); err != nil || strings.TrimSpace(string(b)) != "1" {
					t.Errorf("%s: ipv6 %s disable_ipv6 = %q, %v; want 1", n, f, b, err)
				}
			}
		}
		// A namespace of its own: its loopback can be set up without touching the others'.
		h := kernel.NewHandles()
		up, err := h.LinkUp(n, "lo")
		h.Close()
		if err != nil || up {
			t.Errorf("%s's lo: up=%v %v, want a new namespace's (down)", n, up, err)
		}
	}
	h := kernel.NewHandles()
	if err := h.LoUp(names[0]); err != nil {
		t.Fatal(err)
	}
	if up, err := h.LinkUp(names[1], "lo"); err != nil || up {
		t.Errorf("lo of %s up=%v %v after setting %s's up", names[1], up, err, names[0])
	}
	h.Close()
	// The first namespace (whose file the others link to) goes; the others stay.
	if err := kernel.DeleteNetns(names[0]); err != nil {
		t.Fatal(err)
	}
	if kernel.NetnsExists(names[0]) || !kernel.NetnsExists(names[1]) || !kernel.NetnsExists(names[2]) {
		t.Errorf("after deleting %s: exists %v %v %v, want false true true", names[0],
			kernel.NetnsExists(names[0]), kernel.NetnsExists(names[1]), kernel.NetnsExists(names[2]))
	}
	if ls, err := kernel.ListNetns(pre); err != nil || strings.Join(ls, " ") != names[1]+" "+names[2] {
		t.Errorf("ListNetns: %v %v, want %s %s", ls, err, names[1], names[2])
	}
	// A name that is taken fails, naming it; the rest are made.
	err := kernel.CreateNetnsAll([]string{names[1], pre + "d"}, 2)
	if err == nil || !strings.Contains(err.Error(), names[1]) {
		t.Errorf("creating %s again: %v, want an error naming it", names[1], err)
	}
	if !kernel.NetnsExists(pre + "d") {
		t.Errorf("%s was not made beside the taken name", pre+"d")
	}
}
