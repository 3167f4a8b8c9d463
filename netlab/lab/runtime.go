package lab

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// ErrNoLab is returned when no lab of that name is up.
var ErrNoLab = errors.New("no such lab")

// ErrAmbiguous is returned when no name was given and several labs are up.
var ErrAmbiguous = errors.New("say which with --name")

// LoadPlan reads the plan a running lab was built from.
func LoadPlan(lab string) (*plan.Plan, error) {
	p, err := rundir.ForLab(lab).ReadPlan()
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: %w", lab, ErrNoLab)
	}
	return p, err
}

// Labs lists the labs that have anything on this machine: a namespace or a runtime dir.
func Labs() ([]string, error) {
	seen := map[string]bool{}
	nss, err := kernel.ListNetns("nl-")
	if err != nil {
		return nil, err
	}
	for _, ns := range nss {
		if !netnsNameRE.MatchString(ns) {
			continue
		}
		if lab, _, ok := strings.Cut(strings.TrimPrefix(ns, "nl-"), "-"); ok {
			seen[lab] = true
		}
	}
	ents, _ := os.ReadDir(rundir.Root)
	for _, e := range ents {
		if e.IsDir() {
			seen[e.Name()] = true
		}
	}
	out := make([]string, 0, len(seen))
	for l := range seen {
		out = append(out, l)
	}
	sort.Strings(out)
	return out, nil
}

// Resolve picks the lab a command means: the given name, else the only lab that is up.
func Resolve(name string) (string, error) {
	if name != "" {
		// Every verb's lab name becomes a path and a namespace prefix: checked here.
		if err := plan.CheckLabName(name); err != nil {
			return "", err
		}
		return name, nil
	}
	labs, err := Labs()
	if err != nil {
		return "", err
	}
	switch len(labs) {
	case 0:
		return "", fmt.Errorf("no lab is up (netlab up starts one): %w", ErrNoLab)
	case 1:
		return labs[0], nil
	default:
		return "", fmt.Errorf("%d labs are up (%s): %w", len(labs), strings.Join(labs, ", "), ErrAmbiguous)
	}
}

// Hint is a netlab command line for the user to run next, e.g. Hint("demo", "logs
// ingress node-1"): it carries --name when the lab is not the only one up, so it works
// as printed.
func Hint(lab, command string) string {
	return Hints(lab, command)[0]
}

// Hints is Hint of each command, the machine's labs listed once.
func Hints(lab string, commands ...string) []string {
	labs, err := Labs()
	only := err == nil && len(labs) == 1 && labs[0] == lab
	out := make([]string, len(commands))
	for i, command := range commands {
		if only {
			out[i] = "netlab " + command
			continue
		}
		verb, rest, _ := strings.Cut(command, " ")
		out[i] = strings.TrimSpace("netlab " + verb + " --name " + lab + " " + rest)
	}
	return out
}
