package lab_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// The pods whose resolv.conf says the same share one file; a hosts file is each
// namespace's own and a rewrite (apply) changes it in place, so that a session that
// bind-mounted it sees the change; a rewrite that changes one namespace's resolv.conf
// leaves the others' as they were.
func TestIntegrationHostsFilesShared(t *testing.T) {
	labtest.RequireRoot(t)
	name := labtest.LabName("hosts")
	a, b, c := plan.NetnsName(name, "a"), plan.NetnsName(name, "b"), plan.NetnsName(name, "c")
	_, etcErr := os.Stat(rundir.EtcNetns)
	_, markErr := os.Stat(rundir.EtcNetnsMark)
	t.Cleanup(func() {
		for _, ns := range []string{a, b, c} {
			if err := os.RemoveAll(rundir.EtcNetnsDir(ns)); err != nil {
				t.Error(err)
			}
		}
		// What the test made, it removes (/etc/netns only if nothing else is in it).
		if errors.Is(etcErr, os.ErrNotExist) {
			_ = os.Remove(rundir.EtcNetns)
		}
		if errors.Is(markErr, os.ErrNotExist) {
			_ = os.Remove(rundir.EtcNetnsMark)
		}
	})
	p := &plan.Plan{
		Hosts: []plan.HostsFile{{Netns: a, Content: "h1\n"}, {Netns: b, Content: "h1\n"}},
		ResolvConfs: []plan.ResolvConf{{Netns: a, Content: "r1\n"}, {Netns: b, Content: "r1\n"},
			{Netns: c, Content: "r1\n"}},
	}
	if err := lab.WriteHosts(p); err != nil {
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
	ha, ia := file(a, "hosts")
	hb, ib := file(b, "hosts")
	if ha != "h1\n" || hb != "h1\n" || ia == ib {
		t.Errorf("hosts %q (inode %d) and %q (%d): want h1 in two files", ha, ia, hb, ib)
	}
	_, ra := file(a, "resolv.conf")
	_, rb := file(b, "resolv.conf")
	_, rc := file(c, "resolv.conf")
	if ra != rb || ra != rc {
		t.Errorf("resolv.conf inodes %d %d %d: want one file", ra, rb, rc)
	}
	// A live change: b's hosts and c's resolv.conf change.
	p.Hosts[1].Content = "h3\n"
	p.ResolvConfs[2].Content = "r2\n"
	if err := lab.WriteHosts(p); err != nil {
		t.Fatal(err)
	}
	if got, ino := file(b, "hosts"); got != "h3\n" || ino != ib {
		t.Errorf("b's hosts %q inode %d, want h3 in the same file (%d)", got, ino, ib)
	}
	if got, _ := file(a, "hosts"); got != "h1\n" {
		t.Errorf("a's hosts %q, want h1", got)
	}
	for ns, want := range map[string]string{a: "r1\n", b: "r1\n", c: "r2\n"} {
		if got, _ := file(ns, "resolv.conf"); got != want {
			t.Errorf("%s's resolv.conf %q, want %q", ns, got, want)
		}
	}
	for _, ns := range []string{a, b, c} {
		if left, _ := filepath.Glob(filepath.Join(rundir.EtcNetnsDir(ns), ".*")); len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
	}
}
