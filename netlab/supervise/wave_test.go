package supervise_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// A pod up started in its wave is found by its entry in the wave record; once it has a
// pid file of its own (started again), that file is what counts; a new wave record is read
// anew; a pod in neither has no record.
func TestWaveRecords(t *testing.T) {
	d := rundir.At(t.TempDir())
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if err := supervise.WriteWaveRecords(d, map[string]supervise.Record{
		"web-1": {PID: 101, Start: "11", Started: at},
		"web-2": {PID: 102, Start: "12", Started: at},
	}); err != nil {
		t.Fatal(err)
	}
	if r, err := supervise.ReadRecord(d, "pod", "web-1"); err != nil || r.PID != 101 || r.Start != "11" {
		t.Errorf("web-1 from the wave: %+v, %v", r, err)
	}
	if _, err := supervise.ReadRecord(d, "pod", "web-3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("web-3, in no record: %v, want not exist", err)
	}
	if _, err := supervise.ReadRecord(d, "ingress", "web-1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("another role's agent of that name: %v, want not exist", err)
	}
	if err := supervise.WriteRecord(d, "pod", "web-1", supervise.Record{PID: 201, Start: "21", Restarts: 1, Started: at}); err != nil {
		t.Fatal(err)
	}
	if r, err := supervise.ReadRecord(d, "pod", "web-1"); err != nil || r.PID != 201 || r.Restarts != 1 {
		t.Errorf("web-1 started again: %+v, %v", r, err)
	}
	if err := supervise.WriteWaveRecords(d, map[string]supervise.Record{"web-2": {PID: 302, Start: "32", Started: at}}); err != nil {
		t.Fatal(err)
	}
	if r, err := supervise.ReadRecord(d, "pod", "web-2"); err != nil || r.PID != 302 {
		t.Errorf("web-2 from the new wave record: %+v, %v", r, err)
	}
	recs, err := supervise.WaveRecords(d)
	if err != nil || len(recs) != 1 || recs["web-2"].PID != 302 {
		t.Errorf("WaveRecords = %v, %v", recs, err)
	}
}
