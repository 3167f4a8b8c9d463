package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// The graph of the default scenario's plan, without root: every object is drawn once, and
// svg either renders through dot or says in one line what is missing.
func TestGraphMermaidAndSVG(t *testing.T) {
	out, errOut, code := execute(t, "graph", "-f", "../scenario/default.yaml", "-o", "mermaid")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "flowchart LR\n") {
		t.Errorf("not a Mermaid flowchart:\n%s", out)
	}
	for _, want := range []string{
		`client_client["client<br>203.0.113.2"] --- wan`,
		`lb ---|"172.18.0.1"| fabric`,
		`subgraph cluster_node_1["node-1 10.244.1.0/24"]`,
		`fabric --- node_node_2`,
		`pod_web_1[["web-1<br>10.244.1.2"]]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("mermaid has no %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "subgraph") != strings.Count(out, "\n  end\n") {
		t.Errorf("unbalanced subgraphs:\n%s", out)
	}

	out, errOut, code = execute(t, "graph", "-f", "../scenario/default.yaml", "-o", "svg")
	if _, err := exec.LookPath("dot"); err != nil {
		if code == 0 || !strings.Contains(errOut, "needs Graphviz's dot") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("svg without dot: exit %d, %q", code, errOut)
		}
		return
	}
	if code != 0 || !strings.Contains(out, "<svg") || !strings.Contains(out, "172.18.0.11") {
		t.Errorf("svg: exit %d, %s\n%.200s", code, errOut, out)
	}
}
