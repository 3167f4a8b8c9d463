package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// The files ExportLogs writes for each namespace of the lab (netns/<object>/...).
var exportNetnsFiles = []string{"iptables-save.txt", "conntrack.txt", "addresses.txt", "routes.txt", "neighbours.txt"}

// ExportLogs writes what it takes to diagnose a lab into dir, as `kind export logs` does:
//
//	plan.json, scenario.yaml, status.json, endpoints.json, lb-state.json   (when present)
//	logs/<component>-<object>.log                                         every agent's log
//	netns/<object>/iptables-save.txt, nft-ruleset.txt (when nft exists),
//	               conntrack.txt, addresses.txt, routes.txt, neighbours.txt
//
// A lab that is down leaves only its logs and scenario. It returns the files written;
// what could not be read is listed in errors.txt and returned.
func ExportLogs(ctx context.Context, lab, dir string) ([]string, error) {
	if err := plan.CheckLabName(lab); err != nil {
		return nil, err
	}
	var written []string
	var errs []error
	write := func(rel string, b []byte) {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			errs = append(errs, err)
			return
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			errs = append(errs, err)
			return
		}
		written = append(written, rel)
	}
	copyIn := func(rel, src string) {
		b, err := os.ReadFile(src)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err != nil {
			errs = append(errs, err)
			return
		}
		write(rel, b)
	}

	d := rundir.ForLab(lab)
	copyIn(rundir.PlanFile, d.Plan())
	copyIn(rundir.EndpointsFile, d.Endpoints())
	copyIn(rundir.LBStateFile, d.LBState())
	copyIn(rundir.ScenarioFile, d.Scenario())
	if files, err := LogFiles(lab); err == nil {
		for _, lf := range files {
			copyIn(filepath.Join("logs", filepath.Base(lf.Path)), lf.Path)
		}
	} else {
		errs = append(errs, err)
	}
	if _, err := os.Stat(d.Plan()); err == nil {
		if st, err := GetStatus(ctx, lab); err == nil {
			b, _ := json.MarshalIndent(st, "", "  ")
			write("status.json", append(b, '\n'))
		} else {
			errs = append(errs, fmt.Errorf("status: %w", err))
		}
	}

	nss, err := kernel.ListNetns(plan.NetnsName(lab, ""))
	if err != nil {
		errs = append(errs, err)
	}
	_, nftErr := exec.LookPath("nft")
	for _, ns := range nss {
		obj := filepath.Join("netns", strings.TrimPrefix(ns, plan.NetnsName(lab, "")))
		if b, err := kernel.Save(ns, true, ""); err == nil {
			write(filepath.Join(obj, "iptables-save.txt"), b)
		} else {
			errs = append(errs, fmt.Errorf("%s: iptables-save: %w", ns, err))
		}
		if nftErr == nil {
			run(ctx, &errs, write, filepath.Join(obj, "nft-ruleset.txt"), "ip", "netns", "exec", ns, "nft", "list", "ruleset")
		}
		run(ctx, &errs, write, filepath.Join(obj, "conntrack.txt"), "ip", "netns", "exec", ns, "conntrack", "-L")
		run(ctx, &errs, write, filepath.Join(obj, "addresses.txt"), "ip", "-n", ns, "address", "show")
		run(ctx, &errs, write, filepath.Join(obj, "routes.txt"), "ip", "-n", ns, "route", "show", "table", "all")
		run(ctx, &errs, write, filepath.Join(obj, "neighbours.txt"), "ip", "-n", ns, "neighbour", "show")
	}
	if len(written) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("lab %s: %w (nothing to export)", lab, ErrNoLab))
	}
	err = errors.Join(errs...)
	if err != nil {
		write("errors.txt", []byte(err.Error()+"\n"))
	}
	sort.Strings(written)
	return written, err
}

// run writes a command's output (stdout and stderr) to rel; a failure is kept in errs
// with the output written all the same.
func run(ctx context.Context, errs *[]error, write func(string, []byte), rel string, argv ...string) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", strings.Join(argv, " "), err))
	}
	write(rel, out)
}

// ExportNetnsFiles lists the files ExportLogs writes for each namespace (nft-ruleset.txt
// too when nft is installed).
func ExportNetnsFiles() []string {
	out := append([]string(nil), exportNetnsFiles...)
	if _, err := exec.LookPath("nft"); err == nil {
		out = append(out, "nft-ruleset.txt")
	}
	return out
}
