package lab_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// Status takes the readiness of running pods from a fresh record and probes only what the
// record does not know; a stale or missing record makes it probe every running pod, and
// say why. (The probes here fail at once: the plan's namespaces do not exist.)
func TestFillPodReadiness(t *testing.T) {
	now := time.Now()
	p := &plan.Plan{Lab: "nolab", Nodes: []plan.Node{{Name: "node-1", Netns: "nl-nolab-node-1"}}}
	for _, n := range []string{"w-1", "w-2", "w-3"} {
		p.Pods = append(p.Pods, plan.Pod{Name: n, Node: "node-1", Netns: "nl-nolab-" + n, IP: "10.244.1.9/24",
			Probe: plan.Probe{Type: "tcp", Port: 8080}})
	}
	fresh := &rundir.PodRecord{Updated: now.Add(-time.Second), Pods: map[string]rundir.PodReadiness{
		"w-1": {Ready: true, Probed: now.Add(-2 * time.Second)},
		"w-2": {Ready: false, Probed: now.Add(-2 * time.Second), Reason: "readiness: refused"},
	}}
	unknown := func(string) time.Time { return time.Time{} }
	pods := func() []lab.PodStatus {
		return []lab.PodStatus{{Name: "w-1"}, {Name: "w-2"}, {Name: "w-3"}}
	}

	ps := pods()
	src := lab.FillPodReadiness(context.Background(), fresh, nil, p, ps, []int{0, 1, 2}, unknown, now)
	if src.Source != "controller" || src.Stale || src.Probed != 1 || src.RecordAgeMs == nil || *src.RecordAgeMs != 1000 {
		t.Errorf("fresh record: source %+v", src)
	}
	if !ps[0].Ready || ps[0].ReadinessFrom != "controller" {
		t.Errorf("w-1: %+v", ps[0])
	}
	if ps[1].Ready || ps[1].Reason != "readiness: refused" || ps[1].ReadinessFrom != "controller" {
		t.Errorf("w-2: %+v", ps[1])
	}
	if ps[2].Ready || ps[2].ReadinessFrom != "probe" || ps[2].Reason == "" {
		t.Errorf("w-3 (not in the record): %+v", ps[2])
	}

	// Only the pods that run are looked at.
	ps = pods()
	src = lab.FillPodReadiness(context.Background(), fresh, nil, p, ps, []int{0}, unknown, now)
	if src.Probed != 0 || ps[1].ReadinessFrom != "" || ps[2].ReadinessFrom != "" {
		t.Errorf("todo [0]: %+v %+v", src, ps)
	}

	// w-2 restarted after the controller's last probe: its verdict is about the old
	// process, so status probes the new one; w-1's process is older than its probe.
	ps = pods()
	started := map[string]time.Time{"w-1": now.Add(-time.Minute), "w-2": now.Add(-time.Second)}
	src = lab.FillPodReadiness(context.Background(), fresh, nil, p, ps, []int{0, 1}, func(n string) time.Time { return started[n] }, now)
	if src.Probed != 1 || ps[0].ReadinessFrom != "controller" || ps[1].ReadinessFrom != "probe" {
		t.Errorf("restarted pod: %+v %+v", src, ps)
	}

	// A pod the controller took as ready from its own report (not probed yet) counts as
	// known when the report is newer than the pod's process, however close to its start;
	// an older report is about an earlier process.
	reported := &rundir.PodRecord{Updated: now.Add(-time.Second), Pods: map[string]rundir.PodReadiness{
		"w-1": {Ready: true, Reported: now.Add(-time.Minute + 5*time.Millisecond)},
		"w-2": {Ready: true, Reported: now.Add(-2 * time.Second)},
	}}
	ps = pods()
	started = map[string]time.Time{"w-1": now.Add(-time.Minute), "w-2": now.Add(-time.Second)}
	src = lab.FillPodReadiness(context.Background(), reported, nil, p, ps, []int{0, 1}, func(n string) time.Time { return started[n] }, now)
	if src.Probed != 1 || !ps[0].Ready || ps[0].ReadinessFrom != "controller" || ps[1].ReadinessFrom != "probe" {
		t.Errorf("reported pods: %+v %+v", src, ps)
	}

	stale := &rundir.PodRecord{Updated: now.Add(-time.Minute), Pods: fresh.Pods}
	ps = pods()
	src = lab.FillPodReadiness(context.Background(), stale, nil, p, ps, []int{0, 1, 2}, unknown, now)
	if src.Source != "probe" || !src.Stale || src.Probed != 3 || !strings.Contains(src.Note, "1m0s old") {
		t.Errorf("stale record: %+v", src)
	}
	for _, s := range ps {
		if s.Ready || s.ReadinessFrom != "probe" {
			t.Errorf("stale record: %+v, want probed (and failing)", s)
		}
	}

	ps = pods()
	src = lab.FillPodReadiness(context.Background(), nil, os.ErrNotExist, p, ps, []int{0, 1, 2}, unknown, now)
	if src.Source != "probe" || src.Stale || src.Probed != 3 || src.RecordAgeMs != nil || !strings.Contains(src.Note, "no readiness record") {
		t.Errorf("no record: %+v", src)
	}
}
