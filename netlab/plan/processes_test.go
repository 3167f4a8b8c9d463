package plan

import (
	"slices"
	"testing"
)

// The ingress agent of every node gets --workers when the lab asks for more than one
// worker process, and not otherwise (one process: the command line of before).
func TestIngressProcessesWorkers(t *testing.T) {
	for _, tc := range []struct {
		workers string
		want    []string // the arguments after the node's name and ports
	}{
		{"", nil},
		{"1", nil},
		{"2", []string{"--workers", "2"}},
		{"auto", []string{"--workers", "auto"}},
	} {
		p := &Plan{Lab: "t", Nodes: []Node{{Name: "node-1", Netns: "nl-t-node-1"}, {Name: "node-2", Netns: "nl-t-node-2"}},
			Ingress: IngressConfig{Workers: tc.workers}}
		procs := ingressProcesses(p)
		if len(procs) != 2 {
			t.Fatalf("workers %q: %d ingress processes, want one per node", tc.workers, len(procs))
		}
		for _, pr := range procs {
			base := []string{"agent", "ingress", "--lab", "t", "--node", pr.Name}
			if want := append(base, tc.want...); !slices.Equal(pr.Args, want) {
				t.Errorf("workers %q: %v, want %v", tc.workers, pr.Args, want)
			}
		}
	}
}
