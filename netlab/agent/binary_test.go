package agent_test

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/agent"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// netlab-agent exists so that kube-proxy, the ingress, the controller, the LB, the cluster
// DNS and the supervisor do not initialise the CLI's packages at every start: no
// Kubernetes types, no Prometheus, no cobra, nothing of the CLI or the orchestrator. Its
// modules beyond this one are the kernel libraries, the DNS library, golang.org/x/net
// (HTTP/2 for the ingress, with x/text for its host names) and the JSON decoder the plan
// is read with (rundir.ReadPlanFile), nothing else.
func TestAgentBinaryImportBudget(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}",
		"github.com/netlabdev/netlab/cmd/netlab-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v: %s", err, out)
	}
	modules := []string{
		"github.com/netlabdev/netlab/",
		"golang.org/x/sys/", "golang.org/x/net/", "golang.org/x/sync/", "golang.org/x/text/",
		"github.com/vishvananda/",
		"github.com/google/nftables", "github.com/mdlayher/",
		"github.com/miekg/dns", "github.com/goccy/go-json",
	}
	// Packages of this module the agents must not pull in (they bring the rest).
	heavy := []string{"cli", "lab", "labtest", "scenario", "planbuild", "capture", "drops", "nftrace"}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/netlabdev/netlab/netlab/agent") {
		t.Fatalf("go list of netlab-agent does not list netlab/agent: %s", out)
	}
	for _, dep := range deps {
		if !slices.ContainsFunc(modules, func(m string) bool { return strings.HasPrefix(dep, m) }) {
			t.Errorf("netlab-agent imports %s", dep)
		}
		if rest, ok := strings.CutPrefix(dep, "github.com/netlabdev/netlab/netlab/"); ok && slices.Contains(heavy, rest) {
			t.Errorf("netlab-agent imports netlab/%s", rest)
		}
	}
}

// up and the supervisor choose netlab-agent for supervise.AgentRoles: Main must run
// exactly those.
func TestRolesAreTheSupervisorsAgentRoles(t *testing.T) {
	if !slices.Equal(agent.Roles, supervise.AgentRoles) {
		t.Errorf("agent.Roles %v, supervise.AgentRoles %v", agent.Roles, supervise.AgentRoles)
	}
}

func TestMainRefusesBadCommandLines(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"agent", "ingress", "--lab", "x", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"agent", "pod", "--lab", "x"}, 2, "usage:"},
		{[]string{"kube-proxy", "--lab", "x"}, 2, "usage:"},
		{[]string{"agent", "kube-proxy", "--lab", "x", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"agent", "controller", "--lab", "x", "extra"}, 2, `unexpected arguments ["extra"]`},
		{[]string{"agent", "lb", "--lab", "x", "--dir", "/tmp"}, 2, "flag provided but not defined: -dir"},
	} {
		var stderr bytes.Buffer
		if code := agent.Main(c.args, &stderr); code != c.code || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("Main(%q) = %d, stderr %q; want %d and %q", c.args, code, &stderr, c.code, c.want)
		}
	}
}

// An agent that changes its namespace (rules, listeners) refuses to run anywhere but its
// own lab object's: a hand-started one never touches the host's network.
func TestMainRefusesOutsideItsNamespace(t *testing.T) {
	for _, c := range []struct {
		args []string
		ns   string
	}{
		{[]string{"agent", "kube-proxy", "--lab", "nolab", "--node", "node-1"}, "nl-nolab-node-1"},
		{[]string{"agent", "lb", "--lab", "nolab"}, "nl-nolab-lb"},
		{[]string{"agent", "dns", "--lab", "nolab", "--pod", "coredns-1", "--node", "node-1", "--ip", "10.244.1.2"}, "nl-nolab-coredns-1"},
		{[]string{"agent", "ingress", "--lab", "nolab", "--node", "node-2"}, "nl-nolab-node-2"},
	} {
		var stderr bytes.Buffer
		if code := agent.Main(c.args, &stderr); code != 1 || !strings.Contains(stderr.String(), "must run inside namespace "+c.ns) {
			t.Errorf("Main(%q) = %d, stderr %q", c.args, code, &stderr)
		}
	}
}
