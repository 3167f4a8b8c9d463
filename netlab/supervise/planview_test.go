package supervise

import (
	"testing"

	"github.com/netlabdev/netlab/netlab/internal/planviewtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// The supervisor reads only its view of the plan (rundir.SupervisorPlan): the processes it
// learns and whether each still runs are the same from the view as from the whole plan,
// on every fixture plan (and variants), and each part of the view counts.
func TestSupervisorComputesFromItsPlanView(t *testing.T) {
	d := rundir.At(t.TempDir())
	planviewtest.Check(t, map[string]planviewtest.Role{
		"supervisor": {View: rundir.SupervisorPlan, Compute: func(p, full *plan.Plan) []any {
			out := []any{p.Processes}
			for _, pr := range append(full.Processes, plan.Process{Role: "pod", Name: "no-such-pod"}) {
				out = append(out, stillRuns(p, pr, d))
			}
			return out
		}},
	})
}
