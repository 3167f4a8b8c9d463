package labtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// failedTB is a test that has failed, whose log lines Remove writes are kept to look at;
// errors still go to the real test.
type failedTB struct {
	testing.TB
	logs []string
}

func (f *failedTB) Failed() bool { return true }
func (f *failedTB) Helper()      {}
func (f *failedTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}

// upLab brings the default lab up outside Up, so that the test decides how it goes down.
func upLab(t *testing.T, prefix string) *plan.Plan {
	t.Helper()
	p := labtest.Plan(t, prefix, "")
	t.Cleanup(func() { // a second down is a no-op; it is there for a test that stops early
		_ = lab.Down(p.Lab, nil)
		_ = lab.PurgeLogs(p.Lab)
	})
	if err := lab.Up(context.Background(), p, lab.Options{Binary: labtest.Binary(t), ReadyTimeout: 30 * time.Second}); err != nil {
		t.Fatalf("up: %v", err)
	}
	return p
}

func exportsOf(labName string) []string {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "netlab-"+labName+"-*"))
	return dirs
}

// A failed test's lab goes down and leaves nothing: the tails of its agent logs are in the
// test's output, its logs are purged, nothing is exported. NETLAB_KEEP_LOGS=1 keeps the
// logs and an export instead.
func TestIntegrationRemoveFailed(t *testing.T) {
	labtest.RequireRoot(t)
	t.Run("purged", func(t *testing.T) {
		t.Setenv(labtest.KeepLogsEnv, "")
		p := upLab(t, "h2rm")
		f := &failedTB{TB: t}
		labtest.Remove(f, p.Lab)
		out := strings.Join(f.logs, "\n")
		if !strings.Contains(out, "log kube-proxy-node-1.log") || !strings.Contains(out, "log controller-controller.log") {
			t.Errorf("no tails of the agent logs in the failed test's output:\n%s", out)
		}
		if _, err := os.Stat(rundir.ForLab(p.Lab).Logs()); !os.IsNotExist(err) {
			t.Errorf("the logs of %s are left in %s (%v)", p.Lab, rundir.ForLab(p.Lab).Logs(), err)
		}
		if dirs := exportsOf(p.Lab); len(dirs) > 0 {
			t.Errorf("exports left: %v", dirs)
		}
		if left, _ := kernel.ListNetns(plan.NetnsName(p.Lab, "")); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
		}
	})
	t.Run("kept", func(t *testing.T) {
		t.Setenv(labtest.KeepLogsEnv, "1")
		p := upLab(t, "h2kp")
		t.Cleanup(func() {
			for _, d := range exportsOf(p.Lab) {
				os.RemoveAll(d)
			}
		})
		f := &failedTB{TB: t}
		labtest.Remove(f, p.Lab)
		if _, err := os.Stat(filepath.Join(rundir.ForLab(p.Lab).Logs(), "controller-controller.log")); err != nil {
			t.Errorf("NETLAB_KEEP_LOGS=1: the controller's log is gone: %v", err)
		}
		dirs := exportsOf(p.Lab)
		if len(dirs) != 1 {
			t.Fatalf("NETLAB_KEEP_LOGS=1: exports %v, want one", dirs)
		}
		if _, err := os.Stat(filepath.Join(dirs[0], "plan.json")); err != nil {
			t.Errorf("the export has no plan: %v", err)
		}
		if left, _ := kernel.ListNetns(plan.NetnsName(p.Lab, "")); len(left) > 0 {
			t.Errorf("namespaces left: %v", left)
		}
	})
}
