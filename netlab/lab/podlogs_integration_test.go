package lab_test

import (
	"os"
	"slices"
	"testing"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// Up makes the log files of the pods that start after the fabric beside the links: each is
// the file the supervisor opens for that pod (the same path, owner-only like the
// supervisor's), one a pod's start made first is left as it is and not reported as made,
// and a rolled-back up's removal takes only the made files still empty. No namespace is
// made: root is needed for the lab's log directory under /run.
func TestIntegrationPodLogsMadeAhead(t *testing.T) {
	labtest.RequireRoot(t)
	const beside = 1
	defer lab.SetPodsBeforeFabric(beside)()
	p := labtest.Plan(t, "plog", "")
	d := rundir.ForLab(p.Lab)
	if err := os.MkdirAll(d.Logs(), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d.Logs()) })

	var early, ahead []string // pod processes in plan order: DNS pods, then echo pods
	for _, pr := range p.Processes {
		if pr.Role != "pod" {
			continue
		}
		if len(pr.Args) >= 2 && pr.Args[1] == "dns" {
			early = append(early, pr.Name)
		} else {
			ahead = append(ahead, pr.Name)
		}
	}
	if len(ahead) < beside+3 {
		t.Fatalf("the default plan has %d echo pods; the test needs %d", len(ahead), beside+3)
	}
	started := ahead[:beside] // start beside the links: their starts make their logs
	ahead = ahead[beside:]    // wait for the fabric: up makes their logs
	first := ahead[0]         // a pod whose start was first (a restart by the supervisor)
	const firstLine = "{\"msg\":\"pod serving\"}\n"
	if err := os.WriteFile(d.Log("pod", first), []byte(firstLine), 0o600); err != nil {
		t.Fatal(err)
	}

	made, err := lab.CreatePodLogs(p)
	if err != nil {
		t.Fatalf("createPodLogs: %v", err)
	}
	for _, name := range slices.Concat(early, started) {
		if _, err := os.Stat(d.Log("pod", name)); !os.IsNotExist(err) {
			t.Errorf("pod %s starts before the fabric, but up made its log (%v)", name, err)
		}
	}
	for _, name := range ahead {
		path := d.Log("pod", name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("pod %s waits for the fabric: no log at the supervisor's path: %v", name, err)
			continue
		}
		if fi.Mode() != 0o600 {
			t.Errorf("pod %s: log mode %v, want -rw------- as the supervisor opens it", name, fi.Mode())
		}
		if name == first {
			if slices.Contains(made, path) {
				t.Errorf("pod %s's log was there first, but is reported as made", name)
			}
			if b, _ := os.ReadFile(path); string(b) != firstLine {
				t.Errorf("pod %s's log was there first, but now holds %q", name, b)
			}
		} else if !slices.Contains(made, path) {
			t.Errorf("pod %s's log %s is not reported as made: %q", name, path, made)
		}
	}
	if len(made) != len(ahead)-1 {
		t.Errorf("%d logs reported as made, want %d: %q", len(made), len(ahead)-1, made)
	}

	// A rollback: one made log was written to (its pod started), the others stay empty.
	written := d.Log("pod", ahead[1])
	if err := os.WriteFile(written, []byte(firstLine), 0o600); err != nil {
		t.Fatal(err)
	}
	lab.RemoveEmpty(made)
	for _, name := range ahead {
		_, err := os.Stat(d.Log("pod", name))
		switch keep := name == first || d.Log("pod", name) == written; {
		case keep && err != nil:
			t.Errorf("pod %s's log has lines, but the rollback removed it: %v", name, err)
		case !keep && !os.IsNotExist(err):
			t.Errorf("pod %s's log is empty, but the rollback left it (%v)", name, err)
		}
	}
}
