package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
)

const defaultFile = "../scenario/default.yaml"

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := New(&out, &errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String() + errOut.String(), err
}

func TestPlanJSONWithoutRoot(t *testing.T) {
	out, err := run(t, "plan", "-f", defaultFile, "-o", "json", "--name", "x")
	if err != nil {
		t.Fatal(err)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("plan -o json is not a plan: %v", err)
	}
	if p.Lab != "x" || len(p.Pods) != 7 || p.Pods[0].Netns != "nl-x-web-1" {
		t.Errorf("plan: lab %s, %d pods", p.Lab, len(p.Pods))
	}
}

func TestPlanRefusesBadInputListingEveryProblem(t *testing.T) {
	out, err := run(t, "plan", "-f", "testdata/bad.yaml")
	if err == nil {
		t.Fatal("plan of a bad scenario succeeded")
	}
	for _, want := range []string{
		"testdata/bad.yaml: Service default/web: spec.selector: matches no Deployment in namespace default",
		`testdata/bad.yaml: Ingress default/app: spec.rules[0].http.paths[0].backend.service.name: no Service "wbe" in namespace default`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v\n%s", want, err, out)
		}
	}
}

func TestGraph(t *testing.T) {
	out, err := run(t, "graph", "-f", defaultFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node node-1 172.18.0.11 (eth0)", "pod web-2        10.244.2.2", "default/api ClusterIP 10.96.0.12 → api-1, api-2", "kube-system/kube-dns ClusterIP 10.96.0.10 → coredns-1, coredns-2"} {
		if !strings.Contains(out, want) {
			t.Errorf("graph lacks %q:\n%s", want, out)
		}
	}
	dot, err := run(t, "graph", "-f", defaultFile, "-o", "dot")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(dot, "{") != strings.Count(dot, "}") || !strings.HasPrefix(dot, "graph ") {
		t.Errorf("dot output is not balanced:\n%s", dot)
	}
	for _, line := range strings.Split(dot, "\n") {
		if strings.Count(line, `"`)%2 != 0 {
			t.Errorf("dot line with an open quote: %q", line)
		}
	}
}

func TestPlanPrintsEveryNodesRules(t *testing.T) {
	short, err := run(t, "plan", "-f", defaultFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(short, "# kube-proxy rules on") {
		t.Error("plan prints the rules without --rules or -o wide")
	}
	wide, err := run(t, "plan", "-f", defaultFile, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	out, err := run(t, "plan", "-f", defaultFile, "--rules")
	if err != nil {
		t.Fatal(err)
	}
	if out != wide {
		t.Error("plan --rules and plan -o wide differ")
	}
	for _, node := range []string{"node-1", "node-2"} {
		if !strings.Contains(out, "# kube-proxy rules on "+node) {
			t.Errorf("plan does not print %s's rules", node)
		}
	}
	if !strings.Contains(out, "-A KUBE-SERVICES -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp -d 10.96.0.11 --dport 80 -j KUBE-SVC-") {
		t.Errorf("plan lacks the web ClusterIP rule:\n%s", out)
	}
}
