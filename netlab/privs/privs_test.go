package privs

import "testing"

// ForAgent decides the sets from an agent's command line alone, the same for the agent
// and for whoever starts it.
func TestForAgent(t *testing.T) {
	bind, admin := Mask(NetBindService), Mask(NetAdmin, NetRaw)
	cases := []struct {
		args     []string
		keep     uint64
		restrict bool
	}{
		{[]string{"agent", "pod", "--lab", "demo", "--pod", "web-1", "--port", "8080/TCP"}, 0, true},
		{[]string{"agent", "pod", "--lab", "demo", "--port", "8080/TCP", "--port", "80/TCP"}, bind, true},
		{[]string{"agent", "pod", "--port=443"}, bind, true},
		{[]string{"agent", "pod", "--port", "1024/UDP"}, 0, true},
		{[]string{"agent", "pod", "--port", "bad"}, 0, true},
		{[]string{"agent", "pod", "--port"}, 0, true},
		{[]string{"agent", "ingress", "--lab", "demo"}, bind, true},
		{[]string{"agent", "dns", "--lab", "demo"}, bind, true},
		{[]string{"agent", "kube-proxy", "--lab", "demo"}, admin, true},
		{[]string{"agent", "lb", "--lab", "demo"}, admin, true},
		{[]string{"agent", "controller", "--lab", "demo"}, 0, false},
		{[]string{"agent", "supervisor", "--lab", "demo"}, 0, false},
		{[]string{"status"}, 0, false},
		{nil, 0, false},
	}
	for _, c := range cases {
		keep, restrict := ForAgent(c.args)
		if keep != c.keep || restrict != c.restrict {
			t.Errorf("ForAgent(%q) = %#x, %v; want %#x, %v", c.args, keep, restrict, c.keep, c.restrict)
		}
	}
}

// Current (from the kernel's calls) says what /proc/self/status says.
func TestCurrentAgreesWithProcStatus(t *testing.T) {
	eff, bnd, nnp, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	weff, wbnd, wnnp, err := Of("self")
	if err != nil {
		t.Fatal(err)
	}
	if eff != weff || bnd != wbnd || nnp != wnnp {
		t.Errorf("Current = %x %x %v, /proc/self/status %x %x %v", eff, bnd, nnp, weff, wbnd, wnnp)
	}
}
