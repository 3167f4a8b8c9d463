// Package labtest helps root integration tests bring real labs up and talk to them. Tests
// that use it call Main from their TestMain, so the test binary can also serve as the
// netlab binary for the agents it starts.
//
// It is for tests only; the lab and CLI never import it.
package labtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/cli"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// AsCLIEnv makes the test binary behave as the netlab command (for tests that run it).
const AsCLIEnv = "NETLAB_TEST_AS_CLI"

// SignalChildEnv makes the test binary a command whose clean stop never ends, as an up
// whose rollback hangs: under cli.SignalContext it writes "ready" on stdout, and when its
// context ends "stopping", then waits (an hour). Only a second signal ends it sooner.
const SignalChildEnv = "NETLAB_TEST_SIGNAL_CHILD"

// Main runs the tests, or the netlab CLI when the binary was started as an agent or with
// AsCLIEnv set (or SignalChildEnv's command).
func Main(m *testing.M) {
	if os.Getenv(SignalChildEnv) == "1" {
		ctx, stop := cli.SignalContext(context.Background(), os.Stderr)
		defer stop()
		fmt.Println("ready")
		<-ctx.Done()
		fmt.Println("stopping")
		time.Sleep(time.Hour)
		os.Exit(3)
	}
	if cli.AgentArgs(os.Args[1:]) || os.Getenv(AsCLIEnv) == "1" {
		// As cmd/netlab: Ctrl-C or SIGTERM cancels the context (drops --follow stops cleanly).
		ctx, stop := cli.SignalContext(context.Background(), cli.SignalHint(os.Args[1:]))
		code := cli.Main(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	cleanup, err := buildAgentBinaries()
	if err != nil {
		fmt.Fprintln(os.Stderr, "labtest:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	if code == 0 || !KeepLogs() {
		// The logs the run's labs left after down go too (a failed test printed their
		// tails), unless NETLAB_KEEP_LOGS=1 asks to keep those of a failed run.
		named.Lock()
		for _, l := range named.labs {
			_ = lab.PurgeLogs(l)
		}
		named.Unlock()
	}
	os.Exit(code)
}

// RequireRoot skips a test under -short, and when not root outside CI; in CI (CI=true) a
// missing root fails the test instead, so integration tests are never skipped there.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("integration tests need root in CI")
		}
		t.Skip("integration test: needs root")
	}
}

var seq atomic.Int64

// named lists the lab names LabName gave out, whose logs Main removes after the run
// (after a failed run too, unless KeepLogs).
var named struct {
	sync.Mutex
	labs []string
}

// LabName returns a unique lab name for a test (letters and digits only).
func LabName(prefix string) string {
	// The pid in five digits: two test processes never make the same name (pid 12 with
	// test 34 and pid 123 with test 4 would).
	name := fmt.Sprintf("%s%05d%d", prefix, os.Getpid()%100000, seq.Add(1))
	named.Lock()
	named.labs = append(named.labs, name)
	named.Unlock()
	return name
}

// Binary returns the path of the running test binary, which doubles as netlab.
func Binary(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// Up plans the scenario (the embedded default when yaml is empty) under a unique lab name,
// brings it up and removes it when the test ends, even when it fails.
func Up(t testing.TB, prefix, yaml string) *plan.Plan {
	t.Helper()
	return UpWith(t, prefix, yaml, nil)
}

// UpWith is Up with tweak applied to the parsed scenario before it is validated and
// planned: a test that needs a variant of a fixture (another kube-proxy mode, more
// replicas) loads the fixture and changes the struct, not the text.
func UpWith(t testing.TB, prefix, yaml string, tweak func(*scenario.Scenario)) *plan.Plan {
	t.Helper()
	p := PlanWith(t, prefix, yaml, tweak)
	t.Cleanup(func() { Remove(t, p.Lab) })
	text := []byte(yaml)
	if yaml == "" {
		text = scenario.DefaultYAML()
	}
	if err := lab.Up(context.Background(), p, lab.Options{Binary: Binary(t), ReadyTimeout: 30 * time.Second, Scenario: text}); err != nil {
		t.Fatalf("up: %v", err)
	}
	return p
}

// Plan validates and plans a scenario under a unique lab name, failing the test on error.
func Plan(t testing.TB, prefix, yaml string) *plan.Plan {
	t.Helper()
	return PlanWith(t, prefix, yaml, nil)
}

// PlanWith is Plan with tweak applied to the parsed scenario first (see UpWith).
func PlanWith(t testing.TB, prefix, yaml string, tweak func(*scenario.Scenario)) *plan.Plan {
	t.Helper()
	var s *scenario.Scenario
	var err error
	if yaml == "" {
		s, err = scenario.Load(nil)
	} else {
		s, err = scenario.Parse("test.yaml", []byte(yaml))
	}
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	if tweak != nil {
		tweak(s)
	}
	if err := scenario.Validate(s); err != nil {
		t.Fatalf("validate: %v", err)
	}
	p, err := planbuild.Build(s, LabName(prefix))
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

// Client returns an HTTP client whose connections are made inside the namespace ns. It
// keeps no connection alive between requests unless keepAlive.
func Client(ns string, keepAlive bool) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return kernel.DialIn(ns, network, addr, 3*time.Second)
			},
			DisableKeepAlives: !keepAlive,
		},
	}
}

// Echo is the part of the pod echo response tests look at.
type Echo struct {
	Pod      string              `json:"pod"`
	Node     string              `json:"node"`
	PodIP    string              `json:"podIP"`
	Port     int                 `json:"port"`
	ClientIP string              `json:"clientIP"`
	Method   string              `json:"method"`
	Host     string              `json:"host"`
	Path     string              `json:"path"`
	Headers  map[string][]string `json:"headers"`
}

// GetEcho sends GET url from inside ns and decodes the echo answer.
func GetEcho(ns, url string) (Echo, *http.Response, error) { return GetEchoHost(ns, url, "") }

// GetEchoHost is GetEcho with another Host header (an Ingress host on the VIP's address).
func GetEchoHost(ns, url, host string) (Echo, *http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return Echo{}, nil, err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := Client(ns, false).Do(req)
	if err != nil {
		return Echo{}, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e Echo
	if resp.StatusCode != http.StatusOK {
		return e, resp, fmt.Errorf("GET %s from %s: %s: %s", url, ns, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return e, resp, fmt.Errorf("GET %s from %s: not echo JSON: %w: %q", url, ns, err, body)
	}
	return e, resp, nil
}

// Exec runs a command inside ns (like `ip netns exec`, without the /etc mounts) and
// returns its combined output.
func Exec(ns string, name string, args ...string) (string, error) {
	out, err := kernel.Run(ns, nil, name, args...)
	return string(out), err
}

// CLI runs the test binary as the netlab command with args and returns its output.
func CLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), AsCLIEnv+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// EchoPods returns the plan's pods that run the echo agent (all but the cluster DNS's).
func EchoPods(p *plan.Plan) []plan.Pod {
	var out []plan.Pod
	for _, pod := range p.Pods {
		if pod.Agent == "" {
			out = append(out, pod)
		}
	}
	return out
}

// ExportLogs writes what `netlab export logs` writes for the lab into a new directory
// under the system's temporary directory, kept after the test, and says where in the
// test's log. Remove calls it, before the lab goes down, when a test has failed and
// NETLAB_KEEP_LOGS=1 asks to keep what it leaves.
func ExportLogs(t testing.TB, labName string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "netlab-"+labName+"-")
	if err != nil {
		t.Errorf("export logs of %s: %v", labName, err)
		return ""
	}
	files, err := lab.ExportLogs(context.Background(), labName, dir)
	t.Logf("lab %s failed: %d files of logs, rules and state exported to %s", labName, len(files), dir)
	if err != nil {
		t.Logf("export logs of %s: %v", labName, err)
	}
	return dir
}

// buildAgentBinaries builds the pod agent (cmd/netlab-pod) and the node agents
// (cmd/netlab-agent), without cgo as `make build` does (only such agents start quietly:
// ready.QuietStart), for the labs a test run brings up: the test binary stands in for
// netlab, and they are not beside it, so $NETLAB_POD_BINARY and $NETLAB_AGENT_BINARY name
// them, for Up in this process and for every netlab command the tests run. A value already
// set is kept.
func buildAgentBinaries() (cleanup func(), err error) {
	var pkgs []string
	if os.Getenv(supervise.PodBinaryEnv) == "" {
		pkgs = append(pkgs, "github.com/netlabdev/netlab/cmd/netlab-pod")
	}
	if os.Getenv(supervise.AgentBinaryEnv) == "" {
		pkgs = append(pkgs, "github.com/netlabdev/netlab/cmd/netlab-agent")
	}
	if len(pkgs) == 0 {
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "netlab-agents-test-")
	if err != nil {
		return nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static, as make build builds them
	if b, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return nil, fmt.Errorf("build the agents: %v: %s", err, b)
	}
	if os.Getenv(supervise.PodBinaryEnv) == "" {
		os.Setenv(supervise.PodBinaryEnv, filepath.Join(dir, supervise.PodBinaryName))
	}
	if os.Getenv(supervise.AgentBinaryEnv) == "" {
		os.Setenv(supervise.AgentBinaryEnv, filepath.Join(dir, supervise.AgentBinaryName))
	}
	return cleanup, nil
}

// WaitFor polls cond every 50 ms until it holds or limit passes, and says whether it held
// (a bound on a hang, not a timed assertion: the figures are in docs/performance.md).
func WaitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}

// Record returns the pid record of one agent of the lab, failing the test when it has none.
func Record(t testing.TB, labName, role, name string) supervise.Record {
	t.Helper()
	rec, err := supervise.ReadRecord(rundir.ForLab(labName), role, name)
	if err != nil {
		t.Fatalf("%s %s: %v", role, name, err)
	}
	return rec
}

// RequestOK sends requests for path (Host app.example, the default scenario's Ingress)
// from the first client through the VIP until one succeeds, for up to 10 s; it returns the
// last error otherwise.
func RequestOK(p *plan.Plan, path string) error {
	var err error
	WaitFor(10*time.Second, func() bool {
		_, _, err = GetEchoHost(p.Clients[0].Netns, "http://"+p.LB.VIP+path, "app.example")
		return err == nil
	})
	return err
}

// CheckOK runs the lab's checks and says whether the one named passed; it fails the test
// when there is no such check.
func CheckOK(t testing.TB, labName, name string) bool {
	t.Helper()
	checks, err := lab.CheckLab(context.Background(), labName)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.Name == name {
			return c.OK
		}
	}
	t.Fatalf("no check %q", name)
	return false
}

// Check runs `netlab check` with args and returns its output and exit code; it fails the
// test when the command could not run at all.
func Check(t testing.TB, args ...string) (string, int) {
	t.Helper()
	out, err := CLI(t, append([]string{"check"}, args...)...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	t.Fatalf("netlab check: %v", err)
	return "", 0
}

// Netns makes a network namespace named nlt-<prefix><pid>-<suffix> for the test (a bare
// one, outside any lab) and removes it when the test ends.
func Netns(t testing.TB, prefix, suffix string) string {
	t.Helper()
	ns := fmt.Sprintf("nlt-%s%d-%s", prefix, os.Getpid(), suffix)
	if err := kernel.CreateNetns(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := kernel.DeleteNetns(ns); err != nil {
			t.Error(err)
		}
	})
	return ns
}

// WaitSynced waits (15 s at most, a bound on a hang) until every node's kube-proxy reports
// the generation of the lab's endpoints file as it is now, or a later one: the rules then
// hold what the controller last wrote, and stale UDP flows are cleared. On failure it
// prints what the node last reported and the tail of its kube-proxy log.
func WaitSynced(t testing.TB, p *plan.Plan) {
	t.Helper()
	d := rundir.ForLab(p.Lab)
	ef, err := d.ReadEndpoints()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range p.Nodes {
		var last string
		if !WaitFor(15*time.Second, func() bool {
			st, err := d.ReadSyncStatus(n.Name)
			if err != nil {
				last = err.Error()
				return false
			}
			last = fmt.Sprintf("%+v", *st)
			return st.Generation >= ef.Generation
		}) {
			log, _ := os.ReadFile(d.Log("kube-proxy", n.Name))
			lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
			t.Fatalf("kube-proxy on %s did not apply endpoints generation %d within 15 s: it reports %s\nits log's tail:\n%s",
				n.Name, ef.Generation, last, strings.Join(lines[max(len(lines)-10, 0):], "\n"))
		}
	}
}

// AccessLogWorkers reads a node's ingress access log and returns how many request lines
// each worker wrote (their "worker" field); every line of the file ended by its newline
// must be whole JSON (workers append to one file: an interleaved line fails the test).
func AccessLogWorkers(t testing.TB, path string) map[int]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A worker may be writing while the file is read: its batch's end, not yet written,
	// leaves a last line without its newline, which is not counted (the lines are
	// appended, so only the last can be cut so). Every whole line must be whole JSON:
	// two workers' lines written into each other would fail.
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	out := map[int]int{}
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		var e struct {
			Worker *int   `json:"worker"`
			Status int    `json:"status"`
			Msg    string `json:"msg"`
		}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%s: line %q is not whole JSON: %v", path, line, err)
		}
		if e.Msg == "" && e.Status != 0 && e.Worker != nil {
			out[*e.Worker]++
		}
	}
	return out
}

// AgentProc is one live agent process of a lab: its pid and its argv.
type AgentProc struct {
	PID  int
	Argv []string
}

// AgentProcs lists the processes whose argv says they are agents of labName (one walk of
// /proc, as down's finder does), by pid.
func AgentProcs(labName string) []AgentProc {
	var out []AgentProc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if argv := kernel.Cmdline(pid); lab.IsAgentOf(argv, labName) {
			out = append(out, AgentProc{pid, argv})
		}
	}
	slices.SortFunc(out, func(a, b AgentProc) int { return a.PID - b.PID })
	return out
}
