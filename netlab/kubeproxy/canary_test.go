package kubeproxy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netlabdev/netlab/netlab/iptables"
)

// The canary chains kube-proxy keeps in mangle, nat and filter: those a save lacks are
// declared inside the input's sections, and mangle, which Render never writes, gets one.
func TestMissingAndAppendCanaries(t *testing.T) {
	dump, err := iptables.Parse([]byte("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n"))
	if err != nil {
		t.Fatal(err)
	}
	missing := MissingCanaries(dump)
	if d := cmp.Diff([]string{"mangle", "filter"}, missing); d != "" {
		t.Fatalf("missing canaries (-want +got):\n%s", d)
	}
	in := "*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n"
	want := "*filter\n:KUBE-PROXY-CANARY - [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n" +
		"*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n"
	if d := cmp.Diff(want, string(AppendCanaries([]byte(in), missing))); d != "" {
		t.Errorf("input (-want +got):\n%s", d)
	}
	full, _ := iptables.Parse([]byte(want + "*nat\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n"))
	if got := MissingCanaries(full); len(got) != 0 {
		t.Errorf("every canary there, %v reported missing", got)
	}
	if got := string(AppendCanaries([]byte(in), nil)); got != in {
		t.Errorf("no canary missing changed the input:\n%s", got)
	}
}
