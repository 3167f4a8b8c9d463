package lab_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/ready"
	"github.com/netlabdev/netlab/netlab/scenario"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// Every agent (an ingress with worker processes aside) starts with a timer slack of
// ready.StartTimerSlack and ends it when it reports ready: once up returns, none keeps it.
// The main thread's slack is the one /proc shows; ready's own test holds every thread to
// it.
func TestIntegrationAgentsEndTheirQuietStartAtReady(t *testing.T) {
	labtest.RequireRoot(t)
	own, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, 30 /* PR_GET_TIMERSLACK */, 0, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	p := labtest.Up(t, "qs", "")
	agentsEndedTheirQuietStart(t, p.Lab, own, false)
}

// The same through netlab itself, built as make build builds it (static: in the suite's
// test binaries, which link cgo, up's own quiet start, ready.QuietStarter, does nothing):
// the agents up starts while its own threads run on the start's slack are told up's own,
// and end their start with it. Its ingress has two workers: an agent that does not start
// quietly (ready.StarterThread) gets up's own slack too, and so do its workers.
func TestIntegrationAgentsOfAQuietUpEndTheirQuietStart(t *testing.T) {
	labtest.RequireRoot(t)
	own, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, 30 /* PR_GET_TIMERSLACK */, 0, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	dir := t.TempDir()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	build := exec.Command(gobin, "build", "-o", dir+"/", "github.com/netlabdev/netlab/cmd/netlab",
		"github.com/netlabdev/netlab/cmd/netlab-pod", "github.com/netlabdev/netlab/cmd/netlab-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build netlab: %v: %s", err, b)
	}
	name := labtest.LabName("qsu")
	netlab := filepath.Join(dir, "netlab")
	t.Cleanup(func() {
		if b, err := exec.Command(netlab, "down", "--name", name, "--purge").CombinedOutput(); err != nil {
			t.Errorf("down: %v: %s", err, b)
		}
	})
	// Its own environment: no binary of the test's (labtest's variables) chosen for it.
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, supervise.PodBinaryEnv+"=") && !strings.HasPrefix(e, supervise.AgentBinaryEnv+"=") {
			env = append(env, e)
		}
	}
	y := strings.Replace(string(scenario.DefaultYAML()), "spec:\n  nodes:", "spec:\n  ingress: {workers: 2}\n  nodes:", 1)
	if !strings.Contains(y, "workers: 2") {
		t.Fatal("the default scenario's Lab changed: no place for spec.ingress")
	}
	file := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	up := exec.Command(netlab, "up", "-f", file, "--name", name)
	up.Env = env
	if b, err := up.CombinedOutput(); err != nil {
		t.Fatalf("up: %v: %s", err, b)
	}
	agentsEndedTheirQuietStart(t, name, own, true)
}

// agentsEndedTheirQuietStart checks every agent of the lab: its main thread's timer slack
// is own (its starter's), and it was started quietly — but for an ingress with workers
// (--workers; its workers, --worker, are its own children), which is not, and is only
// checked for its slack; workers says the lab's ingress has them.
func agentsEndedTheirQuietStart(t *testing.T, labName string, own uintptr, workers bool) {
	t.Helper()
	roles := map[string]int{}
	for _, a := range labtest.AgentProcs(labName) {
		argv := a.Argv // IsAgentOf: at least four words
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timerslack_ns", a.PID))
		environ, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/environ", a.PID))
		if err != nil || err2 != nil {
			continue // gone since
		}
		roles[argv[2]]++
		if got := strings.TrimSpace(string(b)); got != strconv.FormatUint(uint64(own), 10) {
			t.Errorf("%v: timer slack %s ns after up, want the starter's %d (the start's is %d)", argv, got, own, ready.StartTimerSlack.Nanoseconds())
		}
		if argv[2] == "ingress" && slices.Contains(argv, "--worker") {
			roles["ingress worker"]++
			continue
		}
		if argv[2] == "ingress" && slices.Contains(argv, "--workers") {
			roles["ingress with workers"]++
			continue
		}
		// It did start quietly: the environment it was started with (which /proc keeps)
		// says so; a pod also started on one processor.
		env := strings.Split(string(environ), "\x00")
		want := []string{ready.StartSlackEnv + "=" + strconv.FormatUint(uint64(own), 10)}
		if argv[2] == "pod" {
			want = append(want, "GOMAXPROCS=1")
		}
		for _, w := range want {
			if !slices.Contains(env, w) {
				t.Errorf("%v: started without %s", argv, w)
			}
		}
	}
	want := []string{"pod", "kube-proxy", "controller", "lb", "supervisor", "ingress"}
	if workers {
		want = append(want, "ingress with workers", "ingress worker")
	}
	for _, role := range want {
		if roles[role] == 0 {
			t.Errorf("no %s agent found (found %v)", role, roles)
		}
	}
}
