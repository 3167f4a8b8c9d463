package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// execute runs the command line as Main does and returns stdout, stderr and the exit code.
func execute(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestHoistName(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"exec client --name demo -- true", "--name demo exec client -- true"},
		{"exec client -- curl --name x", "exec client -- curl --name x"},
		{"status --name=demo -o json", "--name=demo status -o json"},
		{"rules node-1 --name demo --service web", "--name demo rules node-1 --service web"},
		{"status --name", "status --name"},
	} {
		if got := strings.Join(hoistName(strings.Fields(c.in)), " "); got != c.want {
			t.Errorf("hoistName(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestNameFromEnvironment(t *testing.T) {
	t.Setenv(LabEnv, "fromenv")
	out, errOut, code := execute(t, "plan", "-f", defaultFile, "-o", "json")
	var p plan.Plan
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.Lab != "fromenv" {
		t.Fatalf("plan with %s=fromenv: exit %d, lab %q: %s", LabEnv, code, p.Lab, errOut)
	}
	out, _, _ = execute(t, "plan", "-f", defaultFile, "-o", "json", "--name", "flag")
	if json.Unmarshal([]byte(out), &p) != nil || p.Lab != "flag" {
		t.Errorf("--name does not win over %s: lab %q", LabEnv, p.Lab)
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"plan", "-f", defaultFile, "-o", "json"}, 0, ""},
		{[]string{"version"}, 0, ""},
		{[]string{"plan", "-f", "testdata/bad.yaml"}, 1, "matches no Deployment"},
		{[]string{"plan", "-f", "testdata/no-such-file.yaml"}, 1, "no-such-file.yaml"},
		{[]string{"nosuchverb"}, 2, `unknown command "nosuchverb"`},
		{[]string{"node", "explode", "node-1"}, 2, `unknown command "explode" for "netlab node"`},
		{[]string{"plan", "--no-such-flag"}, 2, "unknown flag: --no-such-flag"},
		{[]string{"plan", "-o", "xml"}, 2, `unknown output "xml" (table, wide, json, yaml)`},
		{[]string{"plan", "extra"}, 2, "usage: netlab plan"},
		{[]string{"rules"}, 2, "accepts 1 arg(s)"},
		{[]string{"down", "--all", "--name", "x"}, map[bool]int{true: 2, false: 1}[os.Geteuid() == 0], ""},
	} {
		_, errOut, code := execute(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.says) {
			t.Errorf("netlab %s: exit %d, want %d; stderr %q, want it to say %q", strings.Join(c.args, " "), code, c.code, errOut, c.says)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, code := execute(t, "version")
	flag, _, fcode := execute(t, "--version")
	if code != 0 || fcode != 0 || out != flag || !strings.HasPrefix(out, "netlab ") || !strings.Contains(out, "go1.") {
		t.Errorf("version %q (exit %d), --version %q (exit %d)", out, code, flag, fcode)
	}
	js, _, _ := execute(t, "version", "-o", "json")
	var v Version
	if err := json.Unmarshal([]byte(js), &v); err != nil || v.GoVersion == "" || v.Version == "" || v.Platform == "" {
		t.Errorf("version -o json: %v %+v", err, v)
	}
}

// Every verb takes --name from the root (persistent), so it works anywhere on the line
// and NETLAB_LAB fills it: a verb defining its own would shadow both.
func TestNoVerbDefinesItsOwnName(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasParent() && (c.LocalNonPersistentFlags().Lookup("name") != nil || c.PersistentFlags().Lookup("name") != nil) {
			t.Errorf("%s defines its own --name", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(New(nil, nil))
}

// readVerbs answer -o table|wide|json|yaml; checked without root where they can run,
// and against a running lab by the integration test.
var readVerbs = []string{"status", "lb", "rules", "check", "logs", "plan", "ca", "version"}

func TestReadVerbsOfferEveryOutput(t *testing.T) {
	root := New(nil, nil)
	for _, verb := range readVerbs {
		c, _, err := root.Find([]string{verb})
		if err != nil || c.Name() != verb {
			t.Fatalf("no verb %s", verb)
		}
		f := c.Flags().Lookup("output")
		if f == nil {
			t.Errorf("%s has no -o", verb)
			continue
		}
		for _, format := range readFormats {
			if !strings.Contains(f.Usage, format) {
				t.Errorf("%s -o does not offer %s", verb, format)
			}
		}
	}
	for _, format := range readFormats {
		out, errOut, code := execute(t, "plan", "-f", defaultFile, "-o", format)
		if code != 0 || out == "" {
			t.Errorf("plan -o %s: exit %d: %s", format, code, errOut)
		}
		if format == "yaml" {
			var p plan.Plan
			if err := yaml.Unmarshal([]byte(out), &p); err != nil || len(p.Pods) != 7 { // 5 echo pods and 2 DNS pods
				t.Errorf("plan -o yaml is not a plan: %v", err)
			}
		}
	}
	out, _, _ := execute(t, "__complete", "status", "-o", "")
	for _, format := range readFormats {
		if !slices.Contains(strings.Split(out, "\n"), format) {
			t.Errorf("-o completion lacks %s:\n%s", format, out)
		}
	}
}

func TestWords(t *testing.T) {
	for n, want := range map[int]string{0: "0 checks", 1: "1 check", 2: "2 checks"} {
		if got := plural(n, "check", "checks"); got != want {
			t.Errorf("plural(%d) = %q", n, got)
		}
	}
	if got := checkFailed(1).Error(); got != "1 check failed" {
		t.Errorf("checkFailed(1) = %q", got)
	}
	_, errOut, _ := execute(t, "rules", "--help")
	out, _, _ := execute(t, "rules", "--help")
	if !strings.Contains(out+errOut, "rules [--name LAB] NODE") {
		t.Errorf("rules usage lacks [--name LAB]:\n%s", out)
	}
	root := New(nil, nil)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if strings.HasPrefix(c.Short, "Shows ") || strings.HasPrefix(c.Long, "Shows ") {
			t.Errorf("%s: say Show, as the other verbs do", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// A command line that names its verb runs in a tree of that verb alone (Execute); what
// it prints and the exit code are the whole tree's, for the help and the flag errors of
// every command and subcommand, global flags before the verb or not.
func TestOneVerbTreeAnswersAsTheWhole(t *testing.T) {
	full := New(nil, nil)
	var names []string
	for _, c := range full.Commands() {
		if c.Name() != "help" && c.Name() != "completion" {
			names = append(names, c.Name())
		}
	}
	var want []string
	for _, v := range verbs {
		want = append(want, v.name)
		if got := v.make(&globals{}).Name(); got != v.name {
			t.Errorf("verb %q makes command %q", v.name, got)
		}
	}
	if !slices.Equal(names, slices.Sorted(slices.Values(want))) { // cobra lists them sorted
		t.Errorf("the whole tree has %v, verbs %v", names, want)
	}
	var lines [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if len(path) > 0 {
			p := slices.Clone(path)
			lines = append(lines, append(slices.Clone(p), "--help"), append(slices.Clone(p), "--no-such-flag"),
				append([]string{"--name", "x", "-v"}, append(slices.Clone(p), "-h")...))
		}
		for _, sub := range c.Commands() {
			if len(path) == 0 && (sub.Name() == "help" || sub.Name() == "completion") {
				continue
			}
			walk(sub, append(slices.Clone(path), sub.Name()))
		}
	}
	walk(full, nil)
	for _, args := range lines {
		if verbOf(hoistName(args)) == "" {
			t.Errorf("netlab %s: runs in the whole tree", strings.Join(args, " "))
			continue
		}
		var out, errOut, wout, werrOut bytes.Buffer
		code := Execute(context.Background(), args, &out, &errOut)
		wcode := runTree(context.Background(), New(&wout, &werrOut), hoistName(args), &werrOut)
		if code != wcode || out.String() != wout.String() || errOut.String() != werrOut.String() {
			t.Errorf("netlab %s: exit %d, stdout %q, stderr %q; the whole tree: exit %d, stdout %q, stderr %q",
				strings.Join(args, " "), code, out.String(), errOut.String(), wcode, wout.String(), werrOut.String())
		}
	}
}

func TestVerbOf(t *testing.T) {
	for _, c := range []struct{ line, verb string }{
		{"up -f x.yaml", "up"}, {"--name x down", "down"}, {"--name=x -v status -o json", "status"},
		{"--verbose agent pod", "agent"}, {"", ""}, {"help up", ""}, {"completion bash", ""},
		{"__complete status ''", ""}, {"--version", ""}, {"nosuchverb", ""}, {"-x up", ""},
		{"--name", ""}, {"--name up", ""},
	} {
		if got := verbOf(strings.Fields(c.line)); got != c.verb {
			t.Errorf("verbOf(%q) = %q, want %q", c.line, got, c.verb)
		}
	}
}

// A command stopped by a signal says so: its error ends in the signal's cause, not in a
// bare "context canceled"; other errors and other cancellations are left as they are.
func TestInterruptedNamesTheSignal(t *testing.T) {
	stopped := fmt.Errorf("up demo: agents: %w", context.Canceled)
	// The context SignalContext makes, ended by a real SIGINT to this process (caught).
	bySignal, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-bySignal.Done()
	if got := interrupted(bySignal, stopped).Error(); got != "up demo: agents: context canceled (interrupt signal received)" {
		t.Errorf("stopped by a signal: %q", got)
	}
	if !errors.Is(interrupted(bySignal, stopped), context.Canceled) {
		t.Error("the named error no longer wraps context.Canceled")
	}
	other := errors.New("up demo: namespaces: file exists")
	if got := interrupted(bySignal, other); got != other {
		t.Errorf("an error that is not a cancellation changed: %v", got)
	}
	plain, cancelPlain := context.WithCancel(context.Background())
	cancelPlain()
	if got := interrupted(plain, stopped); got != stopped {
		t.Errorf("a cancellation without a cause changed: %v", got)
	}
	if got := interrupted(context.Background(), stopped); got != stopped {
		t.Errorf("a live context changed the error: %v", got)
	}
}

// The netlab binary starts at every up, down and status: packages whose initialisation
// it no longer pays for stay out of it (gopacket: capture decodes and writes pcapng
// itself; the tests keep gopacket as their reference).
func TestNetlabBinaryLeavesOutWhatItStoppedPayingFor(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", "github.com/netlabdev/netlab/cmd/netlab")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/netlabdev/netlab/netlab/capture") {
		t.Fatalf("go list of cmd/netlab does not list netlab/capture: %s", out)
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/gopacket/") {
			t.Errorf("cmd/netlab imports %s", dep)
		}
	}
}

// status's UPSTREAM column says why an Ingress is not served: status's reason, or its class
// when the status has no reason (an older netlab's).
func TestStatusIgnoredIngressSaysWhy(t *testing.T) {
	st := &lab.Status{Ingresses: []lab.IngressStatus{
		{Namespace: "default", Name: "other", Class: "nginx", Ignored: true, Rules: []lab.IngressRuleState{{Host: "other.example", Path: "/", PathType: "Prefix", Service: "web", Port: "80"}}},
		{Namespace: "default", Name: "plain", Ignored: true, IgnoredReason: `it names no class and the default IngressClass "nginx" is another controller's`, Rules: []lab.IngressRuleState{{Host: "plain.example", Path: "/", PathType: "Prefix", Service: "web", Port: "80"}}},
		{Namespace: "default", Name: "app", Upstream: "service", Rules: []lab.IngressRuleState{{Host: "app.example", Path: "/", PathType: "Prefix", Service: "web", Port: "80"}}},
	}}
	var b bytes.Buffer
	if err := writeStatus(&b, st, false); err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "default/") {
			lines[f[0]] = l
		}
	}
	for in, want := range map[string]string{
		"default/other": "ignored (class nginx)",
		"default/plain": `ignored: it names no class and the default IngressClass "nginx" is another controller's`,
		"default/app":   "service",
	} {
		if !strings.HasSuffix(strings.TrimSpace(lines[in]), want) {
			t.Errorf("status line of %s: %q, want it to end in %q\n%s", in, lines[in], want, b.String())
		}
	}
}
