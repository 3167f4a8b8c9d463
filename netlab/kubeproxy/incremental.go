package kubeproxy

import (
	"bytes"
	"hash/maphash"
)

// Snapshot is what an incremental sync needs to remember of a complete rendering: per
// table, its chains in order and a digest of each chain's rules.
type Snapshot struct {
	tables map[string]*tableSnap
}

type tableSnap struct {
	chains  []string
	digests map[string]uint64
}

var seed = maphash.MakeSeed()

// splitTable is one table of a rendering being scanned.
type splitTable struct {
	name    string
	chains  []string
	digests map[string]uint64
	deletes []string
	rules   []ruleLine // every -A line in file order
}

type ruleLine struct {
	chain string
	line  []byte
}

func split(data []byte) []*splitTable {
	var tables []*splitTable
	var cur *splitTable
	for line := range bytes.Lines(data) {
		line = bytes.TrimRight(line, "\n")
		switch {
		case len(line) == 0:
		case line[0] == '*':
			cur = &splitTable{name: string(line[1:]), digests: map[string]uint64{}}
			tables = append(tables, cur)
		case cur == nil:
		case string(line) == "COMMIT":
			cur = nil
		case line[0] == ':':
			name, _, _ := bytes.Cut(line[1:], []byte(" "))
			cur.chains = append(cur.chains, string(name))
			if _, ok := cur.digests[string(name)]; !ok {
				cur.digests[string(name)] = 0
			}
		case bytes.HasPrefix(line, []byte("-X ")):
			cur.deletes = append(cur.deletes, string(line[3:]))
		case bytes.HasPrefix(line, []byte("-A ")):
			chainB, _, _ := bytes.Cut(line[3:], []byte(" "))
			chain := string(chainB)
			// Order-sensitive digest of the chain's lines.
			cur.digests[chain] = (cur.digests[chain]*1099511628211 ^ maphash.Bytes(seed, line)) + 1
			cur.rules = append(cur.rules, ruleLine{chain, line})
		}
	}
	return tables
}

func snapshotOf(tables []*splitTable) *Snapshot {
	s := &Snapshot{tables: map[string]*tableSnap{}}
	for _, t := range tables {
		ts := &tableSnap{digests: t.digests}
		for _, c := range t.chains {
			if !contains(t.deletes, c) {
				ts.chains = append(ts.chains, c)
			}
		}
		for c := range ts.digests {
			if contains(t.deletes, c) {
				delete(ts.digests, c)
			}
		}
		s.tables[t.name] = ts
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TakeSnapshot remembers a complete rendering (as Render returns it).
func TakeSnapshot(rendering []byte) *Snapshot { return snapshotOf(split(rendering)) }

// Incremental returns the iptables-restore --noflush input that turns the kernel state
// left by applying prev (a complete rendering, as Render returns it) into the state next
// (another complete rendering) leaves: only chains whose rules differ are declared
// (flushed) and rewritten, chains of prev that next no longer has are deleted, and
// next's own stale-chain deletions are kept. It returns nil when nothing changed.
//
// It is correct only while the kernel still holds exactly what prev wrote; callers make
// a full sync (apply next whole) at start, after a failure, and now and then.
func Incremental(prev, next []byte) []byte {
	out, _ := IncrementalFrom(TakeSnapshot(prev), next)
	return out
}

// IncrementalFrom is Incremental from a snapshot of prev; it also returns the snapshot of
// next, for the sync after this one.
func IncrementalFrom(prev *Snapshot, next []byte) ([]byte, *Snapshot) {
	tables := split(next)
	var out bytes.Buffer
	for _, t := range tables {
		old := prev.tables[t.name]
		if old == nil {
			old = &tableSnap{digests: map[string]uint64{}}
		}
		changed := map[string]bool{}
		var decl []string
		for _, c := range t.chains {
			if contains(t.deletes, c) || changed[c] {
				continue
			}
			d, existed := old.digests[c]
			if !existed || d != t.digests[c] {
				changed[c] = true
				decl = append(decl, c)
			}
		}
		var deletes []string
		for _, c := range old.chains {
			if _, still := t.digests[c]; (!still || contains(t.deletes, c)) && IsServiceChain(c) {
				deletes = append(deletes, c)
			}
		}
		for _, d := range t.deletes {
			if !contains(deletes, d) {
				deletes = append(deletes, d)
			}
		}
		if len(decl) == 0 && len(deletes) == 0 {
			continue
		}
		out.WriteString("*" + t.name + "\n")
		for _, c := range decl {
			out.WriteString(chainLine(c) + "\n")
		}
		for _, d := range deletes {
			out.WriteString(chainLine(d) + "\n")
		}
		for _, rl := range t.rules {
			if changed[rl.chain] {
				out.Write(rl.line)
				out.WriteByte('\n')
			}
		}
		for _, d := range deletes {
			out.WriteString("-X " + d + "\n")
		}
		out.WriteString("COMMIT\n")
	}
	snap := snapshotOf(tables)
	if out.Len() == 0 {
		return nil, snap
	}
	return out.Bytes(), snap
}
