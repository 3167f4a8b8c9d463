package lab

import (
	"context"
	"sync"
	"time"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// ReadinessSource says where status took the pods' readiness from.
type ReadinessSource struct {
	// Source is "controller" when the controller's record was fresh and used, else
	// "probe": status probed every running pod itself, as the kubelet would.
	Source string `json:"source"`
	// RecordUpdated and RecordAgeMs are the controller's record's time and age when
	// status read it (absent without a record).
	RecordUpdated *time.Time `json:"recordUpdated,omitempty"`
	RecordAgeMs   *int64     `json:"recordAgeMs,omitempty"`
	// Stale says the record was too old to use (rundir.RecordStaleAfter).
	Stale bool `json:"stale"`
	// Probed counts the pods status probed itself: every running pod without a fresh
	// record, else those the record does not know yet (just added by apply) or knows only
	// from before their process started (restarted since the controller's last probe).
	Probed int `json:"probed"`
	// Note explains a fallback in words.
	Note string `json:"note,omitempty"`
}

// startSlack covers the clock tick to which a process's start time is known: a probe
// within it of the start may have reached the process before.
const startSlack = 20 * time.Millisecond

// statusProbes bounds the probes status runs at once when it probes pods itself.
const statusProbes = 16

// FillPodReadiness fills in Ready and Reason of the pods that run (todo: indexes into pods)
// from the controller's readiness record (rec, or the error reading it) when it is fresh
// at now, probing only the pods it does not know or last probed before their process
// started (started: when a pod's process started, zero if unknown); else by probing each
// of them.
func FillPodReadiness(ctx context.Context, rec *rundir.PodRecord, err error, p *plan.Plan, pods []PodStatus, todo []int,
	started func(pod string) time.Time, now time.Time) *ReadinessSource {
	src := &ReadinessSource{Source: "probe"}
	switch {
	case err != nil:
		src.Note = "no readiness record from the controller (" + err.Error() + "): pods probed by status"
	default:
		age := rec.Age(now)
		ms := age.Milliseconds()
		upd := rec.Updated
		src.RecordUpdated, src.RecordAgeMs = &upd, &ms
		if why := rec.Staleness(now); why != "" {
			src.Stale = true
			src.Note = why + ": pods probed by status"
			rec = nil
		} else {
			src.Source = "controller"
		}
	}
	var probe []int
	for _, i := range todo {
		if rec != nil {
			pr, ok := rec.Pod(pods[i].Name)
			// A pod's own report came from its process, after it started (the controller
			// checked it was this process): no slack for that.
			if at := started(pods[i].Name); ok && (at.IsZero() || pr.Probed.After(at.Add(startSlack)) || pr.Reported.After(at)) {
				pods[i].Ready, pods[i].Reason, pods[i].ReadinessFrom = pr.Ready, pr.Reason, "controller"
				continue
			}
		}
		probe = append(probe, i)
	}
	src.Probed = len(probe)
	if rec != nil && len(probe) > 0 {
		src.Note = "pods the controller has not probed since they started were probed by status"
	}
	byName := make(map[string]plan.Pod, len(p.Pods))
	for _, pod := range p.Pods {
		byName[pod.Name] = pod
	}
	slots := make(chan struct{}, statusProbes)
	var wg sync.WaitGroup
	for _, i := range probe {
		wg.Add(1)
		slots <- struct{}{}
		go func(i int) {
			defer func() { <-slots; wg.Done() }()
			pods[i].ReadinessFrom = "probe"
			if err := rundir.Probe(ctx, p, byName[pods[i].Name]); err != nil {
				pods[i].Reason = err.Error()
				return
			}
			pods[i].Ready = true
		}(i)
	}
	wg.Wait()
	return src
}
