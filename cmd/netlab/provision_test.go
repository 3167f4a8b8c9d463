package main

// How netlab gets onto a machine: scripts/provision.sh (which the Vagrantfile runs in every
// VM) and the Vagrantfile itself.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the checkout this test runs in (the package is cmd/netlab).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// run runs a command in the checkout and returns its combined output and exit code.
func run(t *testing.T, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), 0
}

// lifetimes are the parts of `ip` output that count down by themselves (DHCP and router
// advertisement lifetimes), not changes.
var lifetimes = regexp.MustCompile(`(valid_lft|preferred_lft|expires) \S+`)

// hostNetwork is what provisioning must leave as it was: the root namespace's links,
// addresses, routes, rules, firewall (iptables and nftables), the forwarding and bridge
// netfilter sysctls, and whether netlab made br_netfilter load at boot.
func hostNetwork(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	for _, argv := range [][]string{
		{"ip", "-d", "link", "show"}, {"ip", "addr", "show"}, {"ip", "route", "show", "table", "all"},
		{"ip", "-6", "route", "show", "table", "all"}, {"ip", "rule", "show"},
		{"iptables-save"}, {"nft", "list", "ruleset"},
	} {
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", argv, err, out)
		}
		var keep []string
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "#") { // iptables-save's comments carry the time
				keep = append(keep, lifetimes.ReplaceAllString(l, "$1"))
			}
		}
		fmt.Fprintf(&b, "## %s\n%s\n", strings.Join(argv, " "), strings.Join(keep, "\n"))
	}
	for _, f := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding",
		"/proc/sys/net/bridge/bridge-nf-call-iptables", "/etc/modules-load.d/netlab.conf"} {
		v, err := os.ReadFile(f)
		fmt.Fprintf(&b, "%s=%q (%v)\n", f, v, err)
	}
	return b.String()
}

// scripts/provision.sh, run twice on this machine as CI does: the second run installs no
// package and both leave the host's network exactly as it was. netlab lands in PREFIX.
func TestIntegrationProvisionIdempotent(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("integration tests need root in CI")
		}
		t.Skip("integration test: needs root (provision.sh installs packages)")
	}
	if out, code := run(t, nil, "scripts/provision.sh", "--bogus"); code != 2 || !strings.Contains(out, "unknown argument --bogus") {
		t.Errorf("provision.sh --bogus: exit %d, want 2 naming the argument: %s", code, out)
	}
	before := hostNetwork(t)
	prefix := t.TempDir()
	env := []string{"PREFIX=" + prefix}
	for i := 1; i <= 2; i++ {
		out, code := run(t, env, "scripts/provision.sh")
		t.Logf("run %d:\n%s", i, out)
		if code != 0 {
			t.Fatalf("provision.sh run %d: exit %d", i, code)
		}
		if !strings.Contains(out, "provision: ok") {
			t.Errorf("provision.sh run %d does not end with provision: ok", i)
		}
		if i == 2 && strings.Contains(out, "deps: installing") {
			t.Errorf("the second run installed packages again: not idempotent")
		}
		if after := hostNetwork(t); after != before {
			t.Fatalf("provision.sh run %d changed the host's network:\n%s", i, diff(before, after))
		}
	}
	out, err := exec.Command(filepath.Join(prefix, "bin", "netlab"), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "netlab ") {
		t.Errorf("the installed netlab does not run: %v: %s", err, out)
	}
	// The pod agent and the node agents are installed beside it, where netlab looks for them.
	for _, name := range []string{"netlab-pod", "netlab-agent"} {
		if st, err := os.Stat(filepath.Join(prefix, "bin", name)); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s is not installed beside netlab: %v", name, err)
		}
	}
}

// The Vagrantfile is valid for one VM and for a classroom of two (each VM its own lab). vagrant comes from scripts/deps.sh
// (TEST=1) where apt has it.
func TestVagrantfileValidates(t *testing.T) {
	vagrant, err := exec.LookPath("vagrant")
	if err != nil {
		t.Skip("vagrant is not installed (TEST=1 scripts/deps.sh installs it where apt has the package): the Vagrantfile is not validated")
	}
	cases := []struct {
		vms      string
		code     int
		contains []string
	}{
		{"", 0, []string{"Vagrantfile validated successfully", "default:"}},
		{"2", 0, []string{"Vagrantfile validated successfully", "netlab-1:", "netlab-2:"}},
	}
	_, err = os.Stat(filepath.Join(repoRoot(t), ".vagrant"))
	hadDotVagrant := err == nil
	var wg sync.WaitGroup
	results := make([]struct {
		out  string
		code int
	}, len(cases))
	for i, c := range cases {
		// Vagrant keeps its state in VAGRANT_HOME and the project's .vagrant: both in a
		// temporary directory, so the checkout and root's home stay as they were.
		dir := t.TempDir()
		env := []string{"VAGRANT_HOME=" + filepath.Join(dir, "home"), "VAGRANT_DOTFILE_PATH=" + filepath.Join(dir, "dot"),
			"VAGRANT_CHECKPOINT_DISABLE=1", "NETLAB_VMS=" + c.vms}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// No provider (VirtualBox, libvirt) is installed here: validate the rest.
			cmd := exec.Command(vagrant, "validate", "--ignore-provider")
			cmd.Dir = repoRoot(t)
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			results[i].out = string(out)
			if ee, ok := err.(*exec.ExitError); ok {
				results[i].code = ee.ExitCode()
			} else if err != nil {
				results[i].out, results[i].code = err.Error(), -1
			}
		}()
	}
	wg.Wait()
	for i, c := range cases {
		r := results[i]
		if r.code != c.code {
			t.Errorf("NETLAB_VMS=%q vagrant validate: exit %d, want %d:\n%s", c.vms, r.code, c.code, r.out)
			continue
		}
		for _, want := range c.contains {
			if !strings.Contains(r.out, want) {
				t.Errorf("NETLAB_VMS=%q vagrant validate: no %q in:\n%s", c.vms, want, r.out)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(repoRoot(t), ".vagrant")); err == nil && !hadDotVagrant {
		t.Errorf("vagrant validate left .vagrant in the checkout")
	}
}

// diff lists the lines only in a or only in b.
func diff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !inb[l] {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ina[l] {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
