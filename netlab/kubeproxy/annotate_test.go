package kubeproxy

import (
	"fmt"
	"strings"
	"testing"
)

// withCounters turns iptables-restore input into `iptables-save -c` output: rule i gets
// i packets and 60*i bytes; a rule of the host's own is added at the end of the last table.
func withCounters(restore []byte) []byte {
	var b strings.Builder
	i := 0
	for line := range strings.Lines(string(restore)) {
		if strings.HasPrefix(line, "-A ") {
			i++
			fmt.Fprintf(&b, "[%d:%d] %s", i, 60*i, line)
			continue
		}
		b.WriteString(line)
	}
	out := strings.TrimSuffix(b.String(), "COMMIT\n")
	return []byte(out + "[7:420] -A OUTPUT -d 192.0.2.1/32 -j ACCEPT\nCOMMIT\n")
}

func TestAnnotate(t *testing.T) {
	ports := fixturePorts()
	save := withCounters(Render(node1, ports, nil)) // filter, then nat
	rules, err := Annotate("nat", save, ports, RuleFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatal("no rules annotated")
	}
	sep := SEPChain("default/web:http", "TCP", web1+":8080")
	var found bool
	for i, r := range rules {
		if r.Table != "nat" || !strings.HasPrefix(r.Rule, "-A "+r.Chain+" ") {
			t.Errorf("rule %d: table %q chain %q rule %q", i, r.Table, r.Chain, r.Rule)
		}
		if r.Bytes != 60*r.Packets || r.Packets == 0 {
			t.Errorf("rule %d: counters %d:%d not read", i, r.Packets, r.Bytes)
		}
		if strings.Contains(r.Rule, "192.0.2.1") {
			t.Errorf("a rule that is not kube-proxy's is shown without All: %s", r.Rule)
		}
		if r.Chain == sep && strings.Contains(r.Rule, "DNAT") {
			found = true
			if r.Service != "default/web" || r.Note != "default/web:http: endpoint web-1 10.244.1.2:8080 on node-1 (ready)" {
				t.Errorf("endpoint rule annotated %q / %q", r.Service, r.Note)
			}
		}
	}
	if !found {
		t.Errorf("no DNAT rule in %s", sep)
	}

	all, _ := Annotate("nat", save, ports, RuleFilter{All: true})
	if len(all) != len(rules)+1 || all[len(all)-1].Chain != "OUTPUT" || all[len(all)-1].Packets != 7 {
		t.Errorf("All: %d rules, want %d with the host's own last", len(all), len(rules)+1)
	}

	api, _ := Annotate("nat", save, ports, RuleFilter{Service: "api"})
	if len(api) == 0 {
		t.Fatal("no rule of Service api")
	}
	for _, r := range api {
		if r.Service != "default/api" && !strings.Contains(r.Rule, `"default/api`) {
			t.Errorf("--service api keeps a rule of %q: %s", r.Service, r.Rule)
		}
	}
	if got, _ := Annotate("nat", save, ports, RuleFilter{Service: "kube-system/api"}); len(got) != 0 {
		t.Errorf("NAMESPACE/NAME of another namespace matched %d rules", len(got))
	}
	if _, err := Annotate("nat", []byte("[1:2] -A X -j Y\n"), ports, RuleFilter{}); err == nil {
		t.Error("a rule outside a table was accepted")
	}
}

func TestServiceMatches(t *testing.T) {
	for _, c := range []struct {
		svc, want string
		ok        bool
	}{
		{"default/web", "", true}, {"default/web", "web", true}, {"default/web", "default/web", true},
		{"default/web", "other/web", false}, {"default/web", "we", false},
	} {
		if got := ServiceMatches(c.svc, c.want); got != c.ok {
			t.Errorf("ServiceMatches(%q, %q) = %v", c.svc, c.want, got)
		}
	}
}
