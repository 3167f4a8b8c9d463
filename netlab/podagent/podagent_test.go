package podagent_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/podagent"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// The pod binary does not import plan or the runtime directory's package: its copy of
// their layout must stay equal to theirs.
func TestLayoutMatchesTheLab(t *testing.T) {
	if got, want := podagent.NetnsName("demo", "web-1"), plan.NetnsName("demo", "web-1"); got != want {
		t.Errorf("NetnsName = %q, plan says %q", got, want)
	}
	if got, want := podagent.DefaultDir("demo"), rundir.ForLab("demo").Path(); got != want {
		t.Errorf("DefaultDir = %q, lab says %q", got, want)
	}
	if got, want := podagent.LeavingMark(podagent.DefaultDir("demo"), "web-1"), rundir.ForLab("demo").Leaving("web-1"); got != want {
		t.Errorf("LeavingMark = %q, lab says %q", got, want)
	}
}

// netlab-pod exists so that a pod's process initialises nothing but the standard library
// (and the capability drop, x/sys/unix): no Kubernetes types, no Prometheus, no netlink.
func TestPodBinaryImportsOnlyTheStandardLibrary(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}",
		"github.com/netlabdev/netlab/cmd/netlab-pod").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	allowed := map[string]bool{
		"github.com/netlabdev/netlab/cmd/netlab-pod":  true,
		"github.com/netlabdev/netlab/netlab/podagent": true,
		"github.com/netlabdev/netlab/netlab/ready":    true,
		"github.com/netlabdev/netlab/netlab/privs":    true,
		"golang.org/x/sys/unix":                       true,
	}
	for _, dep := range strings.Fields(string(out)) {
		if !allowed[dep] {
			t.Errorf("netlab-pod imports %s", dep)
		}
	}
}

func TestMainRefusesBadArguments(t *testing.T) {
	var stderr bytes.Buffer
	code := podagent.Main([]string{"agent", "pod", "--node", "node-1", "extra"}, &stderr)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr: %s", code, &stderr)
	}
	for _, want := range []string{`unexpected arguments ["extra"]`, "--lab is required", "--pod is required", "at least one --port"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q: %s", want, &stderr)
		}
	}
	stderr.Reset()
	if code := podagent.Main([]string{"--lab", "x", "--pod", "p", "--port", "70000/TCP"}, &stderr); code != 2 || !strings.Contains(stderr.String(), `bad port "70000/TCP"`) {
		t.Errorf("bad port: exit %d, stderr %s", code, &stderr)
	}
}

// Outside its pod's namespace the agent refuses to listen (it would serve on the host).
func TestMainRefusesOutsideItsNamespace(t *testing.T) {
	var stderr bytes.Buffer
	code := podagent.Main([]string{"agent", "pod", "--lab", "nolab", "--pod", "web-1", "--port", "8080/TCP"}, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "must run inside namespace nl-nolab-web-1") {
		t.Fatalf("exit %d, stderr %q", code, &stderr)
	}
}

// The netlab-pod binary, started as up starts it (inside the pod's namespace, with a
// readiness pipe), reports ready and serves the pod echo contract on TCP and UDP.
func TestPodBinaryServesEchoContract(t *testing.T) {
	labtest.RequireRoot(t)
	bin, err := supervise.PodBinary("/nonexistent/netlab") // $NETLAB_POD_BINARY, built by labtest.Main
	if err != nil {
		t.Fatal(err)
	}
	labName := labtest.LabName("pa")
	ns := plan.NetnsName(labName, "echo-1")
	if err := kernel.CreateNetns(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := kernel.DeleteNetns(ns); err != nil {
			t.Error(err)
		}
	})
	h := kernel.NewHandles()
	defer h.Close()
	if err := h.LoUp(ns); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "agent", "pod", "--lab", labName, "--pod", "echo-1", "--node", "node-1", "--ip", "127.0.0.1",
		"--port", "8080/TCP", "--port", "9053/UDP", "--dir", t.TempDir())
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = append(os.Environ(), "NETLAB_READY_FD=3")
	if err := kernel.Start(ns, cmd); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	line, _ := bufio.NewReader(r).ReadString('\n')
	if line != "READY\n" {
		t.Fatalf("readiness pipe said %q; log: %s", line, &logs)
	}

	conn, err := kernel.DialIn(ns, "tcp", "127.0.0.1:8080", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /some/path?q=1 HTTP/1.1\r\nHost: app.example\r\nX-Test: yes\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	want := map[string]any{"pod": "echo-1", "node": "node-1", "podIP": "127.0.0.1", "port": float64(8080),
		"clientIP": "127.0.0.1", "method": "GET", "host": "app.example", "path": "/some/path", "lab": labName}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("echo %s = %v, want %v", k, e[k], v)
		}
	}
	if hs, _ := e["headers"].(map[string]any); fmt.Sprint(hs["X-Test"]) != "[yes]" {
		t.Errorf("echo headers = %v, want X-Test: [yes]", e["headers"])
	}
	// Keep-alive: /healthz on the same connection.
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}

	uc, err := kernel.DialIn(ns, "udp", "127.0.0.1:9053", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	_ = uc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := uc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n, err := uc.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var ue map[string]any
	if err := json.Unmarshal(buf[:n], &ue); err != nil {
		t.Fatal(err)
	}
	if ue["pod"] != "echo-1" || ue["protocol"] != "UDP" || ue["port"] != float64(9053) || ue["payload"] != "hello" || ue["clientIP"] != "127.0.0.1" {
		t.Errorf("UDP echo = %v", ue)
	}

	// SIGTERM (not leaving): the agent stops at once and exits 0, the keep-alive
	// connection still open (its exit closes it: ExitAtOnce).
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v; log: %s", err, &logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after SIGTERM; log: %s", &logs)
	}
	if !strings.Contains(logs.String(), `"msg":"pod serving"`) || !strings.Contains(logs.String(), `"msg":"pod stopped"`) {
		t.Errorf("log lacks the serving or the stopped line: %s", &logs)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the keep-alive connection is still open after the agent's exit")
	}
}
