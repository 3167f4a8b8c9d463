package iptablestest

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Rule is one rule of a chain, parsed for tracing.
type Rule struct {
	Table, Chain string
	// Line is the 1-based line of the restore input it came from (0: inserted by hand).
	Line int
	// Args are the words after the chain, quotes removed.
	Args []string

	proto          string
	protoNeg       bool
	src, dst       netip.Prefix
	srcNeg, dstNeg bool
	matches        []match
	target         string
	targetOpts     map[string]string
}

// Target is the rule's -j target ("" for none).
func (r *Rule) Target() string { return r.target }

// Comment is the rule's -m comment text.
func (r *Rule) Comment() string {
	for _, m := range r.matches {
		if m.mod == "comment" {
			return m.opts["--comment"].val
		}
	}
	return ""
}

// TargetOption is an option of the rule's target (--to-destination, --reject-with, ...).
func (r *Rule) TargetOption(name string) string { return r.targetOpts[name] }

type optVal struct {
	val string
	neg bool
}

// match is one -m module with its options.
type match struct {
	mod   string
	opts  map[string]optVal
	flags map[string]bool
}

func (m *match) opt(name string) (string, bool) { v, ok := m.opts[name]; return v.val, ok }

// modules lists the match modules modelled, with their options; flags take no value.
var modules = map[string]struct{ opts, flags []string }{
	"comment":   {opts: []string{"--comment"}},
	"tcp":       {opts: []string{"--dport", "--sport"}},
	"udp":       {opts: []string{"--dport", "--sport"}},
	"sctp":      {opts: []string{"--dport", "--sport"}},
	"addrtype":  {opts: []string{"--dst-type", "--src-type"}},
	"statistic": {opts: []string{"--mode", "--probability", "--every", "--packet"}},
	"recent":    {opts: []string{"--name", "--seconds", "--mask"}, flags: []string{"--set", "--rcheck", "--reap", "--rsource"}},
	"mark":      {opts: []string{"--mark"}},
	"conntrack": {opts: []string{"--ctstate", "--ctorigdst", "--ctorigdstport"}},
	"nfacct":    {opts: []string{"--nfacct-name"}},
}

// targets lists the built-in targets modelled, with their options; flags take no value.
var targets = map[string]struct{ opts, flags []string }{
	"ACCEPT": {}, "DROP": {}, "RETURN": {},
	"REJECT":     {opts: []string{"--reject-with"}},
	"DNAT":       {opts: []string{"--to-destination"}},
	"MASQUERADE": {flags: []string{"--random-fully"}},
	"MARK":       {opts: []string{"--set-xmark", "--or-mark", "--xor-mark"}},
	"HMARK": {opts: []string{"--hmark-src-prefix", "--hmark-dst-prefix", "--hmark-sport-mask", "--hmark-dport-mask",
		"--hmark-proto-mask", "--hmark-rnd", "--hmark-mod", "--hmark-offset"}},
}

func isTerminalTarget(t string) bool { _, ok := targets[t]; return ok }

// parseRule understands the matches and targets netlab writes; anything else is an
// error.
func parseRule(table, chain string, args []string) (*Rule, error) {
	r := &Rule{Table: table, Chain: chain, Args: slices.Clone(args)}
	var cur *match // the module whose options follow
	inTarget := false
	neg := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "!" {
			neg = true
			continue
		}
		value := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("missing value after %s", a)
			}
			i++
			return args[i], nil
		}
		switch a {
		case "-p", "-s", "-d", "-m", "-j":
			v, err := value()
			if err != nil {
				return nil, err
			}
			switch a {
			case "-p":
				r.proto, r.protoNeg = strings.ToLower(v), neg
			case "-s", "-d":
				p, err := parsePrefix(v)
				if err != nil {
					return nil, err
				}
				if a == "-s" {
					r.src, r.srcNeg = p, neg
				} else {
					r.dst, r.dstNeg = p, neg
				}
			case "-m":
				if _, ok := modules[v]; !ok {
					return nil, fmt.Errorf("unsupported match module %q", v)
				}
				r.matches = append(r.matches, match{mod: v, opts: map[string]optVal{}, flags: map[string]bool{}})
				cur = &r.matches[len(r.matches)-1]
			case "-j":
				r.target, r.targetOpts, inTarget, cur = v, map[string]string{}, true, nil
			}
			neg = false
			continue
		}
		var opts, flags []string
		switch {
		case inTarget:
			t, ok := targets[r.target]
			if !ok {
				return nil, fmt.Errorf("option %s after jump to chain %s", a, r.target)
			}
			opts, flags = t.opts, t.flags
		case cur != nil:
			opts, flags = modules[cur.mod].opts, modules[cur.mod].flags
		default:
			return nil, fmt.Errorf("unsupported option %q", a)
		}
		switch {
		case slices.Contains(flags, a):
			if inTarget {
				r.targetOpts[a] = ""
			} else {
				cur.flags[a] = true
			}
		case slices.Contains(opts, a):
			v, err := value()
			if err != nil {
				return nil, err
			}
			if inTarget {
				r.targetOpts[a] = v
			} else {
				cur.opts[a] = optVal{v, neg}
			}
		default:
			if inTarget {
				return nil, fmt.Errorf("unsupported option %s of -j %s", a, r.target)
			}
			return nil, fmt.Errorf("unsupported option %s of -m %s", a, cur.mod)
		}
		neg = false
	}
	return r, r.check()
}

// check validates values once, so tracing need not.
func (r *Rule) check() error {
	for _, m := range r.matches {
		for _, o := range []string{"--dport", "--sport", "--ctorigdstport", "--seconds", "--every", "--packet"} {
			if v, ok := m.opt(o); ok {
				if _, err := strconv.Atoi(v); err != nil {
					return fmt.Errorf("bad %s %q", o, v)
				}
			}
		}
		if v, ok := m.opt("--mark"); ok {
			if _, _, err := parseMark(v); err != nil {
				return err
			}
		}
		if v, ok := m.opt("--ctorigdst"); ok {
			if _, err := parsePrefix(v); err != nil {
				return err
			}
		}
		switch m.mod {
		case "statistic":
			switch mode, _ := m.opt("--mode"); mode {
			case "random":
				if _, err := strconv.ParseFloat(m.opts["--probability"].val, 64); err != nil {
					return fmt.Errorf("bad probability %q", m.opts["--probability"].val)
				}
			case "nth":
				if _, ok := m.opt("--every"); !ok {
					return fmt.Errorf("statistic nth without --every")
				}
			default:
				return fmt.Errorf("unsupported statistic mode %q", mode)
			}
		case "recent":
			if v, ok := m.opt("--mask"); ok && v != "255.255.255.255" {
				return fmt.Errorf("unsupported recent mask %q", v)
			}
			if !m.flags["--set"] && !m.flags["--rcheck"] {
				return fmt.Errorf("recent without --set or --rcheck")
			}
		}
	}
	switch r.target {
	case "DNAT":
		if _, err := netip.ParseAddrPort(r.targetOpts["--to-destination"]); err != nil {
			return fmt.Errorf("DNAT target %q: %w", r.targetOpts["--to-destination"], err)
		}
	case "MARK":
		n := 0
		for _, o := range targets["MARK"].opts {
			if v, ok := r.targetOpts[o]; ok {
				n++
				if _, _, err := parseMark(v); err != nil {
					return err
				}
			}
		}
		if n != 1 {
			return fmt.Errorf("MARK needs one of --set-xmark, --or-mark, --xor-mark")
		}
	case "HMARK":
		for _, o := range []string{"--hmark-rnd", "--hmark-mod", "--hmark-offset"} {
			if _, err := strconv.ParseUint(r.targetOpts[o], 0, 32); err != nil {
				return fmt.Errorf("HMARK %s %q: %w", o, r.targetOpts[o], err)
			}
		}
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("bad prefix %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address %q: %w", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseMark reads "value[/mask]" (mask defaults to all ones).
func parseMark(s string) (val, mask uint32, err error) {
	v, m, hasMask := strings.Cut(s, "/")
	x, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("bad mark %q: %w", s, err)
	}
	mask = 0xffffffff
	if hasMask {
		y, err := strconv.ParseUint(m, 0, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("bad mark mask %q: %w", s, err)
		}
		mask = uint32(y)
	}
	return uint32(x), mask, nil
}
