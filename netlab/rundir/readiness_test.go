package rundir_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/rundir"
)

func TestReadinessRecordStaleness(t *testing.T) {
	now := time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name  string
		age   time.Duration
		fresh bool
		why   string
	}{
		{"just written", 0, true, ""},
		{"one refresh late", 2 * rundir.RecordRefresh, true, ""},
		{"at the limit", rundir.RecordStaleAfter, true, ""},
		{"past the limit", rundir.RecordStaleAfter + time.Millisecond, false, "5s old (stale after 5s: is the controller running?)"},
		{"long gone", time.Hour, false, "1h0m0s old"},
		{"clock stepped back a little", -500 * time.Millisecond, true, ""},
		{"from the future", -3 * time.Second, false, "dated 3s in the future"},
	} {
		r := &rundir.PodRecord{Updated: now.Add(-c.age)}
		if got := r.Fresh(now); got != c.fresh {
			t.Errorf("%s: Fresh = %v, want %v", c.name, got, c.fresh)
		}
		if got := r.Age(now); got != c.age {
			t.Errorf("%s: Age = %v, want %v", c.name, got, c.age)
		}
		why := r.Staleness(now)
		if (why == "") != c.fresh || !strings.Contains(why, c.why) {
			t.Errorf("%s: Staleness = %q, want it to say %q", c.name, why, c.why)
		}
	}
}

func TestReadinessRecordPod(t *testing.T) {
	now := time.Now()
	r := &rundir.PodRecord{Updated: now, Pods: map[string]rundir.PodReadiness{
		"web-1": {Ready: true, Probed: now.Add(-time.Second), Since: now.Add(-time.Minute)},
		"web-2": {Ready: false, Probed: now, Reason: "readiness: connection refused"},
		"web-3": {Ready: false}, // in the plan, not probed yet
	}}
	if pr, ok := r.Pod("web-1"); !ok || !pr.Ready {
		t.Errorf("web-1: %+v %v, want ready and known", pr, ok)
	}
	if pr, ok := r.Pod("web-2"); !ok || pr.Ready || pr.Reason == "" {
		t.Errorf("web-2: %+v %v, want not ready with its reason", pr, ok)
	}
	for _, name := range []string{"web-3", "web-4"} {
		if _, ok := r.Pod(name); ok {
			t.Errorf("%s: known, want unknown (not probed / not in the record)", name)
		}
	}
}

func TestReadReadiness(t *testing.T) {
	d := rundir.At(t.TempDir())
	if _, err := d.ReadReadiness(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	os.WriteFile(d.Readiness(), []byte("{"), 0o600)
	if _, err := d.ReadReadiness(); err == nil || !strings.Contains(err.Error(), d.Readiness()) {
		t.Errorf("bad file: %v", err)
	}
	os.WriteFile(d.Readiness(), []byte(`{"updated":"2026-11-30T20:00:00Z","period":"5s","pods":{"w-1":{"ready":true,"probed":"2026-11-30T19:59:58Z"}}}`), 0o600)
	r, err := d.ReadReadiness()
	if err != nil {
		t.Fatal(err)
	}
	if pr, ok := r.Pod("w-1"); !ok || !pr.Ready || r.Period != "5s" {
		t.Errorf("decoded %+v", r)
	}
	now := time.Now().UTC().Round(0)
	want := rundir.PodRecord{Updated: now, Period: "1s", Pods: map[string]rundir.PodReadiness{"w-2": {Ready: false, Probed: now, Reason: "refused"}}}
	if err := d.WriteReadiness(want); err != nil {
		t.Fatal(err)
	}
	if r, err = d.ReadReadiness(); err != nil || !r.Updated.Equal(now) || r.Pods["w-2"].Reason != "refused" {
		t.Errorf("read back %+v, %v", r, err)
	}
}
