package lab_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// With a window of pods in flight smaller than the wave, and most of the wave waiting for
// the fabric to be wired, up still starts every pod: each
// answers its probe, each is in the wave's record with its live process, and status
// counts them ready. (It shows that the window does not lose pods; it does not measure
// the bound, which a pod slow to report may pass after a second.)
func TestIntegrationPodWaveSmallWindow(t *testing.T) {
	labtest.RequireRoot(t)
	defer lab.SetPodsInFlight(3)()
	defer lab.SetPodsBeforeFabric(4)() // and most of them start once the fabric is wired
	p := labtest.Up(t, "wv", labtest.Fixture(t, "twenty-pods.yaml"))
	recs, err := supervise.WaveRecords(rundir.ForLab(p.Lab))
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range p.Pods {
		if err := rundir.Probe(context.Background(), p, pod); err != nil {
			t.Errorf("pod %s: %v", pod.Name, err)
		}
		if rec, ok := recs[pod.Name]; !ok && pod.Deployment != "coredns" {
			t.Errorf("pod %s is not in the wave's record", pod.Name)
		} else if ok && !rec.Alive() {
			t.Errorf("pod %s: its recorded process %d is not alive", pod.Name, rec.PID)
		}
		// Its log, made beside the links for a pod started after them (up's
		// createPodLogs), is the one it writes to.
		if pod.Deployment == "coredns" {
			continue
		}
		if b, err := os.ReadFile(rundir.ForLab(p.Lab).Log("pod", pod.Name)); err != nil || !strings.Contains(string(b), `"msg":"pod serving"`) {
			t.Errorf("pod %s: its log does not say it serves (%v): %q", pod.Name, err, b)
		}
	}
	st, err := lab.GetStatus(context.Background(), p.Lab)
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, ps := range st.Pods {
		if ps.Ready {
			ready++
		}
	}
	if ready != len(p.Pods) || ready < 20 {
		t.Errorf("%d of %d pods ready", ready, len(p.Pods))
	}
}
