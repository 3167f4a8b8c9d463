package cli_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// runCLI runs the test binary as netlab with stdin, bounded so that a read that hangs
// (a FIFO) fails the test instead of the suite.
func runCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, labtest.Binary(t), args...)
	cmd.Env = append(os.Environ(), labtest.AsCLIEnv+"=1")
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("netlab %s hung", strings.Join(args, " "))
	}
	return out.String(), err
}

// Every bad input is refused with a clear error naming it, and nothing is made.
func TestIntegrationBadInputMakesNothing(t *testing.T) {
	labtest.RequireRoot(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.yaml")
	os.WriteFile(empty, []byte("# no objects\n"), 0o600)
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, []byte(strings.Replace(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: {a: "BIG"}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: netlab/echo, ports: [{containerPort: 8080}]}]}
`, "BIG", strings.Repeat("x", 1<<20), 1)), 0o600)
	huge := filepath.Join(dir, "huge.yaml")
	if f, err := os.Create(huge); err == nil {
		f.Truncate(scenario.MaxFileSize + 1)
		f.Close()
	}
	name := labtest.LabName("healbad")
	cases := []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"up", "-f", fifo, "--name", name}, "not a regular file (a FIFO)"},
		{"", []string{"up", "-f", "/dev/zero", "--name", name}, "not a regular file (a character device)"},
		{"", []string{"up", "-f", "/dev/null", "--name", name}, "not a regular file"},
		{"", []string{"up", "-f", empty, "--name", name}, "no objects"},
		{"", []string{"up", "-f", "-", "--name", name}, "<stdin>: file: no objects"},
		{"", []string{"up", "-f", huge, "--name", name}, "8 MiB"},
		{"", []string{"up", "-f", big, "--name", name}, "may not be more than 262144 bytes"},
		{"", []string{"up", "--name", "../../tmp/x"}, "lab name"},
		{"", []string{"status", "--name", "../../tmp/x"}, "lab name"},
		{"", []string{"logs", "--name", "../../etc/x", "y"}, "lab name"},
	}
	for _, c := range cases {
		out, err := runCLI(t, c.stdin, c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("netlab %s: %v, output %.300q; want a failure saying %q", strings.Join(c.args, " "), err, out, c.want)
		}
		if left, _ := kernel.ListNetns(plan.NetnsName(name, "")); len(left) > 0 {
			t.Fatalf("netlab %s left namespaces %v", strings.Join(c.args, " "), left)
		}
		if _, err := os.Stat(rundir.ForLab(name).Path()); err == nil {
			t.Errorf("netlab %s left %s", strings.Join(c.args, " "), rundir.ForLab(name).Path())
		}
	}
	// `-f -` reads the scenario from standard input, as kubectl does.
	yaml, err := os.ReadFile("../../scenarios/three-nodes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, string(yaml), "plan", "-f", "-", "-o", "json")
	if err != nil || !strings.Contains(out, `"node-3"`) {
		t.Errorf("plan -f - with a scenario on stdin: %v: %.300s", err, out)
	}
}

// An object name is never a path: logs with ../ in it, on a lab that is up, opens nothing
// outside the lab's logs.
func TestIntegrationLogsNameIsNotAPath(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "heallog", "")
	target := "/tmp/heallog-x-y.log"
	if err := os.WriteFile(target, []byte(`{"msg":"SECRET outside the lab"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(target)
	out, err := runCLI(t, "", "logs", "--name", p.Lab, "../../../../tmp/heallog-x", "y")
	if err == nil || strings.Contains(out, "SECRET") {
		t.Errorf("logs with a path as its object: %v: %q", err, out)
	}
}
