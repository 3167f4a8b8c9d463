package supervise_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/supervise"
)

func TestAgentBinary(t *testing.T) {
	dir := t.TempDir()
	netlab := filepath.Join(dir, "netlab")
	pod := plan.Process{Role: "pod", Name: "web-1", Args: []string{"agent", "pod", "--lab", "x"}}
	dns := plan.Process{Role: "pod", Name: "coredns-1", Args: []string{"agent", "dns", "--lab", "x"}}
	kp := plan.Process{Role: "kube-proxy", Name: "node-1", Args: []string{"agent", "kube-proxy", "--lab", "x"}}

	ing := plan.Process{Role: "ingress", Name: "node-1", Args: []string{"agent", "ingress", "--lab", "x"}}
	unknown := plan.Process{Role: "x", Name: "y", Args: []string{"agent", "not-a-role", "--lab", "x"}}

	t.Setenv(supervise.PodBinaryEnv, "")
	t.Setenv(supervise.AgentBinaryEnv, "")
	if got, err := supervise.AgentBinary(netlab, unknown); err != nil || got != netlab {
		t.Errorf("a role netlab-agent does not run runs %q (%v), want netlab itself", got, err)
	}
	// The node and cluster agents, the ingress among them, run netlab-agent, found beside netlab.
	for _, pr := range []plan.Process{dns, kp, ing, supervise.SupervisorProcess("x")} {
		_, err := supervise.AgentBinary(netlab, pr)
		if err == nil {
			t.Fatalf("%s %s: no error with netlab-agent missing", pr.Role, pr.Name)
		}
		for _, want := range []string{"netlab-agent is missing", filepath.Join(dir, "netlab-agent"), "make build", "make install", supervise.AgentBinaryEnv} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	}
	agentBin := filepath.Join(dir, "netlab-agent")
	if err := os.WriteFile(agentBin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, pr := range []plan.Process{dns, kp, ing, supervise.SupervisorProcess("x")} {
		if got, err := supervise.AgentBinary(netlab, pr); err != nil || got != agentBin {
			t.Errorf("%s %s runs %q (%v), want %q", pr.Role, pr.Name, got, err, agentBin)
		}
	}
	t.Setenv(supervise.AgentBinaryEnv, filepath.Join(t.TempDir(), "missing"))
	if _, err := supervise.AgentBinary(netlab, kp); err == nil || !strings.Contains(err.Error(), "$"+supervise.AgentBinaryEnv) {
		t.Errorf("missing $%s binary: %v", supervise.AgentBinaryEnv, err)
	}
	// Missing beside netlab: an error that says where it looked and how to get it.
	_, err := supervise.AgentBinary(netlab, pod)
	if err == nil {
		t.Fatal("no error with netlab-pod missing")
	}
	for _, want := range []string{"netlab-pod is missing", filepath.Join(dir, "netlab-pod"), "make build", "make install", supervise.PodBinaryEnv} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Not executable: refused.
	path := filepath.Join(dir, "netlab-pod")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := supervise.AgentBinary(netlab, pod); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Errorf("non-executable file: %v", err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := supervise.AgentBinary(netlab, pod); err != nil || got != path {
		t.Errorf("pod runs %q (%v), want %q", got, err, path)
	}
	// $NETLAB_POD_BINARY wins, and must exist.
	other := filepath.Join(t.TempDir(), "pod-agent")
	t.Setenv(supervise.PodBinaryEnv, other)
	if _, err := supervise.AgentBinary(netlab, pod); err == nil || !strings.Contains(err.Error(), "$"+supervise.PodBinaryEnv) {
		t.Errorf("missing $%s binary: %v", supervise.PodBinaryEnv, err)
	}
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := supervise.AgentBinary(netlab, pod); err != nil || got != other {
		t.Errorf("pod runs %q (%v), want %q", got, err, other)
	}
}
