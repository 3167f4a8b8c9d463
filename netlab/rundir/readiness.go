package rundir

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"
)

// Readiness is where the endpoints controller keeps its record of pod readiness: what it
// last found for every pod, with when.
func (d Dir) Readiness() string { return filepath.Join(d.path, ReadinessFile) }

// RecordRefresh is how often the controller rewrites its readiness record, changed or not,
// so that a reader can tell a current record from one whose controller is gone.
const RecordRefresh = time.Second

// RecordStaleAfter is the age past which a readiness record is stale: its controller has
// missed several refreshes (stopped, stuck, or the machine is too loaded to run it), and
// readers probe the pods themselves instead.
const RecordStaleAfter = 5 * time.Second

// PodRecord is the controller's record: the readiness of every pod it probes, as it
// decided it (a pod whose node is not ready is not ready), rewritten every RecordRefresh.
type PodRecord struct {
	// Updated is when the controller wrote this record.
	Updated time.Time `json:"updated"`
	// Started is when the controller that wrote it started.
	Started time.Time `json:"started"`
	// Period is how often the controller probes each ready pod; pods that are not ready
	// are probed every FastPeriod.
	Period     string `json:"period"`
	FastPeriod string `json:"fastPeriod"`
	// Pods maps every pod of the plan the controller follows to what it found.
	Pods map[string]PodReadiness `json:"pods"`
}

// PodReadiness is one pod in the controller's record.
type PodReadiness struct {
	Ready bool `json:"ready"`
	// Probed is when the controller last had a probe result for the pod; zero until the
	// first one.
	Probed time.Time `json:"probed,omitzero"`
	// Reported is when the pod's process reported that it serves, to the up that started
	// it, when the controller took that as the pod's readiness until its first probe (as
	// Kubernetes takes a started container as ready): zero otherwise.
	Reported time.Time `json:"reported,omitzero"`
	// Since is when the pod's readiness last changed.
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// Age is how old the record is at now.
func (r *PodRecord) Age(now time.Time) time.Duration { return now.Sub(r.Updated) }

// Fresh says whether the record can be believed at now: written within RecordStaleAfter
// (and not in the future beyond a second of clock step).
func (r *PodRecord) Fresh(now time.Time) bool {
	age := r.Age(now)
	return age >= -time.Second && age <= RecordStaleAfter
}

// Pod is the controller's verdict on a pod: ok is false when the record does not know the
// pod yet (not in it, or neither probed nor reported since the controller started).
func (r *PodRecord) Pod(name string) (PodReadiness, bool) {
	pr, ok := r.Pods[name]
	return pr, ok && !pr.Checked().IsZero()
}

// Checked is when the controller last learnt of the pod's readiness: its last probe, or
// the pod's own report before the first one.
func (p PodReadiness) Checked() time.Time {
	if p.Reported.After(p.Probed) {
		return p.Reported
	}
	return p.Probed
}

// Staleness explains why a record cannot be used at now, or "" when it can.
func (r *PodRecord) Staleness(now time.Time) string {
	if r.Fresh(now) {
		return ""
	}
	if age := r.Age(now); age < 0 {
		return fmt.Sprintf("the controller's readiness record is dated %s in the future", (-age).Round(time.Millisecond))
	}
	return fmt.Sprintf("the controller's readiness record is %s old (stale after %s: is the controller running?)",
		r.Age(now).Round(100*time.Millisecond), RecordStaleAfter)
}

// WriteReadiness publishes the controller's record (mode 0600), compact: it is rewritten
// every RecordRefresh and holds every pod.
func (d Dir) WriteReadiness(r PodRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode %s: %w", ReadinessFile, err)
	}
	return WriteFileAtomic(d.Readiness(), b, 0o600)
}

// ReadReadiness reads the controller's record.
func (d Dir) ReadReadiness() (*PodRecord, error) {
	var r PodRecord
	if err := readJSON("readiness record", d.Readiness(), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Reported is what up hands the endpoints controller it starts: the pod agents that
// reported they serve (the READY line on their readiness pipe), each with its process.
// The controller takes a pod that still runs that process as ready from the start, instead
// of probing every pod of a big lab before it can report ready, and probes it later as
// any ready pod. Up removes the file once the controller is ready.
type Reported struct {
	Pods map[string]ReportedPod `json:"pods"`
}

// ReportedPod is one pod that reported it serves.
type ReportedPod struct {
	PID int `json:"pid"`
	// Start is the process's start time (clock ticks since boot), as in its pid file.
	Start string `json:"start"`
	// At is when up received the report.
	At time.Time `json:"at"`
}

// Reported is the path of up's report to the controller.
func (d Dir) Reported() string { return filepath.Join(d.path, ReportedFile) }

// WriteReported writes up's report (mode 0600).
func (d Dir) WriteReported(r Reported) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode %s: %w", ReportedFile, err)
	}
	return WriteFileAtomic(d.Reported(), b, 0o600)
}

// ReadReported reads up's report.
func (d Dir) ReadReported() (*Reported, error) {
	var r Reported
	if err := readJSON("pods' ready reports", d.Reported(), &r); err != nil {
		return nil, err
	}
	return &r, nil
}
