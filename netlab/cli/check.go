package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

// checkFailed is check's failure: exit code 1.
type checkFailed int

func (c checkFailed) Error() string { return plural(int(c), "check", "checks") + " failed" }

// notChecked is check's "the lab is not up or no check ran": exit code 2.
type notChecked struct{ err error }

func (e notChecked) Error() string { return e.err.Error() }
func (e notChecked) Unwrap() error { return e.err }
func (notChecked) ExitCode() int   { return 2 }

// plural says "1 check", "2 checks".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func newCheck(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [--name LAB] [-o table|wide|json|yaml]",
		Short: "Verify a running lab: its own health (namespaces, agents, pods, kube-proxy syncs, LB health, every entry point), then its scenario's checks",
		Long: `Runs the lab's own health checks, then the checks its scenario carries (Lab.spec.checks):
each sends its requests from a client, pod or node through trace's machinery and compares
what came back (status, the pod that answered, the client address it saw, or a failure)
with what it expects; a check with drills (before:) runs them first and undoes them after.
One line per check; a failed one says what it saw instead and, when a request died, where.
Exit code 0 when every check passed, 1 when some failed, 2 when the lab is not up or no check ran.`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
	}
	o := addOutput(cmd, "table")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		name, err := g.labName()
		if errors.Is(err, lab.ErrNoLab) {
			return notChecked{err}
		}
		if err != nil {
			return err
		}
		checks, err := lab.RunChecks(cmd.Context(), name)
		if errors.Is(err, lab.ErrNoLab) {
			return notChecked{err}
		}
		if err != nil {
			return err
		}
		if len(checks) == 0 {
			return notChecked{fmt.Errorf("lab %s: no check ran", name)}
		}
		failed := 0
		for _, c := range checks {
			if !c.OK {
				failed++
			}
		}
		if err := o.print(g.out, checks, func(w io.Writer, _ bool) error {
			width := 34
			for _, c := range checks {
				width = max(width, min(len(c.Name), 60))
			}
			for _, c := range checks {
				mark := "ok  "
				if !c.OK {
					mark = "FAIL"
				}
				fmt.Fprintf(w, "%s  %-*s %s\n", mark, width, c.Name, c.Detail)
			}
			return nil
		}); err != nil {
			return err
		}
		if failed > 0 {
			return checkFailed(failed)
		}
		return nil
	}
	return cmd
}
