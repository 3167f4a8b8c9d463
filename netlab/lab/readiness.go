package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ReadinessFileName is the endpoints controller's record of pod readiness in the lab's
// runtime directory: what it last found for every pod, with when.
const ReadinessFileName = "readiness.json"

// ReadinessPath is where the controller of lab keeps its readiness record.
func ReadinessPath(lab string) string { return filepath.Join(Dir(lab), ReadinessFileName) }

// RecordRefresh is how often the controller rewrites its readiness record, changed or not,
// so that a reader can tell a current record from one whose controller is gone.
const RecordRefresh = time.Second

// RecordStaleAfter is the age past which a readiness record is stale: its controller has
// missed several refreshes (stopped, stuck, or the machine is too loaded to run it), and
// readers probe the pods themselves instead.
const RecordStaleAfter = 5 * time.Second

// Readiness is the controller's record: the readiness of every pod it probes, as it
// decided it (a pod whose node is not ready is not ready), rewritten every RecordRefresh.
type Readiness struct {
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
	// Since is when the pod's readiness last changed.
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// Age is how old the record is at now.
func (r *Readiness) Age(now time.Time) time.Duration { return now.Sub(r.Updated) }

// Fresh says whether the record can be believed at now: written within RecordStaleAfter
// (and not in the future beyond a second of clock step).
func (r *Readiness) Fresh(now time.Time) bool {
	age := r.Age(now)
	return age >= -time.Second && age <= RecordStaleAfter
}

// Pod is the controller's verdict on a pod: ok is false when the record does not know the
// pod yet (not in it, or not probed since the controller started).
func (r *Readiness) Pod(name string) (PodReadiness, bool) {
	pr, ok := r.Pods[name]
	return pr, ok && !pr.Probed.IsZero()
}

// Staleness explains why a record cannot be used at now, or "" when it can.
func (r *Readiness) Staleness(now time.Time) string {
	if r.Fresh(now) {
		return ""
	}
	if age := r.Age(now); age < 0 {
		return fmt.Sprintf("the controller's readiness record is dated %s in the future", (-age).Round(time.Millisecond))
	}
	return fmt.Sprintf("the controller's readiness record is %s old (stale after %s: is the controller running?)",
		r.Age(now).Round(100*time.Millisecond), RecordStaleAfter)
}

// ReadReadiness reads a readiness record.
func ReadReadiness(path string) (*Readiness, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Readiness
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &r, nil
}
