package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

type logsFlags struct {
	follow bool
	tail   int
	since  time.Duration
}

func newLogs(g *globals) *cobra.Command {
	f := &logsFlags{}
	cmd := &cobra.Command{
		Use:   "logs [--name LAB] [COMPONENT [OBJECT]] [-f] [--tail N] [--since D] [-o table|wide|json|yaml]",
		Short: "Show an agent's log: pod POD, ingress NODE, kube-proxy NODE, lb, controller",
		Long: `Show an agent's log, by the name netlab logs lists (without arguments): a component
and, for agents that run once per node or pod, the object. An object alone is enough when
it names one log. Lines read as TIME LEVEL MESSAGE key=value...; -o json prints them as
the agents wrote them (one JSON object per line).`,
		Example: `  netlab logs
  netlab logs controller
  netlab logs ingress node-1 --tail 20
  netlab logs pod web-1 -f
  netlab logs lb --since 5m -o json`,
		Args:              cobra.RangeArgs(0, 2),
		PreRunE:           needRoot,
		ValidArgsFunction: completeLogs(g),
	}
	o := addOutput(cmd, "table")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name, err := g.labOrLogs()
		if err != nil {
			return err
		}
		if len(args) == 0 {
			files, err := lab.LogFiles(name)
			if err != nil {
				return err
			}
			return o.print(g.out, files, func(w io.Writer, wide bool) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				for _, lf := range files {
					if wide {
						fmt.Fprintf(tw, "%s\t%s\n", lf.Name(), lf.Path)
					} else {
						fmt.Fprintln(tw, lf.Name())
					}
				}
				return tw.Flush()
			})
		}
		lf, err := lab.FindLog(name, args)
		if errors.Is(err, lab.ErrNoLog) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		return showLog(cmd.Context(), g.out, lf, o, f)
	}
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "keep printing lines as the agent writes them (Ctrl-C stops)")
	cmd.Flags().IntVar(&f.tail, "tail", -1, "only the last N lines (-1: all)")
	cmd.Flags().DurationVar(&f.since, "since", 0, "only lines newer than this, e.g. 30s or 5m")
	return cmd
}

// completeLogs offers the components, then the objects of the chosen one.
func completeLogs(g *globals) completeFunc {
	return func(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
		name, err := lab.Resolve(g.name)
		if err != nil || len(args) > 1 {
			return nil, noFiles
		}
		files, _ := lab.LogFiles(name)
		var words []string
		for _, lf := range files {
			if len(args) == 0 {
				words = append(words, lf.Component)
			} else if lf.Component == args[0] && lf.Object != "" {
				words = append(words, lf.Object)
			}
		}
		return matching(words, prefix), noFiles
	}
}

// showLog prints the log's lines that pass --since and --tail, then, with --follow, what
// the agent writes after.
func showLog(ctx context.Context, out io.Writer, lf lab.LogFile, o *output, f *logsFlags) error {
	file, err := os.Open(lf.Path)
	if err != nil {
		return err
	}
	defer file.Close()
	var cutoff time.Time
	if f.since > 0 {
		cutoff = time.Now().Add(-f.since)
	}
	var lines [][]byte
	r := bufio.NewReader(file)
	var partial []byte
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			partial = line // an unfinished last line: printed when it ends (with -f)
			break
		}
		if keepLine(line, cutoff) {
			lines = append(lines, line)
		}
	}
	if f.tail >= 0 && len(lines) > f.tail {
		lines = lines[len(lines)-f.tail:]
	}
	for _, line := range lines {
		if err := writeLogLine(out, line, o, lf); err != nil {
			return err
		}
	}
	if !f.follow {
		return nil
	}
	for {
		line, err := r.ReadBytes('\n')
		partial = append(partial, line...)
		if err == nil {
			if err := writeLogLine(out, partial, o, lf); err != nil {
				return err
			}
			partial = nil
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// keepLine says whether a line is at or after cutoff (lines without a time are kept).
func keepLine(line []byte, cutoff time.Time) bool {
	if cutoff.IsZero() {
		return true
	}
	var rec struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(line, &rec) != nil || rec.Time.IsZero() {
		return true
	}
	return !rec.Time.Before(cutoff)
}

// writeLogLine prints one agent line: as written (json), as a YAML document (yaml), or
// readable: TIME LEVEL MESSAGE key=value ... (wide: with the date and the log's name).
func writeLogLine(out io.Writer, line []byte, o *output, lf lab.LogFile) error {
	line = bytes.TrimRight(line, "\n")
	if len(line) == 0 {
		return nil
	}
	fields, ok := logFields(line)
	switch {
	case o.format == "json":
		if !ok {
			b, _ := json.Marshal(map[string]string{"msg": string(line)})
			line = b
		}
		_, err := fmt.Fprintf(out, "%s\n", line)
		return err
	case o.format == "yaml":
		var v any = map[string]string{"msg": string(line)}
		if ok {
			_ = json.Unmarshal(line, &v)
		}
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "---\n%s", b)
		return err
	case !ok:
		_, err := fmt.Fprintf(out, "%s\n", line)
		return err
	}
	var b strings.Builder
	var ts, level, msg string
	var rest []string
	for _, kv := range fields {
		switch kv.key {
		case "time":
			ts = kv.val
		case "level":
			level = kv.val
		case "msg":
			msg = kv.val
		default:
			if kv.val != "" && kv.val != `""` {
				rest = append(rest, kv.key+"="+quoteIfNeeded(kv.val))
			}
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
		layout := "15:04:05.000"
		if o.wide() {
			layout = "2006-01-02 15:04:05.000"
		}
		ts = t.Local().Format(layout)
	}
	if o.wide() {
		b.WriteString(lf.Name() + "  ")
	}
	b.WriteString(ts)
	if level != "" {
		fmt.Fprintf(&b, " %-5s", level)
	}
	for _, r := range append([]string{msg}, rest...) {
		if r != "" {
			b.WriteString(" " + r)
		}
	}
	_, err := fmt.Fprintln(out, b.String())
	return err
}

type logField struct{ key, val string }

// logFields reads a JSON log line's top-level keys in the order written; strings
// unquoted, everything else as JSON.
func logFields(line []byte) ([]logField, bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var out []logField
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		val := string(raw)
		var s string
		if json.Unmarshal(raw, &s) == nil {
			val = s
		}
		out = append(out, logField{key, val})
	}
	return out, true
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=") {
		return strconv.Quote(s)
	}
	return s
}
