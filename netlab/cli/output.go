package cli

import (
	"encoding/json"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// The formats every read verb answers, as kubectl's -o.
var readFormats = []string{"table", "wide", "json", "yaml"}

// output is a verb's -o flag: table, wide, json, yaml and any formats of the verb's own.
type output struct {
	format string
	own    []string // formats the verb prints itself (graph's dot, ...)
}

// addOutput gives cmd `-o table|wide|json|yaml` (plus own formats), its completion and
// its check: a format not listed is a usage error before the command runs.
func addOutput(cmd *cobra.Command, def string, own ...string) *output {
	o := &output{own: own}
	all := o.formats()
	cmd.Flags().StringVarP(&o.format, "output", "o", def, strings.Join(all, ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(all, cobra.ShellCompDirectiveNoFileComp))
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if !slices.Contains(all, o.format) {
			return usagef("unknown output %q (%s)", o.format, strings.Join(all, ", "))
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
	return o
}

func (o *output) formats() []string { return append(slices.Clone(readFormats), o.own...) }

// wide says whether the table should carry every column.
func (o *output) wide() bool { return o.format == "wide" }

// print writes v as JSON or YAML, or calls table (with wide) for table and wide.
func (o *output) print(w io.Writer, v any, table func(w io.Writer, wide bool) error) error {
	switch o.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	default:
		return table(w, o.wide())
	}
}
