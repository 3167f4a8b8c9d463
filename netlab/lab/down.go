package lab

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/supervise"
)

// Down removes everything of a lab, found by name; it needs no scenario or plan and is
// idempotent: a lab that is not there is not an error.
func Down(lab string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := plan.CheckLabName(lab); err != nil {
		return err
	}
	lk, err := rundir.LockLab(lab)
	if err != nil {
		return err
	}
	err = down(lab, log)
	lk.Unlock(err == nil)
	return err
}

// netnsNameRE matches the namespaces netlab makes: nl-<lab>-<object>.
var netnsNameRE = regexp.MustCompile(`^nl-[a-z][a-z0-9]*-[a-z0-9][a-z0-9.-]*$`)

// DownAll removes every netlab lab on the machine.
func DownAll(log *slog.Logger) error {
	labs, err := Labs()
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range labs {
		if plan.CheckLabName(l) != nil {
			continue // not ours to parse; swept below by prefix
		}
		errs = append(errs, Down(l, log))
	}
	// Namespaces of labs whose runtime directory is gone are found by name; names that no
	// lab of ours could have made are left alone.
	rest, _ := kernel.ListNetns("nl-")
	var ours []string
	for _, ns := range rest {
		if netnsNameRE.MatchString(ns) {
			ours = append(ours, ns)
		}
	}
	errs = append(errs, removeNamespaces(ours, false, log))
	return errors.Join(errs...)
}

func down(lab string, log *slog.Logger) error {
	start := time.Now()
	nss, err := kernel.ListNetns(plan.NetnsName(lab, ""))
	if err != nil {
		return err
	}
	var errs []error
	// Every agent, also those outside the lab's namespaces (supervisor, controller) or in
	// a namespace deleted by hand. The lock we hold keeps the supervisor and the
	// controller from restarting anything; they go first all the same.
	t := time.Now()
	phase := func(name string) {
		log.Debug("down phase done", "phase", name, "ms", time.Since(t).Milliseconds())
		t = time.Now()
	}
	// The namespaces' /etc/netns directories (a pod's each, 1000 in a big lab) go while
	// the agents end: no agent reads them (`ip netns exec` does, when it starts a process).
	etcDone := make(chan error, 1)
	go func() {
		matches, _ := filepath.Glob(filepath.Join(rundir.EtcNetns, plan.NetnsName(lab, "")+"*"))
		etcDone <- forEach(len(matches), func(i int) error { return os.RemoveAll(matches[i]) })
	}()
	// The agents their pid files name are signalled at once, and end while /proc is
	// searched for the others (a few hundred reads of other processes' command lines at
	// 300 pods); then one round of signals and waiting for all. The supervisor and the
	// controller, which restart agents, are signalled first, and the lock we hold keeps
	// them from restarting any.
	found := agentFinder{lab: lab, seen: map[int]bool{}}
	found.fromPIDFiles()
	for _, pid := range append(slices.Clone(found.restarters), found.others...) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	phase("signal recorded agents")
	found.fromProc()
	phase("find other agents")
	kernel.Terminate(append(found.restarters, found.others...), 2*time.Second)
	phase("end agents")
	errs = append(errs, removeNamespaces(nss, false, log))
	phase("remove namespaces")
	errs = append(errs, <-etcDone)
	// /etc/netns goes only if netlab made it and nothing else is in it.
	if _, err := os.Stat(rundir.EtcNetnsMark); err == nil {
		if rerr := os.Remove(rundir.EtcNetns); rerr == nil || errors.Is(rerr, os.ErrNotExist) {
			os.Remove(rundir.EtcNetnsMark)
		}
	}
	if err := os.RemoveAll(rundir.ForLab(lab).Path()); err != nil {
		errs = append(errs, err)
	}
	phase("remove files")
	if len(nss) > 0 {
		log.Info("lab down", "lab", lab, "namespaces", len(nss), "ms", time.Since(start).Milliseconds())
	}
	return errors.Join(errs...)
}

// removeNamespaces ends every process living in the namespaces, then deletes them. With
// cutLinks it first deletes their veths, so that the peers in namespaces that stay (a pod's
// host end in its node) are gone when it returns, not when the kernel gets round to it.
func removeNamespaces(nss []string, cutLinks bool, log *slog.Logger) error {
	if len(nss) == 0 {
		return nil
	}
	var pids []int
	for _, ps := range kernel.PIDsIn(nss) {
		pids = append(pids, ps...)
	}
	if len(pids) > 0 {
		log.Debug("ending processes", "count", len(pids))
	}
	kernel.Terminate(pids, 2*time.Second)
	if !cutLinks {
		// A few at a time: the unmounts take a global lock, the mount point files' unlinks
		// and the rest do not.
		return forEach(len(nss), func(i int) error { return kernel.DeleteNetns(nss[i]) })
	}
	var errs []error
	h := kernel.NewHandles()
	defer h.Close()
	for _, ns := range nss {
		// A namespace file an interrupted up or apply left unmounted has no links.
		if err := h.DelVeths(ns); err != nil {
			log.Debug("veths not deleted before their namespace", "netns", ns, "err", err)
		}
		if err := kernel.DeleteNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// agentFinder finds every agent process of a lab, wherever it lives: by the pid files
// their starters wrote, each checked against the process's start time and argv; and by
// their argv (`<netlab> agent <role> ... --lab <lab>`) for an up killed between starting
// one and recording it, or a pod whose namespace was deleted by hand (its process then
// lives on in a namespace no name leads to). The supervisor and the controller, which
// restart agents, are kept apart, to be signalled first.
type agentFinder struct {
	lab                string
	seen               map[int]bool
	restarters, others []int
}

func (f *agentFinder) add(pid int, argv []string) {
	if f.seen[pid] {
		return
	}
	f.seen[pid] = true
	if argv[2] == "supervisor" || argv[2] == "controller" {
		f.restarters = append(f.restarters, pid)
	} else {
		f.others = append(f.others, pid)
	}
}

// fromPIDFiles adds the live agents the lab's pid files name.
func (f *agentFinder) fromPIDFiles() {
	d := rundir.ForLab(f.lab)
	for _, file := range d.PIDFiles() {
		role, name, _ := strings.Cut(strings.TrimSuffix(filepath.Base(file), ".json"), "-")
		rec, err := supervise.ReadRecord(d, role, name)
		if err != nil || !rec.Alive() {
			continue
		}
		if argv := kernel.Cmdline(rec.PID); IsAgentOf(argv, f.lab) {
			f.add(rec.PID, argv)
		}
	}
	// The pods up started together are in one record (a pod started again since has its
	// own pid file too, read above).
	wave, _ := supervise.WaveRecords(d)
	for _, rec := range wave {
		if !rec.Alive() {
			continue
		}
		if argv := kernel.Cmdline(rec.PID); IsAgentOf(argv, f.lab) {
			f.add(rec.PID, argv)
		}
	}
}

// fromProc adds every process whose argv says it is an agent of the lab.
func (f *agentFinder) fromProc() {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || f.seen[pid] {
			continue
		}
		if argv := kernel.Cmdline(pid); IsAgentOf(argv, f.lab) {
			f.add(pid, argv)
		}
	}
}

// IsAgentOf says whether argv is a netlab agent of lab.
func IsAgentOf(argv []string, lab string) bool {
	if len(argv) < 4 || argv[1] != "agent" {
		return false
	}
	for i := 2; i+1 < len(argv); i++ {
		if argv[i] == "--lab" && argv[i+1] == lab {
			return true
		}
		if argv[i] == "--lab="+lab {
			return true
		}
	}
	return false
}
