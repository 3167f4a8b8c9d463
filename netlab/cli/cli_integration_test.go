package cli_test

// Two default labs side by side (each with the default address plan in its own
// namespaces: client 203.0.113.2, VIP 203.0.113.100, node-1 172.18.0.11, node-2
// 172.18.0.12), driven through the command line as a user would.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/cli"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"sigs.k8s.io/yaml"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// netlab runs the command line in this process and returns stdout, stderr, exit code.
func netlab(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Execute(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// netlabProc runs the test binary as netlab (for verbs that exec, as exec does).
func netlabProc(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(labtest.Binary(t), args...)
	cmd.Env = append(append(os.Environ(), labtest.AsCLIEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestIntegrationCLITwoLabs(t *testing.T) {
	labtest.RequireRoot(t)
	a := labtest.Up(t, "cli", "")
	b := labtest.Up(t, "cli", "")

	t.Run("without --name several labs are a usage error", func(t *testing.T) {
		t.Setenv(cli.LabEnv, "")
		for _, verb := range [][]string{{"status"}, {"lb"}, {"rules", "node-1"}, {"logs"}, {"down"}} {
			_, errOut, code := netlab(t, verb...)
			if code != 2 || !strings.Contains(errOut, "labs are up") || !strings.Contains(errOut, a.Lab) || !strings.Contains(errOut, "--name") {
				t.Errorf("netlab %s: exit %d, want 2 naming the labs and --name: %s", strings.Join(verb, " "), code, errOut)
			}
		}
		for _, p := range []*plan.Plan{a, b} {
			if !kernel.NetnsExists(p.LB.Netns) {
				t.Fatalf("a bare down removed lab %s", p.Lab)
			}
		}
	})

	t.Run("--name anywhere and from NETLAB_LAB", func(t *testing.T) {
		for _, args := range [][]string{
			{"exec", "client", "--name", a.Lab, "--", "true"},
			{"exec", "--name", a.Lab, "client", "--", "true"},
			{"--name", a.Lab, "exec", "client", "--", "true"},
		} {
			if out, code := netlabProc(t, nil, args...); code != 0 {
				t.Errorf("netlab %s: exit %d: %s", strings.Join(args, " "), code, out)
			}
		}
		if out, code := netlabProc(t, []string{cli.LabEnv + "=" + b.Lab}, "exec", "client", "--", "ip", "netns", "identify"); code != 0 || strings.TrimSpace(out) != b.Clients[0].Netns {
			t.Errorf("exec with %s=%s: exit %d, in %q", cli.LabEnv, b.Lab, code, out)
		}
		t.Setenv(cli.LabEnv, b.Lab)
		out, errOut, code := netlab(t, "status", "-o", "json", "--name", a.Lab)
		var st lab.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Name != a.Lab {
			t.Errorf("status --name %s with %s=%s: exit %d, lab %q: %s", a.Lab, cli.LabEnv, b.Lab, code, st.Name, errOut)
		}
		out, _, _ = netlab(t, "status", "-o", "json")
		if json.Unmarshal([]byte(out), &st) != nil || st.Name != b.Lab {
			t.Errorf("status with %s=%s shows lab %q", cli.LabEnv, b.Lab, st.Name)
		}
	})

	t.Run("every read verb answers each -o", func(t *testing.T) {
		for _, verb := range [][]string{{"status"}, {"lb"}, {"rules", "node-1"}, {"check"}, {"logs"}, {"logs", "controller"}, {"ca"}, {"plan"}, {"version"}} {
			for _, format := range []string{"table", "wide", "json", "yaml"} {
				args := append(append([]string{"--name", a.Lab}, verb...), "-o", format)
				out, errOut, code := netlab(t, args...)
				if code != 0 || strings.TrimSpace(out) == "" {
					// The output too: for check it names the check that failed and why.
					t.Errorf("netlab %s: exit %d, %d bytes: %s\n%s", strings.Join(args, " "), code, len(out), errOut, out)
					continue
				}
				var v any
				switch format {
				case "json":
					dec := json.NewDecoder(strings.NewReader(out))
					for dec.More() {
						if err := dec.Decode(&v); err != nil {
							t.Errorf("netlab %s: not JSON: %v", strings.Join(args, " "), err)
							break
						}
					}
				case "yaml":
					for _, doc := range strings.Split(strings.TrimPrefix(out, "---\n"), "\n---\n") {
						if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
							t.Errorf("netlab %s: not YAML: %v", strings.Join(args, " "), err)
							break
						}
					}
				}
			}
		}
	})

	t.Run("logs takes the names it lists", func(t *testing.T) {
		out, errOut, code := netlab(t, "logs", "--name", a.Lab, "-o", "json")
		var files []lab.LogFile
		if code != 0 || json.Unmarshal([]byte(out), &files) != nil {
			t.Fatalf("logs -o json: exit %d: %s", code, errOut)
		}
		var names []string
		for _, lf := range files {
			names = append(names, lf.Name())
		}
		for _, pr := range a.Processes {
			want := pr.Role + " " + pr.Name
			if pr.Role == pr.Name {
				want = pr.Role
			}
			if !slices.Contains(names, want) {
				t.Errorf("logs lists %v, not %q", names, want)
			}
		}
		table, _, _ := netlab(t, "logs", "--name", a.Lab)
		if strings.Join(strings.Fields(table), ",") != strings.Join(names, ",") && strings.Count(table, "\n") != len(names) {
			t.Errorf("logs table lists\n%s\nwant %v", table, names)
		}
		for _, n := range names {
			args := append([]string{"logs", "--name", a.Lab, "--tail", "2"}, strings.Fields(n)...)
			out, errOut, code := netlab(t, args...)
			if code != 0 || strings.Count(out, "\n") > 2 {
				t.Errorf("netlab %s: exit %d, %d lines: %s", strings.Join(args, " "), code, strings.Count(out, "\n"), errOut)
			}
		}
		if _, errOut, code := netlab(t, "logs", "--name", a.Lab, "pod"); code != 2 || !strings.Contains(errOut, "pod web-1") {
			t.Errorf("logs pod (several pods): exit %d, want 2 listing them: %s", code, errOut)
		}
		if _, errOut, code := netlab(t, "logs", "--name", a.Lab, "pod-web-1"); code != 2 || !strings.Contains(errOut, "it has: ") {
			t.Errorf("logs of a name not listed: exit %d, want 2 listing the names: %s", code, errOut)
		}
	})

	t.Run("logs -f follows what the agent writes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		out := &syncBuffer{}
		done := make(chan int)
		go func() {
			done <- cli.Execute(ctx, []string{"logs", "--name", a.Lab, "controller", "-f", "--tail", "1"}, out, out)
		}()
		waitFor := func(line string) {
			t.Helper()
			for deadline := time.Now().Add(15 * time.Second); !strings.Contains(out.String(), line); {
				if time.Now().After(deadline) {
					cancel()
					<-done
					t.Fatalf("logs -f printed no %q in 15 s:\n%s", line, out.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		// The last line printed: the follower has read to the end of the file, so what
		// the controller logs from now on reaches it.
		waitFor("\n")
		if _, errOut, code := netlab(t, "pod", "kill", "web-2", "--name", a.Lab); code != 0 {
			t.Fatalf("pod kill: %s", errOut)
		}
		waitFor("pod not ready pod=web-2") // the controller's next probe, printed as it is logged
		if _, errOut, code := netlab(t, "pod", "start", "web-2", "--name", a.Lab); code != 0 {
			t.Fatalf("pod start: %s", errOut)
		}
		waitFor("pod ready pod=web-2")
		cancel()
		if code := <-done; code != 0 || !strings.Contains(out.String(), "pod not ready pod=web-2") || !strings.Contains(out.String(), "pod ready pod=web-2") {
			t.Errorf("logs -f (exit %d) did not follow web-2 leaving and coming back:\n%s", code, out.String())
		}
	})

	t.Run("export logs holds every file it promises", func(t *testing.T) {
		dir := t.TempDir()
		_, errOut, code := netlab(t, "export", "logs", "--name", a.Lab, dir)
		if code != 0 {
			t.Fatalf("export logs: exit %d: %s", code, errOut)
		}
		want := []string{"plan.json", "scenario.yaml", "status.json", "endpoints.json", "lb-state.json"}
		for _, pr := range a.Processes {
			want = append(want, filepath.Join("logs", pr.Role+"-"+pr.Name+".log"))
		}
		for _, ns := range a.Namespaces() {
			for _, f := range lab.ExportNetnsFiles() {
				want = append(want, filepath.Join("netns", strings.TrimPrefix(ns, plan.NetnsName(a.Lab, "")), f))
			}
		}
		for _, f := range want {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("export lacks %s: %v", f, err)
			}
		}
		for f, want := range map[string]string{
			"netns/node-1/iptables-save.txt": "-A KUBE-SERVICES",
			"netns/node-1/addresses.txt":     "172.18.0.11/24",
			"netns/node-1/routes.txt":        "10.244.2.0/24",
			"netns/lb/conntrack.txt":         "flow entries",
			"scenario.yaml":                  "kind: Lab",
			"status.json":                    `"name": "` + a.Lab + `"`,
		} {
			if b, _ := os.ReadFile(filepath.Join(dir, f)); !bytes.Contains(b, []byte(want)) {
				t.Errorf("exported %s lacks %q:\n%s", f, want, b)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "errors.txt")); err == nil {
			b, _ := os.ReadFile(filepath.Join(dir, "errors.txt"))
			t.Errorf("export had errors:\n%s", b)
		}
	})

	t.Run("completion lists a running lab's objects", func(t *testing.T) {
		out, _, _ := netlab(t, "__complete", "exec", "--name", a.Lab, "")
		for _, obj := range []string{"client", "lb", "node-1", "web-1", "api-2"} {
			if !slices.Contains(strings.Split(out, "\n"), obj) {
				t.Errorf("exec completion lacks %s:\n%s", obj, out)
			}
		}
		out, _, _ = netlab(t, "__complete", "rules", "--name", a.Lab, "node-1", "--service", "")
		if !strings.Contains(out, "\nweb\n") && !strings.HasPrefix(out, "api\n") {
			t.Errorf("--service completion:\n%s", out)
		}
		out, _, _ = netlab(t, "__complete", "scale", "--name", a.Lab, "deploy")
		if !strings.Contains(out, "deployment/web\n") || !strings.Contains(out, "deployment/api\n") {
			t.Errorf("scale completion lacks the Deployments:\n%s", out)
		}
		out, _, _ = netlab(t, "__complete", "status", "--name", "")
		if !strings.Contains(out, a.Lab+"\n") || !strings.Contains(out, b.Lab+"\n") {
			t.Errorf("--name completion lacks the labs:\n%s", out)
		}
		out, _, _ = netlab(t, "__complete", "logs", "--name", a.Lab, "ingress", "")
		if !strings.Contains(out, "node-1\n") || strings.Contains(out, "web-1") {
			t.Errorf("logs ingress completion:\n%s", out)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		if out, code := netlabProc(t, nil, "exec", "--name", a.Lab, "nosuchobject", "--", "true"); code != 1 || !strings.Contains(out, "no object") {
			t.Errorf("exec into an unknown object: exit %d, want 1: %s", code, out)
		}
		if out, code := netlabProc(t, nil, "exec", "--name", a.Lab, "client", "--", "false"); code != 1 {
			t.Errorf("exec of a failing command: exit %d, want its 1: %s", code, out)
		}
		if _, errOut, code := netlab(t, "rules", "--name", a.Lab, "node-9"); code != 1 || !strings.Contains(errOut, "no node") {
			t.Errorf("rules of an unknown node: exit %d, want 1: %s", code, errOut)
		}
		if _, errOut, code := netlab(t, "check", "--name", "nosuchlab"); code != 2 {
			t.Errorf("check of a lab that is not up: exit %d, want 2: %s", code, errOut)
		}
	})

	t.Run("node fail and recover --wait return when the LB and endpoints reacted", func(t *testing.T) {
		out, errOut, code := netlab(t, "node", "fail", "node-2", "--name", b.Lab, "--wait")
		if code != 0 {
			t.Fatalf("node fail --wait: exit %d: %s%s", code, out, errOut)
		}
		lb, _, _ := netlab(t, "lb", "--name", b.Lab, "-o", "json")
		st, _, _ := netlab(t, "status", "--name", b.Lab, "-o", "json")
		if !strings.Contains(lb, `"healthy": false`) || !strings.Contains(st, `"ready": false`) {
			t.Errorf("after node fail --wait the LB or the endpoints still show node-2 up:\n%s", lb)
		}
		out, errOut, code = netlab(t, "node", "recover", "node-2", "--name", b.Lab, "--wait")
		if code != 0 {
			t.Fatalf("node recover --wait: exit %d: %s%s", code, out, errOut)
		}
		lb, _, _ = netlab(t, "lb", "--name", b.Lab, "-o", "json")
		if strings.Contains(lb, `"healthy": false`) {
			t.Errorf("after node recover --wait the LB still shows a node down:\n%s", lb)
		}
	})

	t.Run("logs outlive down until the next up or --purge", func(t *testing.T) {
		if _, errOut, code := netlab(t, "down", "--name", b.Lab); code != 0 || !strings.Contains(errOut, "logs stay") {
			t.Fatalf("down: exit %d: %s", code, errOut)
		}
		out, errOut, code := netlab(t, "logs", "--name", b.Lab, "lb", "--tail", "3")
		if code != 0 || strings.Count(out, "\n") != 3 {
			t.Errorf("logs lb of a lab that is down: exit %d:\n%s%s", code, out, errOut)
		}
		dir := t.TempDir()
		if _, errOut, code := netlab(t, "export", "logs", "--name", b.Lab, dir); code != 0 || !strings.Contains(errOut, "exported") {
			t.Errorf("export logs of a lab that is down: exit %d: %s", code, errOut)
		}
		for _, f := range []string{"scenario.yaml", "logs/controller-controller.log", "logs/lb-lb.log"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("export of a lab that is down lacks %s", f)
			}
		}
		if _, errOut, code := netlab(t, "down", "--name", b.Lab, "--purge"); code != 0 {
			t.Fatalf("down --purge: exit %d: %s", code, errOut)
		}
		if _, err := os.Stat(rundir.ForLab(b.Lab).Logs()); err == nil {
			t.Errorf("down --purge left %s", rundir.ForLab(b.Lab).Logs())
		}
		if _, _, code := netlab(t, "logs", "--name", b.Lab); code == 0 {
			t.Error("logs of a purged lab succeeded")
		}
	})
}

// As a user other than root, every verb that needs root says so in one line and exits 1;
// plan and version work.
func TestIntegrationNonRootLine(t *testing.T) {
	labtest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "netlab-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "netlab")
	b, err := os.ReadFile(labtest.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil || os.Chmod(dir, 0o755) != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{labtest.AsCLIEnv + "=1", "PATH=/usr/bin:/bin"}
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	for _, args := range [][]string{{"graph", "--name", "demo"}, {"status"}, {"logs", "--name", "demo"}, {"down", "--name", "demo"}, {"exec", "client", "--", "true"}, {"export", "logs", "--name", "demo", "x"}} {
		out, code := run(args...)
		if code != 1 || out != "netlab: this command needs root: run it with sudo\n" {
			t.Errorf("netlab %s as nobody: exit %d, %q", strings.Join(args, " "), code, out)
		}
	}
	if out, code := run("version"); code != 0 || !strings.HasPrefix(out, "netlab ") {
		t.Errorf("version as nobody: exit %d, %q", code, out)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
