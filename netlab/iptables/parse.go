// Package iptables is netlab's one model of iptables text: Parse reads iptables-save
// output (with or without -c counters) and iptables-restore input alike, into tables,
// chain declarations and rule commands, each rule split into its words the way
// iptables-restore splits them. It is pure: no kernel, no process. Package kernel runs
// iptables-save and iptables-restore; package kubeproxy, lb and the CLI read the text
// through here; the packet tracer of the tests (internal/iptablestest) walks it.
//
// An nftables mode would sit beside this package, not in it: renderers share the
// Service and endpoint model (package kubeproxy's ServicePort), not the rule text.
package iptables

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Counters are a rule's or chain's "[packets:bytes]".
type Counters struct {
	Packets uint64
	Bytes   uint64
}

// Chain is one ":NAME POLICY [p:b]" declaration.
type Chain struct {
	Name string
	// Policy is ACCEPT or DROP for a built-in chain, "-" for a user-defined one.
	Policy   string
	Counters Counters
	// Line is the 1-based line number in the parsed text.
	Line int
}

// Builtin says whether the chain is one of the kernel's (it has a policy).
func (c Chain) Builtin() bool { return c.Policy != "-" }

// Rule is one command line: "-A CHAIN args", "-I CHAIN [N] args", "-D CHAIN args",
// "-X CHAIN", "-F CHAIN" or "-N CHAIN".
type Rule struct {
	// Op is the command: -A, -I, -D, -X, -F or -N.
	Op    string
	Chain string
	// Pos is -I's rule number (1 when not given), else 0.
	Pos int
	// Args are the words after the chain (and -I's number), quotes removed.
	Args []string
	// Text is the line as written, without the counters.
	Text string
	// Counters are the rule's "[p:b]" prefix (iptables-save -c); HasCounters says there
	// was one.
	Counters    Counters
	HasCounters bool
	// Line is the 1-based line number in the parsed text.
	Line int
}

// Target is the rule's -j target ("" for none).
func (r Rule) Target() string { v, _ := r.Option("-j"); return v }

// Comment is the rule's -m comment text ("" for none).
func (r Rule) Comment() string { v, _ := r.Option("--comment"); return v }

// Option returns the word after the first occurrence of name in Args.
func (r Rule) Option(name string) (string, bool) {
	for i := 0; i+1 < len(r.Args); i++ {
		if r.Args[i] == name {
			return r.Args[i+1], true
		}
	}
	return "", false
}

// Table is one "*table ... COMMIT" section.
type Table struct {
	Name   string
	Chains []Chain
	Rules  []Rule
}

// Dump is parsed iptables text: its table sections in order. iptables-save writes one
// section per table; restore input may hold several sections of one table, applied in
// order.
type Dump struct {
	Tables []*Table
}

// Table returns the first section of table name, or nil.
func (d *Dump) Table(name string) *Table {
	for _, t := range d.Tables {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// ChainNames lists the chains declared in table name, built-in ones included, in order
// (over every section of that table).
func (d *Dump) ChainNames(table string) []string {
	var out []string
	for _, t := range d.Tables {
		if t.Name != table {
			continue
		}
		for _, c := range t.Chains {
			out = append(out, c.Name)
		}
	}
	return out
}

// UserChains lists the user-defined chains of every table, in order.
func (d *Dump) UserChains() []string {
	var out []string
	for _, t := range d.Tables {
		for _, c := range t.Chains {
			if !c.Builtin() {
				out = append(out, c.Name)
			}
		}
	}
	return out
}

// Parse reads iptables-save output or iptables-restore input. Blank lines and comments
// are skipped. Every problem is an error naming its line: a chain or rule outside a
// table, bad counters, an unknown command, an unterminated quote.
func Parse(text []byte) (*Dump, error) {
	d := &Dump{}
	var cur *Table
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var errs []error
	for n := 1; sc.Scan(); n++ {
		if err := d.parseLine(&cur, sc.Text(), n); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read iptables text: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Dump) parseLine(cur **Table, raw string, n int) error {
	line := strings.TrimSpace(raw)
	switch {
	case line == "" || line[0] == '#':
		return nil
	case line[0] == '*':
		*cur = &Table{Name: line[1:]}
		d.Tables = append(d.Tables, *cur)
		return nil
	case line == "COMMIT":
		if *cur == nil {
			return errors.New("COMMIT outside a table")
		}
		*cur = nil
		return nil
	}
	if *cur == nil {
		return fmt.Errorf("%q outside a table", line)
	}
	t := *cur
	if line[0] == ':' {
		f := strings.Fields(line[1:])
		if len(f) == 0 {
			return errors.New("chain declaration without a name")
		}
		c := Chain{Name: f[0], Policy: "-", Line: n}
		if len(f) > 1 {
			c.Policy = f[1]
		}
		if len(f) > 2 {
			var err error
			if c.Counters, err = parseCounters(f[2]); err != nil {
				return err
			}
		}
		t.Chains = append(t.Chains, c)
		return nil
	}
	r := Rule{Line: n}
	if line[0] == '[' {
		end := strings.IndexByte(line, ']')
		if end < 0 {
			return fmt.Errorf("bad counters in %q", line)
		}
		var err error
		if r.Counters, err = parseCounters(line[:end+1]); err != nil {
			return err
		}
		r.HasCounters = true
		line = strings.TrimSpace(line[end+1:])
	}
	r.Text = line
	words, err := SplitWords(line)
	if err != nil {
		return err
	}
	if len(words) < 2 {
		return fmt.Errorf("short command %q", line)
	}
	r.Op, r.Chain, r.Args = words[0], words[1], words[2:]
	switch r.Op {
	case "-A", "-D":
	case "-I":
		r.Pos = 1
		if len(r.Args) > 0 {
			if p, err := strconv.Atoi(r.Args[0]); err == nil {
				if p < 1 {
					return fmt.Errorf("bad rule number in %q", line)
				}
				r.Pos, r.Args = p, r.Args[1:]
			}
		}
	case "-X", "-F", "-N":
		if len(r.Args) > 0 {
			return fmt.Errorf("%s takes only a chain: %q", r.Op, line)
		}
	default:
		return fmt.Errorf("unknown command %q", line)
	}
	t.Rules = append(t.Rules, r)
	return nil
}

// parseCounters reads "[packets:bytes]".
func parseCounters(s string) (Counters, error) {
	in, ok := strings.CutPrefix(s, "[")
	if ok {
		in, ok = strings.CutSuffix(in, "]")
	}
	p, b, ok2 := strings.Cut(in, ":")
	pk, err1 := strconv.ParseUint(p, 10, 64)
	by, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil {
		return Counters{}, fmt.Errorf("bad counters %q", s)
	}
	return Counters{Packets: pk, Bytes: by}, nil
}

// SplitWords splits a rule line into words the way iptables-restore does: on spaces and
// tabs, a double-quoted part is one word (quotes removed), and inside quotes a backslash
// takes the next character as it is.
func SplitWords(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case (c == ' ' || c == '\t') && !inQuote:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
