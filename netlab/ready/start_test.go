package ready

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// helperEnv makes the test binary, started by startQuiet, run quietStartHelper instead of
// the tests.
const helperEnv = "NETLAB_READY_TEST_HELPER"

// reexecEnv marks the second run of the "reexec" helper.
const reexecEnv = "NETLAB_READY_TEST_REEXECUTED"

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv(helperEnv); ok {
		os.Exit(quietStartHelper(mode))
	}
	os.Exit(m.Run())
}

// threadsSlack is the timer slack every thread of this process has. AllThreadsSyscall
// asks each thread and ends the process (a fatal error, not a failure) when two answers
// differ: a test calls it only while no thread of another slack can be alive. The test
// binary links no cgo (it would return ENOTSUP).
func threadsSlack() (uintptr, error) {
	v, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return v, nil
}

// quietStartHelper is the agent's side: it prints what it sees before and after Notify,
// one "name value" line each, and keeps a few threads busy so that the process has more
// than the one it started with.
func quietStartHelper(mode string) int {
	switch mode {
	case "report": // started by the "starter" helper: its own slack, nothing else
		slack, err := threadsSlack()
		fmt.Printf("slack %d %v\n", slack, err)
		return 0
	case "reexec": // executes itself again as privs.Restrict does, once
		if os.Getenv(reexecEnv) == "" {
			err := syscall.Exec("/proc/self/exe", os.Args, ExecEnv(append(os.Environ(), reexecEnv+"=1")))
			fmt.Printf("exec %v\n", err)
			return 1
		}
	case "starter": // starts a process the usual way while it still starts quietly itself
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(environWithout(helperEnv), helperEnv+"=report")
		cmd.Stderr = os.Stderr
		out := make(chan []byte, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			StarterThread()
			b, err := cmd.Output()
			if err != nil {
				b = []byte(err.Error())
			}
			out <- b
		}()
		fmt.Printf("child-%s", <-out)
		return 0 // its locked thread, of another slack, may not be gone yet
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // a thread of its own each
			<-stop
		}()
	}
	report := func(when string) {
		slack, err := threadsSlack()
		fmt.Printf("%s-procs %d\n%s-slack %d %v\n", when, runtime.GOMAXPROCS(0), when, slack, err)
	}
	report("start")
	// What this agent, still starting, would hand an agent it starts: its starter's slack.
	for _, e := range QuietStart(nil, true) {
		if v, ok := strings.CutPrefix(e, StartSlackEnv+"="); ok {
			fmt.Printf("start-child-slack %s\n", v)
		}
	}
	// What a re-execution of itself (privs.Restrict) would be given, before Notify.
	for _, e := range ExecEnv([]string{"A=1", "GOMAXPROCS=3"}) {
		if k, v, _ := strings.Cut(e, "="); k != "A" {
			fmt.Printf("exec-%s %s\n", k, v)
		}
	}
	_, procsSet := os.LookupEnv(StartProcsEnv)
	_, slackSet := os.LookupEnv(StartSlackEnv)
	fmt.Printf("env-GOMAXPROCS %q\nenv-start %v\n", os.Getenv("GOMAXPROCS"), procsSet || slackSet)
	if mode == "setprocs" {
		SetProcs(1)
	}
	Notify()
	report("ready")
	close(stop)
	wg.Wait()
	return 0
}

// startQuiet starts the test binary as a starter starts a quiet agent (QuietStart's
// environment, forked from a thread after QuietStartThread) and returns its lines.
func startQuiet(t *testing.T, mode string, env []string) map[string]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = QuietStart(append(env, helperEnv+"="+mode), mode != "slack-only")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		was, _, _ := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTimerSlack, 0, 0)
		QuietStartThread()
		started <- cmd.Start()
		// The thread ends with this goroutine, maybe after the next test's threadsSlack.
		syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerSlack, was, 0)
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		got[k] = v
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v (printed %v)", err, got)
	}
	return got
}

func environWithout(name string) []string {
	return slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, name+"=") })
}

func TestQuietStartUntilNotify(t *testing.T) {
	own, err := threadsSlack()
	if err != nil {
		t.Fatal(err)
	}
	got := startQuiet(t, "notify", append(environWithout("GOMAXPROCS"), "GOMAXPROCS=3"))
	want := map[string]string{
		// The start: one processor, the start's slack on every thread.
		"start-procs": "1",
		"start-slack": fmt.Sprintf("%d <nil>", StartTimerSlack.Nanoseconds()),
		// An agent it starts meanwhile (the supervisor's restarts) gets the starter's.
		"start-child-slack": strconv.FormatUint(uint64(own), 10),
		// The environment as the starter had it, for the commands the agent runs.
		"env-GOMAXPROCS": `"3"`,
		"env-start":      "false",
		// A re-execution of itself meanwhile starts as quietly and ends the same way.
		"exec-GOMAXPROCS":       "1",
		"exec-" + StartProcsEnv: "3",
		"exec-" + StartSlackEnv: strconv.FormatUint(uint64(own), 10),
		// Ready: the starter's GOMAXPROCS and its thread's slack, on every thread.
		"ready-procs": "3",
		"ready-slack": fmt.Sprintf("%d <nil>", own),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestQuietStartWithoutGOMAXPROCSTakesTheDefault(t *testing.T) {
	got := startQuiet(t, "notify", environWithout("GOMAXPROCS"))
	if got["start-procs"] != "1" || got["env-GOMAXPROCS"] != `""` {
		t.Errorf("start: procs %s, GOMAXPROCS %s; want 1 and unset", got["start-procs"], got["env-GOMAXPROCS"])
	}
	// The default is what the runtime chooses without the variable (CPUs, cgroup limit):
	// this test process's own, when it was started without one (and no -test.cpu).
	if os.Getenv("GOMAXPROCS") != "" || flag.Lookup("test.cpu").Value.String() != "" {
		t.Skip("this test process's GOMAXPROCS is not the default")
	}
	if def := runtime.GOMAXPROCS(0); got["ready-procs"] != strconv.Itoa(def) {
		t.Errorf("ready-procs = %s, want the default %d", got["ready-procs"], def)
	}
}

func TestSetProcsStandsAfterNotify(t *testing.T) {
	got := startQuiet(t, "setprocs", append(environWithout("GOMAXPROCS"), "GOMAXPROCS=3"))
	if got["ready-procs"] != "1" {
		t.Errorf("ready-procs = %s after SetProcs(1), want 1", got["ready-procs"])
	}
	if got["env-GOMAXPROCS"] != `"3"` {
		t.Errorf("env-GOMAXPROCS = %s, want the starter's \"3\"", got["env-GOMAXPROCS"])
	}
}

func TestQuietStartReplacesEarlierSettings(t *testing.T) {
	env := QuietStart([]string{"A=1", "GOMAXPROCS=2", StartProcsEnv + "=7", "GOMAXPROCS=4", StartSlackEnv + "=9"}, true)
	var procs, starts []string
	for _, e := range env {
		switch {
		case strings.HasPrefix(e, "GOMAXPROCS="):
			procs = append(procs, e)
		case strings.HasPrefix(e, StartProcsEnv+"="), strings.HasPrefix(e, StartSlackEnv+"="):
			starts = append(starts, e)
		}
	}
	if !slices.Equal(procs, []string{"GOMAXPROCS=1"}) {
		t.Errorf("GOMAXPROCS entries %q, want only GOMAXPROCS=1", procs)
	}
	if len(starts) != 2 || !slices.Contains(starts, StartProcsEnv+"=4") {
		t.Errorf("start entries %q, want %s=4 (the last GOMAXPROCS) and one %s", starts, StartProcsEnv, StartSlackEnv)
	}
	if env[0] != "A=1" {
		t.Errorf("other entries lost: %q", env)
	}
}

func TestQuietStartWithoutOneProcKeepsGOMAXPROCS(t *testing.T) {
	own, err := threadsSlack() // before startQuiet's thread (ended, maybe not yet gone)
	if err != nil {
		t.Fatal(err)
	}
	got := startQuiet(t, "slack-only", append(environWithout("GOMAXPROCS"), "GOMAXPROCS=3"))
	want := map[string]string{
		"start-procs":    "3",
		"start-slack":    fmt.Sprintf("%d <nil>", StartTimerSlack.Nanoseconds()),
		"env-GOMAXPROCS": `"3"`,
		"env-start":      "false",
		"ready-procs":    "3",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if w := fmt.Sprintf("%d <nil>", own); got["ready-slack"] != w {
		t.Errorf("ready-slack = %q, want the starter's %q", got["ready-slack"], w)
	}
	env := QuietStart([]string{"GOMAXPROCS=2"}, false)
	if !slices.Contains(env, "GOMAXPROCS=2") || slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, StartProcsEnv+"=") }) {
		t.Errorf("QuietStart(env, false) = %q: GOMAXPROCS must stay as it was", env)
	}
}

func TestExecEnvOutsideAQuietStartIsTheEnvironment(t *testing.T) {
	env := []string{"A=1", "GOMAXPROCS=3"}
	if got := ExecEnv(env); !slices.Equal(got, env) {
		t.Errorf("ExecEnv(%q) = %q in a process that did not start quietly", env, got)
	}
}

// A program that executes itself again to drop capabilities (privs.Restrict, with
// ExecEnv) starts quietly again and ends it at its own Notify.
func TestExecEnvHandsTheQuietStartOn(t *testing.T) {
	own, err := threadsSlack()
	if err != nil {
		t.Fatal(err)
	}
	got := startQuiet(t, "reexec", append(environWithout("GOMAXPROCS"), "GOMAXPROCS=3"))
	want := map[string]string{
		"start-procs":    "1",
		"start-slack":    fmt.Sprintf("%d <nil>", StartTimerSlack.Nanoseconds()),
		"env-GOMAXPROCS": `"3"`,
		"env-start":      "false",
		"ready-procs":    "3",
		"ready-slack":    fmt.Sprintf("%d <nil>", own),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (printed %v)", k, got[k], v, got)
		}
	}
}

// A process a still-quiet starter starts the usual way, from a thread after
// StarterThread, gets the starter's own slack, not the start's.
func TestStarterThreadHandsOnTheStartersOwnSlack(t *testing.T) {
	own, err := threadsSlack()
	if err != nil {
		t.Fatal(err)
	}
	got := startQuiet(t, "starter", environWithout("GOMAXPROCS"))
	if w := fmt.Sprintf("%d <nil>", own); got["child-slack"] != w {
		t.Errorf("child-slack = %q, want the starter's own %q (printed %v)", got["child-slack"], w, got)
	}
}

// A starter's own quiet start (netlab up's): every thread on the start's slack until it
// ends it, the agents it starts meanwhile told its own slack, every thread back after.
func TestQuietStarterUntilItsEnd(t *testing.T) {
	own, err := threadsSlack()
	if err != nil {
		t.Fatal(err)
	}
	if own == uintptr(StartTimerSlack.Nanoseconds()) {
		t.Skip("this test process already runs with the start's slack")
	}
	end := QuietStarter()
	if got, err := threadsSlack(); err != nil || got != uintptr(StartTimerSlack.Nanoseconds()) {
		t.Errorf("threads' slack while quiet = %d (%v), want the start's %d", got, err, StartTimerSlack.Nanoseconds())
	}
	if got := ownSlack(); got != own {
		t.Errorf("ownSlack while quiet = %d, want the starter's own %d", got, own)
	}
	if env := QuietStart(nil, false); !slices.Contains(env, StartSlackEnv+"="+strconv.FormatUint(uint64(own), 10)) {
		t.Errorf("QuietStart while quiet = %q, want the starter's own slack handed on", env)
	}
	// A second QuietStarter while the first holds changes nothing, its end neither.
	QuietStarter()()
	if got, _ := threadsSlack(); got != uintptr(StartTimerSlack.Nanoseconds()) {
		t.Errorf("threads' slack after a nested QuietStarter's end = %d, want the start's still", got)
	}
	end()
	end() // a second call changes nothing
	if got, err := threadsSlack(); err != nil || got != own {
		t.Errorf("threads' slack after the end = %d (%v), want %d", got, err, own)
	}
	if got := ownSlack(); got != own {
		t.Errorf("ownSlack after the end = %d, want %d", got, own)
	}
}
