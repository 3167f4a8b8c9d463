package labtest

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// KeepLogsEnv names the variable that keeps what a failed test's labs leave: with
// NETLAB_KEEP_LOGS=1, Remove exports the lab's logs, rules and state to a new directory
// under the system's temporary directory before down, and neither it nor the lab's agent
// logs (/run/netlab-logs/<lab>) are removed. Without it a failed test prints the tails of
// the agent logs into its output and leaves nothing behind, as a passing one.
const KeepLogsEnv = "NETLAB_KEEP_LOGS"

// KeepLogs says whether NETLAB_KEEP_LOGS=1 asks to keep a failed test's logs.
func KeepLogs() bool { return os.Getenv(KeepLogsEnv) == "1" }

// tailLines is how many of its last lines each agent log shows in a failed test's output.
const tailLines = 20

// Remove takes a test's lab down and leaves nothing of it, also when the test failed: it
// runs down, fails the test when a namespace of the lab is left, and purges the agent logs
// down keeps (down --purge). When the test has failed it first prints the last lines of
// every agent log into the test's output; with NETLAB_KEEP_LOGS=1 it also exports the lab
// (ExportLogs) before down and keeps the logs. Up registers it; tests that bring a lab up
// another way call it from t.Cleanup.
func Remove(t testing.TB, labName string) {
	t.Helper()
	keep := t.Failed() && KeepLogs()
	if keep {
		ExportLogs(t, labName) // before down: the rules and state go with the lab
	}
	if err := lab.Down(labName, nil); err != nil {
		t.Errorf("down %s: %v", labName, err)
	}
	if left, _ := kernel.ListNetns(plan.NetnsName(labName, "")); len(left) > 0 {
		t.Errorf("namespaces left after down: %v", left)
	}
	if t.Failed() {
		LogTails(t, labName)
	}
	if keep {
		t.Logf("lab %s: %s=1: its agent logs stay in %s", labName, KeepLogsEnv, rundir.ForLab(labName).Logs())
		return
	}
	if err := lab.PurgeLogs(labName); err != nil {
		t.Error(err)
	}
}

// LogTails prints the last lines of every agent log of the lab into the test's output.
func LogTails(t testing.TB, labName string) {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(rundir.ForLab(labName).Logs(), "*.log"))
	if len(logs) == 0 {
		t.Logf("lab %s: no agent log", labName)
		return
	}
	for _, path := range logs {
		lines, dropped := tail(path, tailLines)
		head := "log " + filepath.Base(path)
		if dropped > 0 {
			head += " (last lines)"
		}
		t.Logf("lab %s: %s:\n%s", labName, head, strings.Join(lines, "\n"))
	}
}

// tail returns the last n lines of a file and how many came before them.
func tail(path string, n int) (lines []string, dropped int) {
	f, err := os.Open(path)
	if err != nil {
		return []string{err.Error()}, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
			dropped++
		}
	}
	return lines, dropped
}
