package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// The namespaces whose hosts or resolv.conf say the same share one file; a rewrite (apply)
// that changes one namespace's file leaves the others' content as it was.
func TestIntegrationHostsFilesShared(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: writes /etc/netns")
	}
	lab := fmt.Sprintf("hosts%05d", os.Getpid()%100000)
	a, b, c := plan.NetnsName(lab, "a"), plan.NetnsName(lab, "b"), plan.NetnsName(lab, "c")
	t.Cleanup(func() {
		for _, ns := range []string{a, b, c} {
			if err := os.RemoveAll(rundir.EtcNetnsDir(ns)); err != nil {
				t.Error(err)
			}
		}
	})
	p := &plan.Plan{
		Hosts: []plan.HostsFile{{Netns: a, Content: "h1\n"}, {Netns: b, Content: "h1\n"}, {Netns: c, Content: "h2\n"}},
		ResolvConfs: []plan.ResolvConf{{Netns: a, Content: "r1\n"}, {Netns: b, Content: "r1\n"},
			{Netns: c, Content: "r1\n"}},
	}
	if err := writeHosts(context.Background(), p, Options{}); err != nil {
		t.Fatal(err)
	}
	file := func(ns, name string) (string, uint64) {
		t.Helper()
		path := filepath.Join(rundir.EtcNetnsDir(ns), name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return string(b), st.Ino
	}
	check := func(want map[string]string) {
		t.Helper()
		for key, content := range want {
			ns, name, _ := strings.Cut(key, "|")
			if got, _ := file(ns, name); got != content {
				t.Errorf("%s/%s = %q, want %q", ns, name, got, content)
			}
		}
	}
	check(map[string]string{a + "|hosts": "h1\n", b + "|hosts": "h1\n", c + "|hosts": "h2\n",
		a + "|resolv.conf": "r1\n", b + "|resolv.conf": "r1\n", c + "|resolv.conf": "r1\n"})
	_, ia := file(a, "hosts")
	_, ib := file(b, "hosts")
	_, ic := file(c, "hosts")
	if ia != ib || ia == ic {
		t.Errorf("hosts inodes a %d b %d c %d: want a and b one file, c another", ia, ib, ic)
	}
	if _, ra := file(a, "resolv.conf"); true {
		if _, rc := file(c, "resolv.conf"); ra != rc {
			t.Errorf("resolv.conf of a and c are two files (%d, %d)", ra, rc)
		}
	}
	// b's hosts changes (a live change): a's, which was the same file, does not.
	p.Hosts[1].Content = "h3\n"
	p.ResolvConfs[2].Content = "r2\n"
	if err := writeHosts(context.Background(), p, Options{}); err != nil {
		t.Fatal(err)
	}
	check(map[string]string{a + "|hosts": "h1\n", b + "|hosts": "h3\n", c + "|hosts": "h2\n",
		a + "|resolv.conf": "r1\n", b + "|resolv.conf": "r1\n", c + "|resolv.conf": "r2\n"})
	for _, ns := range []string{a, b, c} {
		left, _ := filepath.Glob(filepath.Join(rundir.EtcNetnsDir(ns), ".*"))
		if len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
	}
}
