package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// ErrNoLog is returned by FindLog when the name matches no log, or several.
var ErrNoLog = errors.New("no such log")

// PurgeLogs removes the logs a lab left (rundir.LogRoot too, when it is then empty).
func PurgeLogs(lab string) error {
	if err := plan.CheckLabName(lab); err != nil {
		return err
	}
	if err := os.RemoveAll(rundir.ForLab(lab).Logs()); err != nil {
		return fmt.Errorf("remove the logs of lab %s: %w", lab, err)
	}
	os.Remove(rundir.LogRoot) // only succeeds when empty
	return nil
}

// LoggedLabs lists the labs whose logs are kept (up or down).
func LoggedLabs() []string {
	ents, _ := os.ReadDir(rundir.LogRoot)
	var out []string
	for _, e := range ents {
		if e.IsDir() && plan.CheckLabName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out
}

// logsHint says where an agent's log is, for an error of up.
func logsHint(lab string) string {
	return fmt.Sprintf("logs in %s: netlab logs --name %s", rundir.ForLab(lab).Logs(), lab)
}

// LogFile is one agent's log, named as `netlab logs` takes it: COMPONENT [OBJECT].
type LogFile struct {
	Component string `json:"component"`        // pod, ingress, kube-proxy, lb, controller, ...
	Object    string `json:"object,omitempty"` // the pod or node; empty for one-of-a-kind agents
	Path      string `json:"path"`
}

// Name is how `netlab logs` lists and takes the log: "lb", "ingress node-1".
func (l LogFile) Name() string { return strings.TrimSpace(l.Component + " " + l.Object) }

// knownRoles are the agent roles that name log files (role-name.log); a plan adds its own.
var knownRoles = []string{"pod", "ingress", "kube-proxy", "lb", "controller", "dns", "supervisor"}

// LogFiles lists a lab's agent logs, sorted by name.
func LogFiles(lab string) ([]LogFile, error) {
	ents, err := os.ReadDir(rundir.ForLab(lab).Logs())
	if err != nil {
		return nil, fmt.Errorf("lab %s has no logs: %w", lab, err)
	}
	roles := slices.Clone(knownRoles)
	if p, err := LoadPlan(lab); err == nil {
		for _, pr := range p.Processes {
			roles = append(roles, pr.Role)
		}
	}
	// The longest role that prefixes the file name wins ("kube-proxy-node-1" is not a pod).
	sort.Slice(roles, func(i, j int) bool { return len(roles[i]) > len(roles[j]) })
	var out []LogFile
	for _, e := range ents {
		base, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok || e.IsDir() {
			continue
		}
		lf := LogFile{Component: base, Path: filepath.Join(rundir.ForLab(lab).Logs(), e.Name())}
		for _, r := range roles {
			if obj, ok := strings.CutPrefix(base, r+"-"); ok {
				lf.Component, lf.Object = r, obj
				break
			}
		}
		if lf.Object == lf.Component {
			lf.Object = "" // lb-lb, controller-controller
		}
		out = append(out, lf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// FindLog returns the log args name (COMPONENT [OBJECT]); an object alone names it too
// when only one log has it. The error lists what there is.
func FindLog(lab string, args []string) (LogFile, error) {
	files, err := LogFiles(lab)
	if err != nil {
		return LogFile{}, err
	}
	want := strings.Join(args, " ")
	var names, candidates []string
	for _, f := range files {
		names = append(names, f.Name())
		if f.Name() == want {
			return f, nil
		}
		if len(args) == 1 && (f.Component == args[0] || f.Object == args[0]) {
			candidates = append(candidates, f.Name())
		}
	}
	if len(candidates) == 1 {
		for _, f := range files {
			if f.Name() == candidates[0] {
				return f, nil
			}
		}
	}
	if len(candidates) > 1 {
		return LogFile{}, fmt.Errorf("%q names %d logs of lab %s; say which: %s: %w", want, len(candidates), lab, strings.Join(candidates, ", "), ErrNoLog)
	}
	return LogFile{}, fmt.Errorf("lab %s has no log %q; it has: %s: %w", lab, want, strings.Join(names, ", "), ErrNoLog)
}
