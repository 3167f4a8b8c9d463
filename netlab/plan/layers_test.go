package plan

import (
	"go/build"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// layer is one package's place in the house (docs/architecture.md): whether it is pure
// (no kernel library, no process, directly or through a dependency) and which netlab
// packages it may import. Pure packages also list the only modules beyond the standard
// library they may import; side-effect packages may import any module.
type layer struct {
	pure     bool
	netlab   []string // netlab packages it may import ("*": any)
	external []string // pure packages only: module prefixes beyond the standard library
}

const modulePath = "github.com/netlabdev/netlab/netlab/"

// layers has one row per package directory under netlab/ with non-test Go files. A new
// package adds its row here and in docs/architecture.md.
var layers = map[string]layer{
	// Floor 1: the model, pure.
	"scenario": {pure: true, external: []string{"k8s.io/api/", "k8s.io/apimachinery/", "sigs.k8s.io/yaml", "sigs.k8s.io/json"}},
	"iptables": {pure: true},
	// Floor 2: what the lab is and what each agent computes, pure.
	"kubeproxy": {pure: true, netlab: []string{"iptables"}},
	// kube-proxy's nftables mode shares the Service model of the iptables renderer, not its text.
	"kubeproxy/nftables": {pure: true, netlab: []string{"kubeproxy"}},
	"lb":                 {pure: true, netlab: []string{"iptables"}},
	// The ingress: Ingress and Secret types of its own and a hand-written Prometheus
	// exposition, so that its agent needs neither the Kubernetes API nor client_golang.
	"ingress": {pure: true, external: []string{"golang.org/x/net/"}},
	// The plan is what every agent reads: no Kubernetes types (planbuild makes it from them).
	"plan":      {pure: true, netlab: []string{"kubeproxy", "kubeproxy/nftables"}},
	"planbuild": {pure: true, netlab: []string{"scenario", "plan"}, external: []string{"k8s.io/api/", "k8s.io/apimachinery/"}},
	"dns":       {pure: true, netlab: []string{"plan"}, external: []string{"github.com/miekg/dns"}},
	// Floor 3: side effects on the kernel and the runtime directory.
	"kernel":  {},
	"rundir":  {netlab: []string{"plan", "kubeproxy", "lb", "kernel"}},
	"capture": {netlab: []string{"kernel"}},
	"drops":   {},
	// The supervisor of a lab's agents (started by lab, watched by the controller), and
	// the capability drop every agent inside a lab namespace does at start (or its starter
	// does for it, on the thread it forks it from).
	"supervise": {netlab: []string{"plan", "kernel", "rundir", "privs", "ready"}},
	"privs":     {},
	"nftrace":   {netlab: []string{"kernel", "iptables"}},
	// kube-proxy's nftables transactions sent through netlink.
	"kubeproxy/nftnl": {netlab: []string{"kubeproxy/nftables"}},
	// How an agent says it is ready (a pipe): standard library only, for netlab-pod.
	"ready": {},
	"rawio": {},
	// Floor 4: the orchestrator and the agents, side by side over rundir: neither imports
	// the other.
	"lab": {netlab: []string{"scenario", "plan", "kubeproxy", "kubeproxy/nftables", "lb", "ingress", "iptables", "kernel", "rundir", "capture", "drops", "nftrace", "supervise", "ready"}},
	// The agents of the netlab-agent binary: no Kubernetes types, Prometheus or cobra (a
	// test in the package holds the binary to that).
	"agent": {netlab: []string{"plan", "kubeproxy", "kubeproxy/nftables", "kubeproxy/nftnl", "lb", "dns", "iptables", "kernel", "rundir", "supervise", "ready", "privs", "podagent", "ingressagent"}},
	// The ingress agent's main, which netlab-agent runs (agent.Main's ingress role).
	"ingressagent": {netlab: []string{"plan", "ingress", "kubeproxy", "rundir", "ready", "rawio"}},
	// The pod echo agent, the whole of the small netlab-pod binary: nothing heavier than
	// the standard library and privs (a test in the package holds its binary to that).
	"podagent": {netlab: []string{"ready", "privs"}},
	// Floor 5: the command line, and the test helpers that drive it.
	"cli":     {netlab: []string{"*"}},
	"labtest": {netlab: []string{"*"}},
	// Test-only models.
	"internal/iptablestest": {pure: true, netlab: []string{"iptables"}},
	// What the tests of the agents' plan views share.
	"internal/planviewtest": {netlab: []string{"scenario", "planbuild", "plan", "rundir"}},
}

// TestLayers holds the design rule for every package in one place: each package imports
// only what its row allows, and pure packages reach no kernel library or process through
// any dependency.
func TestLayers(t *testing.T) {
	root := ".."
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || d.Name() == "testdata" {
			if d != nil && d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return err
		}
		bp, err := build.ImportDir(path, 0)
		if err != nil || len(bp.GoFiles) == 0 {
			return nil // no package, or tests only
		}
		rel, _ := filepath.Rel(root, path)
		dirs = append(dirs, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		if _, ok := layers[dir]; !ok {
			t.Errorf("package netlab/%s has no row in layers (layers_test.go) and docs/architecture.md: say which floor it is on and what it may import", dir)
		}
	}
	// The map a newcomer reads has the same rows.
	if doc, err := os.ReadFile("../../docs/architecture.md"); err != nil {
		t.Error(err)
	} else {
		for pkg := range layers {
			if !strings.Contains(string(doc), "\n| netlab/"+pkg+" |") {
				t.Errorf("docs/architecture.md has no row for netlab/%s", pkg)
			}
		}
	}
	forbidden := map[string]bool{"os/exec": true, "unsafe": true} // syscall is fine for error numbers
	for pkg, l := range layers {
		bp, err := build.ImportDir(filepath.Join(root, pkg), 0)
		if err != nil {
			t.Errorf("%s: %v", pkg, err)
			continue
		}
		for _, imp := range bp.Imports {
			if rest, ok := strings.CutPrefix(imp, modulePath); ok {
				if !slices.Contains(l.netlab, "*") && !slices.Contains(l.netlab, rest) {
					t.Errorf("package %s imports netlab/%s, which its layer does not allow", pkg, rest)
				}
				continue
			}
			if !l.pure {
				continue
			}
			first, _, _ := strings.Cut(imp, "/")
			ok := !strings.Contains(first, ".") && !forbidden[imp]
			for _, a := range l.external {
				ok = ok || strings.HasPrefix(imp, a)
			}
			if !ok {
				t.Errorf("pure package %s imports %s", pkg, imp)
			}
		}
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH: transitive check skipped")
	}
	// One go list for every package: "path dep dep ...".
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	depsOf := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		path, deps, _ := strings.Cut(line, " ")
		depsOf[path] = strings.ReplaceAll(deps, " ", "\n") + "\n"
	}
	for pkg, l := range layers {
		deps, ok := depsOf[modulePath+pkg]
		if !ok {
			t.Errorf("go list does not know %s", pkg)
		}
		if l.pure {
			for _, bad := range []string{"github.com/vishvananda/netlink", "github.com/vishvananda/netns", "github.com/coreos/go-iptables", modulePath + "kernel"} {
				if strings.Contains(deps, bad+"\n") {
					t.Errorf("pure package %s depends on %s", pkg, bad)
				}
			}
		}
		// The agents are started by lab and cli; they never depend on them.
		if pkg == "agent" || pkg == "ingressagent" || pkg == "rundir" {
			for _, bad := range []string{"lab", "cli"} {
				if strings.Contains(deps, modulePath+bad+"\n") {
					t.Errorf("%s depends on netlab/%s", pkg, bad)
				}
			}
		}
	}
}
