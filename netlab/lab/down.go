package lab

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
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
	lk, err := lockLab(lab)
	if err != nil {
		return err
	}
	err = down(lab, log)
	lk.unlock(err == nil)
	return err
}

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
	// Anything left under nl- (a name no lab of ours could have made) is swept too.
	rest, _ := kernel.ListNetns("nl-")
	errs = append(errs, removeNamespaces(rest, log))
	return errors.Join(errs...)
}

func down(lab string, log *slog.Logger) error {
	start := time.Now()
	nss, err := kernel.ListNetns(plan.NetnsName(lab, ""))
	if err != nil {
		return err
	}
	var errs []error
	// Agents outside any lab namespace (the controller) are found by their argv.
	kernel.Terminate(agentsOutside(lab), 2*time.Second)
	errs = append(errs, removeNamespaces(nss, log))
	matches, _ := filepath.Glob(filepath.Join(EtcNetns, plan.NetnsName(lab, "")+"*"))
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			errs = append(errs, err)
		}
	}
	os.Remove(EtcNetns) // only when empty: it may hold other tools' files
	if err := os.RemoveAll(Dir(lab)); err != nil {
		errs = append(errs, err)
	}
	if len(nss) > 0 {
		log.Info("lab down", "lab", lab, "namespaces", len(nss), "ms", time.Since(start).Milliseconds())
	}
	return errors.Join(errs...)
}

// removeNamespaces ends every process living in the namespaces, then deletes them.
func removeNamespaces(nss []string, log *slog.Logger) error {
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
	var errs []error
	for _, ns := range nss {
		if err := kernel.DeleteNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// agentsOutside finds `netlab agent <role> --lab <lab>` processes by their argv.
func agentsOutside(lab string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if IsAgentOf(kernel.Cmdline(pid), lab) {
			out = append(out, pid)
		}
	}
	return out
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

// NotFound is a helper for commands: a missing lab as an error that names it.
func NotFound(lab string) error {
	return fmt.Errorf("lab %s is not up: %w", lab, ErrNoLab)
}

func trimNS(lab, ns string) string { return strings.TrimPrefix(ns, plan.NetnsName(lab, "")) }
