package supervise

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
)

func TestQuietStartLeavesOutAnIngressWithWorkers(t *testing.T) {
	for _, tc := range []struct {
		pr   plan.Process
		want bool
	}{
		{plan.Process{Role: "pod", Args: []string{"agent", "pod", "--port", "8080/TCP"}}, true},
		{plan.Process{Role: "kube-proxy", Args: []string{"agent", "kube-proxy", "--workers", "2"}}, true},
		{plan.Process{Role: "ingress", Args: []string{"agent", "ingress", "--node", "node-1"}}, true},
		{plan.Process{Role: "ingress", Args: []string{"agent", "ingress", "--workers", "2"}}, false},
		{plan.Process{Role: "ingress", Args: []string{"agent", "ingress", "--workers=auto"}}, false},
		{plan.Process{Role: "ingress", Args: []string{"agent", "ingress", "-workers", "2"}}, false},
		{plan.Process{Role: "ingress", Args: []string{"agent", "ingress", "-workers=2"}}, false},
		{plan.Process{Role: "ingress", Args: []string{"agent", "ingress", "--class", "workers"}}, true},
	} {
		if got := quietStart(tc.pr); got != tc.want {
			t.Errorf("quietStart(%q) = %v, want %v", tc.pr.Args, got, tc.want)
		}
	}
}

// Only a program built without cgo starts quietly: it alone can set every thread's timer
// slack back (syscall.AllThreadsSyscall). Builds one program both ways.
func TestBuiltWithoutCgo(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nimport _ \"net\"\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module quiettest\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(cgo string) string {
		t.Helper()
		out := filepath.Join(dir, "prog")
		cmd := exec.Command(gobin, "build", "-o", out, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Skipf("go build with CGO_ENABLED=%s: %v: %s", cgo, err, b)
		}
		return out
	}
	if p := build("0"); !builtWithoutCgo(p) {
		t.Errorf("a program built with CGO_ENABLED=0: builtWithoutCgo false")
	}
	// The same path rebuilt (another size or time): read again, not taken from the cache.
	if p := build("1"); builtWithoutCgo(p) {
		t.Errorf("a program built with CGO_ENABLED=1: builtWithoutCgo true")
	}
	if builtWithoutCgo(filepath.Join(dir, "main.go")) || builtWithoutCgo(filepath.Join(dir, "missing")) {
		t.Errorf("a file that is no Go program, or none: builtWithoutCgo true")
	}
}
