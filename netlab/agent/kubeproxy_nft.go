package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
	"github.com/netlabdev/netlab/netlab/kubeproxy/nftnl"
)

// NewRuleSyncerMode returns a syncer for node in kube-proxy mode ("iptables", "" or
// "nftables").
func NewRuleSyncerMode(node kubeproxy.Node, mode string) (*RuleSyncer, error) {
	switch mode {
	case "", "iptables":
		return &RuleSyncer{node: node}, nil
	case "nftables":
		m := nftables.NewModel(node)
		m.DeferStaleDeletes(true) // as kube-proxy: see StaleDue
		return &RuleSyncer{node: node, nft: true, nftModel: m, nftConn: &nftnl.Conn{}}, nil
	}
	return nil, fmt.Errorf("unknown kube-proxy mode %q (iptables or nftables)", mode)
}

// anonPerStage bounds the rules with an anonymous set in one transaction of a staged
// full sync (see nftables.Staged).
const anonPerStage = 500

// fullSyncGCPercent is the garbage collector's GOGC while a full sync runs.
const fullSyncGCPercent = 400

// syncNFT is Sync in nftables mode, as kube-proxy's nftables proxier does it: an
// incremental sync is one netlink transaction (the nft -f text the model writes,
// compiled by nftnl), so the table changes atomically; it writes only the chains and map
// elements of the Service ports that changed (the model finds them and writes their
// commands without walking the table). A full sync flushes and refills every chain, set
// and map, re-creates base chains whose hook is not kube-proxy's, and deletes the
// per-service chains and affinity sets the kernel holds that are no longer wanted: from
// no table in stages live at the last (nftables.Staged), over a table in place in stages
// each of which keeps every Service served (nftables.Restaged).
//
// A full sync first asks the kernel for nftables' generation number (see nftnl.State):
// when nothing has committed in the namespace since this syncer's last transaction, the
// table is still exactly what that transaction left, and the full sync writes only the
// changes since (Kept). A restarted agent does the same from the record its predecessor
// left beside the table (SetRecord): same boot, namespace, table, generation, netlab
// binary, and the same node and ports (nftables.Model's Fingerprint) mean the table is
// already what it would write, and it writes nothing.
func (r *RuleSyncer) syncNFT(ports []kubeproxy.ServicePort, full bool) (SyncStats, error) {
	start := time.Now()
	if full || !r.nftSynced {
		// A full sync allocates much that lives only until its stages are sent (the
		// rendering, text, messages): the heap may grow further between collections
		// meanwhile (a fifth of netlab's CPU time in a 1000-Service full sync was the
		// collector's).
		defer debug.SetGCPercent(debug.SetGCPercent(fullSyncGCPercent))
	}
	delta, ok := r.nftModel.Update(ports) // only the changed ports rendered again
	// Chains no port wants any more are flushed in the sync that makes them stale and
	// deleted in one at least a second later (nftables.StaleDelay), in the same
	// transaction as its changes; a full sync deletes them all.
	// (On the first Update, ok false, nothing is stale yet.)
	if del := r.nftModel.StaleDeletes(time.Now(), full || !r.nftSynced); del != nil {
		delta = append(delta, del...)
	}
	var stages [][]byte
	kept := false
	if full || !ok || !r.nftSynced {
		now, err := r.nftConn.State()
		if err != nil {
			r.nftSynced = false
			return SyncStats{Full: true, Took: time.Since(start)}, err
		}
		switch {
		case r.nftSynced && r.nftKnown.Generation != 0 && now == r.nftKnown:
			// Nothing has committed since this syncer's last transaction.
			kept = true
		case !r.nftSynced:
			if match, stale := r.recordMatches(now); match {
				// Nor since a predecessor's, which left the table as these ports make it,
				// and, when stale, its flushed stale chains: deleted now (with any affinity
				// set no port has).
				kept, delta = true, nil
				if stale {
					existing, err := r.nftConn.Existing()
					if err != nil {
						r.nftSynced = false
						return SyncStats{Full: true, Took: time.Since(start)}, err
					}
					delta = nftables.DeleteStale(r.nftModel.Ruleset(), existing)
				}
			}
		}
		r.nftKnown = now
	}
	var staged iter.Seq[[]byte] // a full sync's stages, written as they are applied
	if kept {
		if delta != nil {
			stages = [][]byte{delta}
		}
		full = true
	} else if full || !ok || !r.nftSynced {
		existing, err := r.nftConn.Existing()
		if err != nil {
			r.nftSynced = false
			return SyncStats{Full: true, Took: time.Since(start)}, err
		}
		if existing.Table {
			// Something has committed since the table was last known (another table,
			// iptables-nft, a hand-made change, or this agent's predecessor without a
			// record): read the table back, and keep it when it holds exactly what the
			// model makes. A failed read only costs the rewrite, and none is tried when the
			// table's chains and sets are not the model's by name (a restart with other
			// endpoints, usually: the listing is at hand).
			// With changes to make in this sync (delta), the table cannot hold what the
			// model now makes: no read-back then either.
			if delta == nil && nftables.SameNames(r.nftModel.Ruleset(), existing) {
				if same, _, err := r.nftConn.Holds(r.nftModel.Ruleset()); err == nil && same {
					kept = true
				}
			}
			if kept {
				stages = nil
			} else {
				// The table serves: refill it in stages, each leaving every Service
				// served (see nftables.Restaged), not in one transaction that costs N².
				staged = nftables.RestagedSeq(r.nftModel.Ruleset(), existing, anonPerStage)
			}
		} else {
			// Nothing is served yet: build the table in stages, live at the last one.
			staged = nftables.StagedSeq(r.nftModel.Ruleset(), anonPerStage)
		}
		full = true
	} else if delta != nil {
		stages = [][]byte{delta}
	}
	st := SyncStats{Full: full, Kept: kept}
	for _, input := range stages {
		st.Bytes += len(input)
	}
	n := len(stages)
	var err error
	before := r.nftKnown
	r.nftKnown = nftnl.State{}
	if staged != nil {
		// Each stage is written and compiled while the kernel applies the one before.
		// (ApplySeq has waited for the writer when it returns.)
		var nBytes, count int
		err = r.nftConn.ApplySeq(func(yield func([]byte) bool) {
			for text := range staged {
				nBytes += len(text)
				count++
				if !yield(text) {
					return
				}
			}
		})
		st.Bytes, n = nBytes, count
	} else {
		err = r.nftConn.ApplyAll(stages)
	}
	if err != nil {
		r.nftSynced = false
		r.removeRecord()
		st.Took = time.Since(start)
		return st, err
	}
	if full {
		r.lastFull = time.Now()
	}
	if staged != nil {
		r.nftModel.ForgetStale() // the rewrite deleted every chain the model does not have
	}
	r.nftSynced = true
	r.learnState(before, n)
	st.Took = time.Since(start)
	return st, nil
}

// learnState sets r.nftKnown to the namespace's state after the transactions just
// applied (n of them, after a state of before) and records it. When the commits'
// generations follow before's, nothing else committed in between and the table is the
// same; otherwise the state is read and kept only if no commit came after ours (else it
// stays unknown, and the next full sync rewrites the table).
func (r *RuleSyncer) learnState(before nftnl.State, n int) {
	gen := r.nftConn.Committed()
	switch {
	case n == 0:
		r.nftKnown = before
	case gen == 0:
		// unknown
	case before.Generation != 0 && before.Table != 0 && gen == before.Generation+uint32(n):
		r.nftKnown = before
		r.nftKnown.Generation = gen
	default:
		if now, err := r.nftConn.State(); err == nil && now.Generation == gen && now.Table != 0 {
			r.nftKnown = now
		}
	}
	r.writeRecord()
}

// nftRecord is what a syncer leaves beside the table after each sync, for its successor
// (an agent restarted on the node): the kernel's state after its last transaction, and
// what the table then held.
type nftRecord struct {
	Boot   string      `json:"boot"`   // /proc/sys/kernel/random/boot_id
	Binary string      `json:"binary"` // the executable that rendered it (see binaryID)
	State  nftnl.State `json:"state"`
	// Ports is the Model's Fingerprint of the node and ports the table holds.
	Ports string `json:"ports"`
	// Stale says the table also holds chains the last sync flushed and left to delete
	// later (see nftables.Model.DeferStaleDeletes): every chain the ports do not make.
	Stale bool `json:"stale,omitempty"`
}

// SetRecord makes the syncer keep its record at path (nftables mode; "" for none): a
// syncer that finds a matching record at its first sync writes nothing.
func (r *RuleSyncer) SetRecord(path string) { r.nftRecord = path }

func (r *RuleSyncer) currentRecord() (nftRecord, bool) {
	fp, ok := r.nftModel.Fingerprint()
	boot, bin := bootID(), binaryID()
	if !ok || r.nftKnown.Generation == 0 || boot == "" || bin == "" {
		return nftRecord{}, false
	}
	return nftRecord{Boot: boot, Binary: bin, State: r.nftKnown, Ports: fp, Stale: r.nftModel.StalePending()}, true
}

// recordSize is the record file's fixed size: the record is padded with spaces (which
// JSON allows) and written over the last one with a single write, so a sync pays one
// system call for it (a new file renamed into place cost several: close to a millisecond
// on a loaded machine, a tenth of a one-Service change). A record torn by a crash does
// not parse, or names a generation the kernel has left: either way it is not trusted.
const recordSize = 512

func (r *RuleSyncer) writeRecord() {
	if r.nftRecord == "" {
		return
	}
	rec, ok := r.currentRecord()
	if !ok {
		r.removeRecord()
		return
	}
	b, err := json.Marshal(rec)
	if err == nil && len(b) >= recordSize {
		err = fmt.Errorf("record of %d bytes", len(b))
	}
	if err == nil && r.nftRecordFile == nil {
		if err = os.MkdirAll(filepath.Dir(r.nftRecord), 0o700); err == nil {
			r.nftRecordFile, err = os.OpenFile(r.nftRecord, os.O_RDWR|os.O_CREATE, 0o600)
		}
	}
	if err == nil {
		b = append(b, bytes.Repeat([]byte{' '}, recordSize-1-len(b))...)
		_, err = r.nftRecordFile.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		r.removeRecord() // a stale record would be wrong: none is only slower
	}
}

func (r *RuleSyncer) removeRecord() {
	if r.nftRecordFile != nil {
		r.nftRecordFile.Close()
		r.nftRecordFile = nil
	}
	if r.nftRecord != "" {
		_ = os.Remove(r.nftRecord)
	}
}

// recordMatches reports whether the record left by a predecessor describes the table
// as the kernel holds it now (now) and as the model's ports make it; stale, whether the
// table also holds the predecessor's flushed stale chains.
func (r *RuleSyncer) recordMatches(now nftnl.State) (match, stale bool) {
	if r.nftRecord == "" || now.Generation == 0 || now.Table == 0 {
		return false, false
	}
	b, err := os.ReadFile(r.nftRecord)
	if err != nil {
		return false, false
	}
	var old nftRecord
	if json.Unmarshal(b, &old) != nil {
		return false, false
	}
	r.nftKnown = now
	cur, ok := r.currentRecord()
	r.nftKnown = nftnl.State{}
	cur.Stale = old.Stale
	return ok && old == cur, old.Stale
}

var (
	bootID = sync.OnceValue(func() string {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	})
	// binaryID identifies the running executable (device, inode, size, modification
	// time): another build may render or compile the same ports differently.
	binaryID = sync.OnceValue(func() string {
		fi, err := os.Stat("/proc/self/exe")
		if err != nil {
			return ""
		}
		sys, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return ""
		}
		return fmt.Sprintf("%d:%d:%d:%d", sys.Dev, sys.Ino, fi.Size(), fi.ModTime().UnixNano())
	})
)

// Close releases the syncer's netlink connection and record file (nftables mode); the
// rules and the record stay.
func (r *RuleSyncer) Close() error {
	if r.nftRecordFile != nil {
		r.nftRecordFile.Close()
		r.nftRecordFile = nil
	}
	return r.nftConn.Close()
}

// StaleDue reports whether a sync is due to delete chains an earlier one left flushed
// (nftables mode; see nftables.Model.DeferStaleDeletes): kube-proxy deletes them in a
// sync at least nftables.StaleDelay after.
func (r *RuleSyncer) StaleDue() bool {
	return r.nft && r.nftSynced && r.nftModel.StaleDue(time.Now())
}
