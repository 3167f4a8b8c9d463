package cli

import (
	"slices"
	"strings"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/spf13/cobra"
)

// Dynamic completion (`netlab completion bash|zsh|fish`): lab names, a running lab's
// objects, Services and Deployments, read from the machine as the shell asks. Reading a
// lab's plan needs root, as the commands do; without it nothing is offered.

type completeFunc = func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective)

const noFiles = cobra.ShellCompDirectiveNoFileComp

// completeLabs offers the labs that are up (for --name).
func completeLabs(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
	labs, _ := lab.Labs()
	return matching(labs, prefix), noFiles
}

// completionPlan is the plan of the lab a completion is for: --name, else the only lab up.
func completionPlan(g *globals) *plan.Plan {
	name, err := lab.Resolve(g.name)
	if err != nil {
		return nil
	}
	p, err := lab.LoadPlan(name)
	if err != nil {
		return nil
	}
	return p
}

// labObjects lists a plan's objects of a kind: node, pod, client, or any (every object
// with a namespace: switches, lb, nodes, clients, pods).
func labObjects(p *plan.Plan, kind string) []string {
	var out []string
	if kind == "any" {
		for _, s := range p.Switches {
			out = append(out, s.Name)
		}
		out = append(out, "lb")
	}
	if kind == "any" || kind == "node" {
		for _, n := range p.Nodes {
			out = append(out, n.Name)
		}
	}
	if kind == "any" || kind == "client" {
		for _, c := range p.Clients {
			out = append(out, c.Name)
		}
	}
	if kind == "any" || kind == "pod" {
		for _, pod := range p.Pods {
			out = append(out, pod.Name)
		}
	}
	return out
}

// completeObjects offers the first argument from the lab's objects of a kind.
func completeObjects(g *globals, kind string) completeFunc {
	return func(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		p := completionPlan(g)
		if len(args) > 0 || p == nil {
			return nil, noFiles
		}
		return matching(labObjects(p, kind), prefix), noFiles
	}
}

// completeServices offers the lab's Services, as NAME and NAMESPACE/NAME.
func completeServices(g *globals) completeFunc {
	return func(_ *cobra.Command, _ []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		p := completionPlan(g)
		if p == nil {
			return nil, noFiles
		}
		var out []string
		for _, s := range p.Services {
			out = append(out, s.Name, s.Namespace+"/"+s.Name)
		}
		return matching(out, prefix), noFiles
	}
}

// completeDeployments offers the lab's Deployments as kubectl names them: deployment/NAME.
func completeDeployments(g *globals) completeFunc {
	return func(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		p := completionPlan(g)
		if len(args) > 0 || p == nil {
			return nil, noFiles
		}
		var out []string
		for _, pod := range p.Pods {
			if pod.Deployment != "" {
				out = append(out, "deployment/"+pod.Deployment)
			}
		}
		return matching(out, prefix), noFiles
	}
}

// matching keeps the distinct words starting with prefix, sorted.
func matching(words []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, w := range words {
		if w != "" && strings.HasPrefix(w, prefix) && !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	slices.Sort(out)
	return out
}
