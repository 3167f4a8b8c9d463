package iptables

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSaveWithCounters(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "lb", "testdata", "save-counters.txt"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range d.Tables {
		names = append(names, tb.Name)
	}
	if d := cmp.Diff([]string{"mangle", "filter", "nat"}, names); d != "" {
		t.Errorf("tables (-want +got):\n%s", d)
	}
	f := d.Table("filter")
	if f == nil || len(f.Chains) != 6 || f.Chains[3].Name != "NETLAB-LB-FILTER" || f.Chains[3].Builtin() || !f.Chains[0].Builtin() {
		t.Fatalf("filter chains: %+v", f)
	}
	var st Rule
	for _, r := range f.Rules {
		if r.Counters.Packets == 70 {
			st = r
		}
	}
	if st.Chain != "NETLAB-ST-WV6XN3VO4UANUCRY" || st.Counters.Bytes != 5000 || !st.HasCounters || st.Op != "-A" ||
		st.Comment() != "TCP:203.0.113.100:80 172.18.0.11:80 in node-1" || st.Target() != "" ||
		!strings.HasPrefix(st.Text, "-A NETLAB-ST-WV6XN3VO4UANUCRY -d 172.18.0.11/32") {
		t.Errorf("counted rule: %+v", st)
	}
	if dport, ok := st.Option("--dport"); !ok || dport != "80" {
		t.Errorf("--dport = %q, %v", dport, ok)
	}
	if got := d.UserChains(); !slices.Contains(got, "NETLAB-LB-HASH") || slices.Contains(got, "PREROUTING") {
		t.Errorf("user chains %v", got)
	}
}

func TestParseRestoreInput(t *testing.T) {
	in := "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-A - [0:0]\n-X KUBE-SVC-OLD\n" +
		"-A KUBE-SERVICES -m comment --comment \"default/web:http cluster IP\" -d 10.96.0.10/32 -j KUBE-SVC-A\n" +
		"-I OUTPUT 1 -j KUBE-SERVICES\n-I PREROUTING -j KUBE-SERVICES\nCOMMIT\n*nat\n:KUBE-SVC-B - [0:0]\nCOMMIT\n"
	d, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"KUBE-SERVICES", "KUBE-SVC-A", "KUBE-SVC-B"}, d.ChainNames("nat")); d != "" {
		t.Errorf("chains over both nat sections (-want +got):\n%s", d)
	}
	rs := d.Tables[0].Rules
	if len(rs) != 4 || rs[0].Op != "-X" || rs[0].Chain != "KUBE-SVC-OLD" || len(rs[0].Args) != 0 {
		t.Fatalf("rules %+v", rs)
	}
	if rs[1].Comment() != "default/web:http cluster IP" || rs[1].Target() != "KUBE-SVC-A" || rs[1].Line != 5 {
		t.Errorf("rule %+v", rs[1])
	}
	if rs[2].Op != "-I" || rs[2].Pos != 1 || rs[2].Target() != "KUBE-SERVICES" || rs[3].Pos != 1 || rs[3].Chain != "PREROUTING" {
		t.Errorf("inserts %+v %+v", rs[2], rs[3])
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"*nat\n[1:x] -A FOO -j BAR\n",
		"*nat\n[1:2 -A FOO\n",
		"-A FOO -j BAR\n",
		":FOO - [0:0]\n",
		"*nat\n-Z FOO\n",
		"*nat\n-A FOO -m comment --comment \"open\n",
		"*nat\n-X FOO BAR\n",
		"*nat\n-I FOO 0 -j X\n",
		"*nat\n:FOO - [a:b]\n",
		"COMMIT\n",
	} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) accepted bad input", in)
		} else if !strings.Contains(err.Error(), "line ") {
			t.Errorf("Parse(%q): error %q names no line", in, err)
		}
	}
	// Every problem is reported, not only the first.
	_, err := Parse([]byte("*nat\n-Z A\n-Z B\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("two bad lines: %v", err)
	}
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string][]string{
		`-A X -m comment --comment "a \"b\" c" -j Y`: {"-A", "X", "-m", "comment", "--comment", `a "b" c`, "-j", "Y"},
		"-A X\t-j  Y ":           {"-A", "X", "-j", "Y"},
		`-A X --comment "" -j Y`: {"-A", "X", "--comment", "", "-j", "Y"},
	} {
		got, err := SplitWords(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
