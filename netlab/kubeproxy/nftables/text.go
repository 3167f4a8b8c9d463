package nftables

import (
	"bytes"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
)

const prefix = Family + " " + Table + " "

type writer struct{ bytes.Buffer }

func (w *writer) line(parts ...string) {
	for _, p := range parts {
		w.WriteString(p)
	}
	w.WriteByte('\n')
}

func (w *writer) addTable() {
	w.line("add table ", prefix[:len(prefix)-1], " { comment ", quote("rules for kube-proxy"), " ; }")
}

func (w *writer) addContainer(c *Container) {
	kind := "set"
	if c.Map {
		kind = "map"
	}
	w.line("add ", kind, " ", prefix, c.Name, " { ", c.Spec, " }")
}

func (w *writer) addChain(c *Chain) {
	switch {
	case c.Base != "":
		w.line("add chain ", prefix, c.Name, " { ", c.Base, " ; }")
	case c.Comment != "":
		w.line("add chain ", prefix, c.Name, " { comment ", quote(c.Comment), " ; }")
	default:
		w.line("add chain ", prefix, c.Name)
	}
}

func (w *writer) rules(c *Chain) {
	for _, r := range c.Rules {
		w.line("add rule ", prefix, c.Name, " ", r)
	}
}

func elementText(e Element) string {
	s := e.Key
	if e.Comment != "" {
		s += " comment " + quote(e.Comment)
	}
	if e.Value != "" {
		s += " : " + e.Value
	}
	return s
}

func (w *writer) addElement(container string, e Element) {
	w.line("add element ", prefix, container, " { ", elementText(e), " }")
}

func (w *writer) deleteElement(container string, e Element) {
	w.line("delete element ", prefix, container, " { ", e.Key, " }")
}

func sortedContainers(rs *Ruleset) []*Container {
	names := slices.Sorted(maps.Keys(rs.Containers))
	out := make([]*Container, len(names))
	for i, n := range names {
		out[i] = rs.Containers[n]
	}
	return out
}

func sortedElements(c *Container) []Element {
	keys := slices.Sorted(maps.Keys(c.Elements))
	out := make([]Element, len(keys))
	for i, k := range keys {
		out[i] = c.Elements[k]
	}
	return out
}

// Dump returns the table as kube-proxy's tests dump it: the table, its sets and maps,
// its chains with their rules, then the elements, one nft command a line. It is also
// valid `nft -f` input that creates the table from nothing.
func Dump(rs *Ruleset) []byte {
	var w writer
	w.addTable()
	for _, c := range sortedContainers(rs) {
		w.addContainer(c)
	}
	for _, n := range rs.SortedChains() {
		w.addChain(rs.Chains[n])
	}
	for _, n := range rs.SortedChains() {
		w.rules(rs.Chains[n])
	}
	for _, c := range sortedContainers(rs) {
		for _, e := range sortedElements(c) {
			w.addElement(c.Name, e)
		}
	}
	return w.Bytes()
}

// Existing is what the kernel's table holds before a full sync: chain and set names.
type Existing struct {
	// Table: the kernel has a table ip kube-proxy (ParseExisting sets it when it lists one).
	Table  bool
	Chains []string
	Sets   []string
	// Base: the hook of each base chain the table has, as BaseChains writes it ("filter
	// input 0"); nil when not read (Restaged then re-creates every base chain).
	Base map[string]string
}

// Full returns one nft -f transaction that makes the kernel's table exactly rs, as
// kube-proxy's full sync does: every chain and map is created if missing and flushed,
// then refilled; per-service chains and affinity sets of existing that rs no longer
// has are flushed and deleted. Affinity sets that stay keep their entries. first
// re-creates the base chains too (kube-proxy does it once per start, so a changed hook
// or priority takes effect).
func Full(rs *Ruleset, existing Existing, first bool) []byte {
	var w writer
	w.Grow(256*len(rs.Chains) + 1024)
	w.addTable()
	if first {
		for _, bc := range baseChains {
			w.line("add chain ", prefix, bc.name)
			w.line("flush chain ", prefix, bc.name)
			w.line("delete chain ", prefix, bc.name)
		}
	}
	for _, c := range sortedContainers(rs) {
		w.addContainer(c)
		if !IsAffinitySet(c.Name) {
			kind := "set"
			if c.Map {
				kind = "map"
			}
			w.line("flush ", kind, " ", prefix, c.Name)
		}
	}
	names := rs.SortedChains()
	for _, n := range names {
		w.addChain(rs.Chains[n])
		w.line("flush chain ", prefix, n)
	}
	// The rules that carry an anonymous set or map first: the kernel binds each to its
	// rule by walking every change the transaction holds so far, so the fewer before
	// them, the cheaper the transaction (a chain's rules stay in their order).
	for _, anon := range []bool{true, false} {
		for _, n := range names {
			if hasAnonymousSet(rs.Chains[n]) == anon {
				w.rules(rs.Chains[n])
			}
		}
	}
	for _, c := range sortedContainers(rs) {
		for _, e := range sortedElements(c) {
			w.addElement(c.Name, e)
		}
	}
	writeStale(&w, rs, existing)
	return w.Bytes()
}

func hasAnonymousSet(c *Chain) bool {
	for _, r := range c.Rules {
		if strings.Contains(r, " { ") {
			return true
		}
	}
	return false
}

// Diff returns the nft -f transaction that turns the table prev (as the kernel holds it
// after the last sync) into next: new and changed chains are created and rewritten,
// map and set elements added, changed or deleted one by one, new affinity sets created,
// and chains and affinity sets next no longer has deleted, in an order the kernel
// accepts in one transaction. It returns nil when nothing changed.
func Diff(prev, next *Ruleset) []byte {
	var w writer
	for _, c := range sortedContainers(next) {
		if prev.Containers[c.Name] == nil {
			w.addContainer(c)
		}
	}
	// Only what changed is sorted: a chain kept from one Ruleset to the next is the same
	// *Chain in both.
	var changed []string
	for n, c := range next.Chains {
		old := prev.Chains[n]
		if old == c {
			continue
		}
		if old == nil || old.Base != c.Base || old.Comment != c.Comment || !slices.Equal(old.Rules, c.Rules) {
			changed = append(changed, n)
		}
	}
	slices.Sort(changed)
	for _, n := range changed {
		w.addChain(next.Chains[n])
		if prev.Chains[n] != nil {
			w.line("flush chain ", prefix, n)
		}
	}
	for _, n := range changed {
		w.rules(next.Chains[n])
	}
	for _, c := range sortedContainers(next) {
		old := prev.Containers[c.Name]
		if old == nil {
			for _, e := range sortedElements(c) {
				w.addElement(c.Name, e)
			}
			continue
		}
		if IsAffinitySet(c.Name) || old == c {
			continue // filled by the kernel, or the same set
		}
		var gone, added []string
		for k := range old.Elements {
			if _, ok := c.Elements[k]; !ok {
				gone = append(gone, k)
			}
		}
		for k, e := range c.Elements {
			if oe, ok := old.Elements[k]; !ok || oe != e {
				added = append(added, k)
			}
		}
		slices.Sort(gone)
		slices.Sort(added)
		for _, k := range gone {
			w.deleteElement(c.Name, old.Elements[k])
		}
		for _, k := range added {
			if oe, ok := old.Elements[k]; ok {
				w.deleteElement(c.Name, oe)
			}
			w.addElement(c.Name, c.Elements[k])
		}
	}
	var stale []string
	for n := range prev.Chains {
		if next.Chains[n] == nil {
			stale = append(stale, n)
		}
	}
	slices.Sort(stale)
	for _, n := range stale {
		w.line("flush chain ", prefix, n)
	}
	for _, n := range stale {
		w.line("delete chain ", prefix, n)
	}
	for _, c := range sortedContainers(prev) {
		if next.Containers[c.Name] == nil {
			kind := "set"
			if c.Map {
				kind = "map"
			}
			w.line("delete ", kind, " ", prefix, c.Name)
		}
	}
	if w.Len() == 0 {
		return nil
	}
	return w.Bytes()
}

// ParseExisting reads the chain and set names of table ip kube-proxy from `nft list
// chains` and `nft -t list sets` output (other tables are skipped).
func ParseExisting(chains, sets []byte) Existing {
	ex := Existing{Chains: namesIn(chains, "chain"), Sets: namesIn(sets, "set")}
	ex.Table = len(ex.Chains) > 0 || len(ex.Sets) > 0 || hasTable(chains) || hasTable(sets)
	return ex
}

func hasTable(out []byte) bool {
	for line := range bytes.Lines(out) {
		if f := bytes.Fields(line); len(f) >= 3 && string(f[0]) == "table" && string(f[1]) == Family && string(f[2]) == Table {
			return true
		}
	}
	return false
}

func namesIn(out []byte, kind string) []string {
	var names []string
	in := false
	for line := range bytes.Lines(out) {
		f := bytes.Fields(line)
		switch {
		case len(f) >= 3 && string(f[0]) == "table":
			in = string(f[1]) == Family && string(f[2]) == Table
		case in && len(f) >= 2 && string(f[0]) == kind:
			names = append(names, string(f[1]))
		}
	}
	return names
}

// BaseChains returns kube-proxy's base chains as `nft list chains` prints their
// headers' hook line: "type filter hook input priority filter; policy accept;".
func BaseChains() map[string]string {
	out := map[string]string{}
	for _, bc := range baseChains {
		out[bc.name] = bc.typ + " " + bc.hook + " " + bc.priority
	}
	return out
}

// MissingBaseChains checks `nft list chains` output for table ip kube-proxy's base
// chains with kube-proxy's type, hook and priority; it returns what is missing or wrong.
func MissingBaseChains(listing []byte) []string {
	have := map[string]string{}
	in, cur := false, ""
	for line := range bytes.Lines(listing) {
		f := strings.Fields(strings.NewReplacer(";", " ").Replace(string(line)))
		switch {
		case len(f) >= 3 && f[0] == "table":
			in = f[1] == Family && f[2] == Table
		case in && len(f) >= 2 && f[0] == "chain":
			cur = f[1]
		case in && cur != "" && len(f) >= 6 && f[0] == "type" && f[2] == "hook" && f[4] == "priority":
			have[cur] = f[1] + " " + f[3] + " " + priorityNumber(f[5], f[6:])
		}
	}
	var missing []string
	for _, bc := range baseChains {
		want := bc.typ + " " + bc.hook + " " + bc.priority
		if got, ok := have[bc.name]; !ok {
			missing = append(missing, "no base chain "+bc.name)
		} else if got != want {
			missing = append(missing, "base chain "+bc.name+" is "+got+", want "+want)
		}
	}
	return missing
}

// priorityNumber turns nft's symbolic priorities ("dstnat - 10", "filter", "srcnat") back
// into numbers for the ip family.
func priorityNumber(first string, rest []string) string {
	base := map[string]int{"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
	n, ok := base[first]
	if !ok {
		return first
	}
	if len(rest) >= 2 && (rest[0] == "+" || rest[0] == "-") {
		if d, err := strconv.Atoi(rest[1]); err == nil {
			if rest[0] == "-" {
				d = -d
			}
			n += d
		}
	}
	return strconv.Itoa(n)
}

// Staged returns Full's work for a kernel that has no table ip kube-proxy at all, as
// several transactions to apply in order, each all or nothing. Binding an anonymous set
// (each service chain's `numgen … vmap { … }`) walks every change of its transaction,
// so one transaction of N Services costs about N²; in stages of at most anonPerStage
// such rules it costs about N. Nothing is served before the last stage: the first
// creates the table, its sets and maps and every chain (the base chains empty, with
// their accept policy), the middle ones fill the regular chains, sets and maps, which
// no packet reaches while the base chains are empty, and the last writes the base
// chains' jumps in one transaction, which makes the whole table live at once. The
// kernel then holds what Full(rs, Existing{}, true) leaves (the same objects, created
// in the same order).
func Staged(rs *Ruleset, anonPerStage int) [][]byte {
	return slices.Collect(StagedSeq(rs, anonPerStage))
}

// StagedSeq is Staged's transactions, each written only when the one before has been
// taken (the caller may apply one while the next is written). A transaction's text is
// the caller's to keep.
func StagedSeq(rs *Ruleset, anonPerStage int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		s := stager{yield: yield}
		w, cut := &s.w, s.cut
		names := s.create(rs, func(*Chain) bool { return true })
		if s.stopped {
			return
		}
		n := 0
		for _, anon := range []bool{true, false} {
			for _, name := range names {
				c := rs.Chains[name]
				if c.Base != "" || hasAnonymousSet(c) != anon {
					continue
				}
				w.rules(c)
				if anon {
					n += len(c.Rules)
					if n >= anonPerStage {
						if !cut() {
							return
						}
						n = 0
					}
				}
			}
		}
		for _, c := range sortedContainers(rs) {
			for _, e := range sortedElements(c) {
				w.addElement(c.Name, e)
			}
		}
		if !cut() {
			return
		}
		for _, name := range names {
			if c := rs.Chains[name]; c.Base != "" {
				w.rules(c)
			}
		}
		cut()
	}
}

// Restaged returns Full's work for a kernel that already has a table ip kube-proxy (an
// agent restarting on its node, or a periodic or repairing full sync), as several
// transactions to apply in order, each all or nothing, while the table keeps serving.
// One transaction that flushes and refills the whole table costs about N² (binding each
// rule's anonymous set walks every change of its transaction); in stages of at most
// anonPerStage such rules it costs about N. Every stage leaves a table in which each
// Service is served, by its old rules or its new ones:
//
//  1. the table, every set and map and every regular chain are created where missing
//     (new chains stay empty and unreferenced; nothing existing changes);
//  2. the regular chains are flushed and refilled, a chain only after every chain it
//     jumps or goes to (so a refilled chain never leads to an empty new one), a chain's
//     flush and refill in one transaction;
//  3. the sets and maps (affinity sets aside) are flushed and refilled in one
//     transaction: the dispatch switches to the new chains at once;
//  4. the base chains are flushed and refilled (re-created first when existing.Base says
//     their hook or priority is not kube-proxy's, or is unknown), and the chains and
//     affinity sets rs no longer has are deleted, in one transaction.
//
// The kernel then holds what Full(rs, existing, false) leaves: the same chains, rules,
// sets and elements (a re-created base chain lists after the others, as after Full with
// first).
func Restaged(rs *Ruleset, existing Existing, anonPerStage int) [][]byte {
	return slices.Collect(RestagedSeq(rs, existing, anonPerStage))
}

// RestagedSeq is Restaged's transactions, each written only when the one before has
// been taken (see StagedSeq).
func RestagedSeq(rs *Ruleset, existing Existing, anonPerStage int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		s := stager{yield: yield}
		w, cut := &s.w, s.cut
		names := s.create(rs, func(c *Chain) bool { return c.Base == "" })
		if s.stopped {
			return
		}
		anon, rules := 0, 0
		for _, n := range dependencyOrder(rs, names) {
			c := rs.Chains[n]
			w.line("flush chain ", prefix, n)
			w.rules(c)
			rules += len(c.Rules)
			if hasAnonymousSet(c) {
				anon += len(c.Rules)
			}
			if anon >= anonPerStage || rules >= 8*anonPerStage {
				if !cut() {
					return
				}
				anon, rules = 0, 0
			}
		}
		if !cut() {
			return
		}
		for _, c := range sortedContainers(rs) {
			if IsAffinitySet(c.Name) {
				continue
			}
			kind := "set"
			if c.Map {
				kind = "map"
			}
			w.line("flush ", kind, " ", prefix, c.Name)
			for _, e := range sortedElements(c) {
				w.addElement(c.Name, e)
			}
		}
		if !cut() {
			return
		}
		want := BaseChains()
		for _, n := range names {
			c := rs.Chains[n]
			if c.Base == "" {
				continue
			}
			if existing.Base[n] == want[n] {
				w.line("flush chain ", prefix, n)
			} else {
				w.line("add chain ", prefix, n)
				w.line("flush chain ", prefix, n)
				w.line("delete chain ", prefix, n)
				w.addChain(c)
			}
			w.rules(c)
		}
		writeStale(w, rs, existing)
		cut()
	}
}

// stager hands a staged sync's transactions to yield: what w holds becomes one at each
// cut.
type stager struct {
	w       writer
	yield   func([]byte) bool
	stopped bool // yield asked for no more
}

// cut yields what w holds (if anything) and reports whether to go on.
func (s *stager) cut() bool {
	if s.w.Len() > 0 && !s.stopped {
		s.stopped = !s.yield(bytes.Clone(s.w.Bytes()))
		s.w.Reset()
	}
	return !s.stopped
}

// create writes the first stage: the table, its sets and maps, and the chains of rs
// that keep selects, all empty. It returns rs's chain names in order.
func (s *stager) create(rs *Ruleset, keep func(*Chain) bool) []string {
	s.w.addTable()
	for _, c := range sortedContainers(rs) {
		s.w.addContainer(c)
	}
	names := rs.SortedChains()
	for _, n := range names {
		if c := rs.Chains[n]; keep(c) {
			s.w.addChain(c)
		}
	}
	s.cut()
	return names
}

// writeStale flushes and deletes the per-service chains existing has and rs does not,
// then deletes such affinity sets.
func writeStale(w *writer, rs *Ruleset, existing Existing) {
	var stale []string
	for _, c := range existing.Chains {
		if IsServiceChain(c) && rs.Chains[c] == nil {
			stale = append(stale, c)
		}
	}
	slices.Sort(stale)
	stale = slices.Compact(stale)
	for _, c := range stale {
		w.line("flush chain ", prefix, c)
	}
	for _, c := range stale {
		w.line("delete chain ", prefix, c)
	}
	sets := slices.Clone(existing.Sets)
	slices.Sort(sets)
	for _, s := range slices.Compact(sets) {
		if IsAffinitySet(s) && rs.Containers[s] == nil {
			w.line("delete set ", prefix, s)
		}
	}
}

// dependencyOrder returns rs's regular chains (of names, in that order otherwise) so
// that every chain comes after the chains its rules jump or go to.
func dependencyOrder(rs *Ruleset, names []string) []string {
	out := make([]string, 0, len(names))
	done := make(map[string]bool, len(names))
	var visit func(n string)
	visit = func(n string) {
		c := rs.Chains[n]
		if done[n] || c == nil || c.Base != "" {
			return
		}
		done[n] = true // chains cannot loop (the kernel refuses it)
		for _, r := range c.Rules {
			for _, t := range chainRefs(r) {
				visit(t)
			}
		}
		out = append(out, n)
	}
	for _, n := range names {
		visit(n)
	}
	return out
}

// chainRefs returns the chains a rule's text jumps or goes to (also in an anonymous
// verdict map).
func chainRefs(rule string) []string {
	var refs []string
	for rest := rule; ; {
		i := strings.Index(rest, "jump ")
		j := strings.Index(rest, "goto ")
		if i < 0 || (j >= 0 && j < i) {
			i = j
		}
		if i < 0 {
			return refs
		}
		rest = rest[i+5:]
		name, _, _ := strings.Cut(rest, " ")
		refs = append(refs, name)
	}
}
