package supervise

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// The supervisor reads only its view of the plan (rundir.SupervisorPlan): the processes it
// learns and whether each still runs are the same from the view as from the whole plan,
// for every plan the scenarios and fixtures make, and with a pod terminating.
func TestSupervisorComputesFromItsPlanView(t *testing.T) {
	d := rundir.At(t.TempDir())
	for name, b := range fixturePlanFiles(t) {
		var full plan.Plan
		if err := json.Unmarshal(b, &full); err != nil {
			t.Fatal(err)
		}
		p, err := rundir.SupervisorPlan.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(p.Processes, full.Processes) {
			t.Errorf("%s: the processes differ from the whole plan's", name)
		}
		for _, pr := range append(full.Processes, plan.Process{Role: "pod", Name: "no-such-pod"}) {
			if got, want := stillRuns(p, pr, d), stillRuns(&full, pr, d); got != want {
				t.Errorf("%s: stillRuns(%s/%s) = %v, from the whole plan %v", name, pr.Role, pr.Name, got, want)
			}
		}
	}
}

// fixturePlanFiles returns the plan file of every scenario and fixture that plans, and of
// each again with its first pod terminating.
func fixturePlanFiles(t *testing.T) map[string][]byte {
	t.Helper()
	var files []string
	for _, pattern := range []string{"../../scenarios/*.yaml", "../../testdata/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	out := map[string][]byte{}
	for _, f := range files {
		s, err := scenario.Load([]string{f})
		if err != nil || scenario.Validate(s) != nil {
			continue // a fixture of bad input
		}
		p, err := planbuild.Build(s, "")
		if err != nil {
			continue
		}
		for _, leaving := range []bool{false, true} {
			if leaving {
				if len(p.Pods) == 0 {
					continue
				}
				p.Pods[0].Terminating = true
				f += " (a pod terminating)"
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			out[f] = b
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d plans", len(out))
	}
	return out
}
