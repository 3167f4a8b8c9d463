package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

// LabEnv is the environment variable that gives --name its default.
const LabEnv = "NETLAB_LAB"

// globals are the flags every command has.
type globals struct {
	verbose bool
	name    string
	out     io.Writer
	errOut  io.Writer
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.errOut, &slog.HandlerOptions{Level: level}))
}

// labName resolves --name (or NETLAB_LAB), or the only lab that is up. Several labs up and
// no name is a usage error: the user has to say which.
func (g *globals) labName() (string, error) {
	name, err := lab.Resolve(g.name)
	if errors.Is(err, lab.ErrAmbiguous) {
		return "", usageError{err}
	}
	return name, err
}

// labOrLogs is labName for verbs that also read a lab that is down: with no lab up and
// one lab's logs kept, that lab.
func (g *globals) labOrLogs() (string, error) {
	name, err := g.labName()
	if errors.Is(err, lab.ErrNoLab) && g.name == "" {
		if kept := lab.LoggedLabs(); len(kept) == 1 {
			return kept[0], nil
		}
	}
	return name, err
}

// errNotRoot is printed as the one line a non-root user sees.
var errNotRoot = errors.New("this command needs root: run it with sudo")

func needRoot(*cobra.Command, []string) error {
	if os.Geteuid() != 0 {
		return errNotRoot
	}
	return nil
}

// usageError is a mistake in how a command was called: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
func (usageError) ExitCode() int   { return 2 }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// verbs is every verb, grouped as below (`netlab help` lists them sorted): nothing
// registers itself elsewhere. name is the word that runs it (a test holds it to the
// command's own).
var verbs = []struct {
	name string
	make func(*globals) *cobra.Command
}{
	// lifecycle
	{"up", newUp}, {"down", newDown}, {"plan", newPlan},
	// inspection
	{"status", newStatus}, {"lb", newLB}, {"rules", newRules}, {"check", newCheck}, {"logs", newLogs}, {"export", newExport},
	{"trace", newTrace}, {"capture", newCapture}, {"drops", newDrops}, {"graph", newGraph}, {"ca", newCA},
	// hands-on
	{"exec", newExec}, {"pod", newPod}, {"node", newNode},
	// live changes
	{"apply", newApply}, {"scale", newScale}, {"rollout", newRollout},
	// about netlab itself
	{"version", newVersion},
	// the lab's own processes
	{"agent", newAgent},
}

// New returns the root command with every verb.
func New(out, errOut io.Writer) *cobra.Command {
	return newRoot(out, errOut, "")
}

// newRoot returns the root command with every verb, or with only the verb named by only:
// a command line that names its verb (most do: `up`, `down`, `status`) runs in a tree of
// that verb alone, without building the twenty others' commands and flags or cobra's
// completion command at every start (docs/design-notes.md, "The CLI's start"). What that
// verb does, says and refuses is the same in both trees (a test compares them).
func newRoot(out, errOut io.Writer, only string) *cobra.Command {
	g := &globals{out: out, errOut: errOut}
	root := &cobra.Command{
		Use:   "netlab",
		Short: "The Kubernetes north-south data path on one Linux host, from real kernel parts",
		Long: `netlab builds a client, an external L4 load balancer, worker nodes with an ingress
each, pods and kube-proxy's iptables rules out of network namespaces, veths and
bridges, so a request can be followed packet by packet:

  client -> LB VIP -> node ingress (L7) -> Service (kube-proxy) -> pod on any node`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if only == "" {
		root.Version = versionLine() // --version, a flag of the root alone
		root.SetVersionTemplate("{{.Version}}\n")
	} else {
		root.CompletionOptions.DisableDefaultCmd = true // `netlab completion` builds every verb
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log what happens, step by step")
	root.PersistentFlags().StringVar(&g.name, "name", os.Getenv(LabEnv),
		"lab name (default $"+LabEnv+"; up and plan: the Lab's metadata.name, else demo; other verbs: the only lab that is up)")
	_ = root.RegisterFlagCompletionFunc("name", completeLabs)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	for _, v := range verbs {
		if only == "" || v.name == only {
			root.AddCommand(v.make(g))
		}
	}
	strictArgs(root)
	return root
}

// verbOf is the verb a command line (after hoistName) runs, when it names one plainly:
// global flags (--name, -v) then a verb. Anything else (no verb, help, completion, a
// flag before the verb the root does not have, a word that is no verb) is "": the whole
// tree answers it, with its help, completions and suggestions.
func verbOf(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--name":
			i++
		case strings.HasPrefix(a, "--name="), a == "-v", a == "--verbose":
		case strings.HasPrefix(a, "-"):
			return ""
		default:
			for _, v := range verbs {
				if v.name == a {
					return a
				}
			}
			return ""
		}
	}
	return ""
}

// strictArgs makes every wrong argument count a usage error (exit 2), and a command group
// given an unknown subcommand say so instead of printing its help with exit 0.
func strictArgs(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
				if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
					msg += "; did you mean " + strings.Join(s, ", ") + "?"
				}
				return usagef("%s (see %s --help)", msg, cmd.CommandPath())
			}
			return cmd.Help()
		}
	} else if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return usagef("%v; usage: %s", err, cmd.UseLine())
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		strictArgs(sub)
	}
}

// hoistName moves every --name flag found before "--" to the front, so it is accepted after
// a target too (`netlab exec client --name demo -- true`), also for verbs that stop
// parsing flags at their first argument.
func hoistName(args []string) []string {
	if len(args) > 0 && strings.HasPrefix(args[0], "__complete") {
		return args // the shell's word being completed stays last
	}
	var front, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(append(front, rest...), args[i:]...)
		case a == "--name" && i+1 < len(args):
			front = append(front, a, args[i+1])
			i++
		case strings.HasPrefix(a, "--name="):
			front = append(front, a)
		default:
			rest = append(rest, a)
		}
	}
	return append(front, rest...)
}

// Execute runs the command line with args and returns the exit code: 0 done, 1 failed,
// 2 a usage error (or, for check, the lab is not up or no check ran).
func Execute(ctx context.Context, args []string, out, errOut io.Writer) int {
	if !AgentArgs(args) && os.Getenv("GOGC") == "" {
		// Most commands live a moment and allocate a few MB (a plan read, its records):
		// with the default GOGC the heap sat at the runtime's first goal (4 MB), and one
		// collection ran or not from one call of `status` to the next; at up's GOGC none
		// runs. Those that run until Ctrl-C (capture, logs -f, drops --follow) keep a
		// small live heap, which five times over is still a few MB. An agent (`netlab
		// agent`) keeps the default, and a GOGC the user set wins.
		defer debug.SetGCPercent(debug.SetGCPercent(lab.UpGCPercent))
	}
	args = hoistName(args)
	return runTree(ctx, newRoot(out, errOut, verbOf(args)), args, errOut)
}

// runTree runs args in the command tree root (Execute's; a test's) and returns the exit code.
func runTree(ctx context.Context, root *cobra.Command, args []string, errOut io.Writer) int {
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	// A lab's files are root's: without root, a denied or missing one means the same.
	if os.Geteuid() != 0 && (errors.Is(err, fs.ErrPermission) || errors.Is(err, lab.ErrNoLab)) {
		err = errNotRoot
	}
	err = interrupted(ctx, err)
	fmt.Fprintln(errOut, "netlab: "+err.Error())
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if strings.HasPrefix(err.Error(), "unknown command ") {
		return 2 // cobra's own, for the root command
	}
	return 1
}

// interrupted names what ended a command that stopped because its context was cancelled
// by a signal (SignalContext: "interrupt signal received"), instead of a bare "context
// canceled" at the end of the message. Any other error is returned as it is.
func interrupted(ctx context.Context, err error) error {
	if !errors.Is(err, context.Canceled) {
		return err
	}
	// A signal's cause also Is context.Canceled; only a bare cancellation has none other.
	cause := context.Cause(ctx)
	if cause == nil || cause == context.Canceled {
		return err
	}
	return fmt.Errorf("%w (%v)", err, cause)
}

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string) int {
	return Execute(ctx, args, os.Stdout, os.Stderr)
}
