package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/scenario"
	"github.com/spf13/cobra"
)

type applyFlags struct {
	files   []string
	dryRun  bool
	timeout time.Duration
}

func newApply(g *globals) *cobra.Command {
	f := &applyFlags{}
	cmd := &cobra.Command{
		Use:   "apply [--name LAB] -f FILE... [--dry-run]",
		Short: "Bring a running lab to what the files say, printing one line per object as kubectl does",
		Long: `apply compares the files with the running lab and changes only what differs:
Deployments (created, deleted, replicas, template), Services, Ingresses, Secrets,
clients and the LB's scheduler, persistence and health checks. Objects that did not
change are not touched. Nodes, the address plan and the network mode cannot change on a
running lab: apply refuses, naming the field, and changes nothing. Pods that leave are
terminated gracefully (preStop, SIGTERM, terminationGracePeriodSeconds, SIGKILL).`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.files) == 0 {
				return usagef("apply needs at least one -f FILE (the whole lab, as for up)")
			}
			s, err := scenario.Load(f.files)
			if err != nil {
				return err
			}
			if err := scenario.Validate(s); err != nil {
				return err
			}
			for _, w := range s.Warnings {
				fmt.Fprintln(g.errOut, "warning: "+w.String())
			}
			name := g.name
			if name == "" && s.LabSource.File != "" {
				name = s.Lab.Metadata.Name
			}
			if name, err = lab.Resolve(name); err != nil {
				return err
			}
			changes, err := lab.Apply(cmd.Context(), name, func(cur *plan.Plan) (*plan.Plan, error) {
				return planbuild.BuildFrom(s, name, cur)
			}, lab.ChangeOptions{DryRun: f.dryRun, ReadyTimeout: f.timeout, Log: g.logger()})
			printChanges(g, changes, f.dryRun)
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&f.files, "file", "f", nil, "scenario file (repeatable): the whole lab, as for up")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "print what would change and change nothing")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for new pods and the rules to follow")
	return cmd
}

func printChanges(g *globals, changes plan.Changes, dryRun bool) {
	for _, c := range changes {
		line := c.String()
		if dryRun {
			line += " (dry run)"
		}
		fmt.Fprintln(g.out, line)
	}
}

// deploymentArg reads "deployment/NAME" (also deploy/, deployments/, deployment.apps/).
func deploymentArg(arg string) (string, error) {
	kind, name, ok := strings.Cut(arg, "/")
	switch kind {
	case "deployment", "deployments", "deploy", "deployment.apps":
	default:
		ok = false
	}
	if !ok || name == "" {
		return "", usagef("%q: want deployment/NAME", arg)
	}
	return name, nil
}

func newScale(g *globals) *cobra.Command {
	var replicas int
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:               "scale [--name LAB] deployment/NAME --replicas N",
		Short:             "Set a Deployment's replicas on the running lab",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeDeployments(g),
		PreRunE:           needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			dep, err := deploymentArg(args[0])
			if err != nil {
				return err
			}
			if replicas < 0 || !cmd.Flags().Changed("replicas") {
				return usagef("--replicas N (N ≥ 0) is required")
			}
			name, err := g.labName()
			if err != nil {
				return err
			}
			changes, err := lab.Scale(cmd.Context(), name, dep, int32(replicas), lab.ChangeOptions{ReadyTimeout: timeout, Log: g.logger()})
			if err != nil {
				return err
			}
			if c, ok := changes.Find(plan.KindDeployment, "", dep); ok {
				fmt.Fprintf(g.out, "%s/%s scaled\n", c.Kind, c.Name)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&replicas, "replicas", -1, "the number of pods")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for new pods and the rules to follow")
	return cmd
}

func newRollout(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Manage the rollout of a Deployment: restart"}
	var timeout time.Duration
	restart := &cobra.Command{
		Use:               "restart [--name LAB] deployment/NAME",
		Short:             "Replace a Deployment's pods one at a time, each new one ready before an old one terminates",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeDeployments(g),
		PreRunE:           needRoot,
		RunE: func(cmd *cobra.Command, args []string) error {
			dep, err := deploymentArg(args[0])
			if err != nil {
				return err
			}
			name, err := g.labName()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "deployment.apps/%s restarted\n", dep)
			n := 0
			err = lab.RolloutRestart(cmd.Context(), name, dep, lab.ChangeOptions{ReadyTimeout: timeout, Log: g.logger()},
				func(msg string) {
					n++
					fmt.Fprintln(g.out, "  "+strconv.Itoa(n)+". "+msg)
				})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.out, "deployment %q successfully rolled out\n", dep)
			return nil
		},
	}
	restart.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for each new pod and the rules to follow")
	cmd.AddCommand(restart)
	return cmd
}
