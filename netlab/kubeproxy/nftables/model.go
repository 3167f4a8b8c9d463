package nftables

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// Model is one node's table kept between syncs and changed in place: per Service port,
// the chains, affinity sets and shared-map elements it wrote, and the whole Ruleset they
// make together. Update finds the ports that changed (field by field, in the order the
// caller gives them), renders only those again, and writes the nft commands for exactly
// what they changed, so a one-Service change costs netlab time in proportion to that
// Service, not to the table. Its Ruleset always equals Render's for the last ports given,
// and its commands equal Diff's between the two Rulesets.
type Model struct {
	node kubeproxy.Node
	rs   *Ruleset
	// order is the ports of the last Update in the caller's order, for a quick check of
	// the common case (the same list, a few ports changed in place).
	order []*fragment
	byKey map[string]*fragment
	// owners lists, per element of a shared set or map, the ports that write it; when
	// several do (a Service's ports all write its ClusterIP to cluster-ips) the last in
	// kubeproxy.SortPorts' order wins, as in Render.
	owners map[elemRef][]*fragment
	// degenerate is set while two given ports share a key (the same Service port
	// twice): Update then renders everything and diffs, as Render and Diff do.
	degenerate bool
	// sum is the lane-wise sum of the fragments' sums (see Fingerprint). After a
	// rebuild it is computed on another goroutine (summed is closed when it is done):
	// a full sync needs it only once the kernel has the table.
	sum    [4]uint64
	summed chan struct{}
	// stale holds, when deleting stale chains is deferred (DeferStaleDeletes), the
	// chains Update flushed because no port wants them any more, with when it did: they
	// stay in the table, empty, until StaleDeletes deletes them.
	deferStale bool
	stale      map[string]time.Time
	// now is the clock stale chains are stamped with (tests set their own).
	now func() time.Time
}

// StaleDelay is how long a chain no port wants stays in the table, flushed, before it is
// deleted when deletes are deferred: kube-proxy's (its nftables proxier flushes a stale
// chain in the sync that makes it stale and deletes it in a sync at least a second
// later, because kernels before 6.2 could still see a chain a just-deleted map element
// pointed to).
const StaleDelay = time.Second

// DeferStaleDeletes makes Update leave the chains no port wants any more in the table,
// flushed, as kube-proxy does, for StaleDeletes to delete later (on), or flush and delete
// them at once, as Diff does (off, the default).
func (m *Model) DeferStaleDeletes(on bool) { m.deferStale = on }

// StaleDeletes returns the commands that delete the stale chains Update flushed at least
// StaleDelay before now (every one when all is set), and forgets them; nil when there
// are none.
func (m *Model) StaleDeletes(now time.Time, all bool) []byte {
	var due []string
	for n, at := range m.pendingStale() {
		if all || now.Sub(at) >= StaleDelay {
			due = append(due, n)
			delete(m.stale, n)
		}
	}
	if len(due) == 0 {
		return nil
	}
	slices.Sort(due)
	var w writer
	for _, n := range due {
		w.line("delete chain ", prefix, n)
	}
	return w.Bytes()
}

// StaleDue reports whether a stale chain is due for deletion at now.
func (m *Model) StaleDue(now time.Time) bool {
	for _, at := range m.pendingStale() {
		if now.Sub(at) >= StaleDelay {
			return true
		}
	}
	return false
}

// StalePending reports whether the table holds chains Update flushed and nothing has
// deleted yet.
func (m *Model) StalePending() bool { return len(m.pendingStale()) > 0 }

// pendingStale is the stale chains, with when Update flushed them, after forgetting
// those a port wants again (the table's ports make them: they are written, not
// deleted). The one place that check is made: Update's rebuilds and changes only add.
func (m *Model) pendingStale() map[string]time.Time {
	for n := range m.stale {
		if m.rs != nil && m.rs.Chains[n] != nil {
			delete(m.stale, n)
		}
	}
	return m.stale
}

// SameNames reports whether existing (the kernel's listing) has exactly rs's chains and
// named sets and maps (anonymous sets, "__…", aside).
func SameNames(rs *Ruleset, existing Existing) bool {
	if len(existing.Chains) != len(rs.Chains) {
		return false
	}
	for _, n := range existing.Chains {
		if rs.Chains[n] == nil {
			return false
		}
	}
	named := 0
	for _, n := range existing.Sets {
		if strings.HasPrefix(n, "__") {
			continue
		}
		named++
		if rs.Containers[n] == nil {
			return false
		}
	}
	return named == len(rs.Containers)
}

// DeleteStale returns the commands that delete what existing lists and rs does not have
// (a predecessor's flushed stale chains, and affinity sets no port has any more), as a
// full sync deletes them (see writeStale); nil when there is nothing to delete.
func DeleteStale(rs *Ruleset, existing Existing) []byte {
	var w writer
	writeStale(&w, rs, existing)
	if w.Len() == 0 {
		return nil
	}
	return w.Bytes()
}

// ForgetStale forgets the stale chains: a full rewrite of the table has deleted them.
func (m *Model) ForgetStale() { m.stale = nil }

type elemRef struct{ container, key string }

// fragment is one Service port's share of the table: its own chains and affinity sets,
// and the elements it adds to the shared sets and maps (in empty copies of them).
type fragment struct {
	in  kubeproxy.ServicePort // a deep copy of the port as given
	rs  *Ruleset
	key string // namespace/name/protocol/port name
	// name and proto order the fragments as kubeproxy.SortPorts orders ports: the port's
	// ServicePortName, then its protocol in lower case.
	name, proto string
	// sum is a SHA-256 of the port as given, in four lanes.
	sum [4]uint64
}

// portSum hashes a port: its JSON, which has every field, and tells a nil list from an
// empty one as samePort does.
func portSum(sp *kubeproxy.ServicePort) [4]uint64 {
	b, err := json.Marshal(sp)
	if err != nil {
		panic(err) // strings, numbers and booleans only
	}
	h := sha256.Sum256(b)
	var s [4]uint64
	for i := range s {
		s[i] = binary.BigEndian.Uint64(h[8*i:])
	}
	return s
}

// waitSum waits for the sums a rebuild computes in the background.
func (m *Model) waitSum() {
	if m.summed != nil {
		<-m.summed
		m.summed = nil
	}
}

func (m *Model) addSum(s [4]uint64, sign uint64) {
	for i := range m.sum {
		m.sum[i] += sign * s[i]
	}
}

// Fingerprint identifies the ports of the last Update and the node, whatever the
// order the ports were given in: a hash of the node and the sum of the ports' hashes,
// kept up to date in O(change). The Ruleset is a function of them (for one build of
// netlab), so two Models with the same Fingerprint hold the same Ruleset. ok is false
// before the first Update and while the ports hold a key twice (the table then depends
// on their order).
func (m *Model) Fingerprint() (fp string, ok bool) {
	if m.rs == nil || m.degenerate {
		return "", false
	}
	m.waitSum()
	node, err := json.Marshal(m.node)
	if err != nil {
		panic(err)
	}
	h := sha256.New()
	h.Write(node)
	for _, v := range m.sum {
		h.Write(binary.BigEndian.AppendUint64(nil, v))
	}
	return hex.EncodeToString(h.Sum(nil)), true
}

func renderFragment(node kubeproxy.Node, sp *kubeproxy.ServicePort) *fragment {
	in := *sp
	in.LoadBalancerIPs = slices.Clone(sp.LoadBalancerIPs)
	in.ExternalIPs = slices.Clone(sp.ExternalIPs)
	in.LoadBalancerSourceRanges = slices.Clone(sp.LoadBalancerSourceRanges)
	in.Endpoints = slices.Clone(sp.Endpoints)
	rs := &Ruleset{Chains: make(map[string]*Chain, 4), Containers: make(map[string]*Container, 3)}
	port := in
	port.Endpoints = slices.Clone(in.Endpoints)
	kubeproxy.SortEndpoints(port.Endpoints)
	renderPort(rs, node, &port)
	return &fragment{in: in, rs: rs, key: portKey(sp), name: in.ServicePortName(), proto: strings.ToLower(in.Protocol)}
}

// NewModel returns an empty Model for node.
func NewModel(node kubeproxy.Node) *Model { return &Model{node: node} }

// Ruleset is the table for the ports of the last Update. The Model changes it in place
// at the next Update: callers read it, never keep or change it.
func (m *Model) Ruleset() *Ruleset { return m.rs }

// sharedContainers are the sets and maps of the base table that ports add elements to.
var sharedContainers = []string{SetClusterIPs, SetNodePortIPs, MapNoEndpointServices, MapNoEndpointNodePorts,
	MapFirewallIPs, MapServiceIPs, MapServiceNodePorts}

func isShared(name string) bool { return slices.Contains(sharedContainers, name) }

func portKey(sp *kubeproxy.ServicePort) string {
	return sp.Namespace + "/" + sp.Name + "/" + strings.ToLower(sp.Protocol) + "/" + sp.PortName
}

func sameIdentity(a, b *kubeproxy.ServicePort) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.PortName == b.PortName &&
		strings.EqualFold(a.Protocol, b.Protocol)
}

// samePort is reflect.DeepEqual for ServicePorts, without reflection (a test checks it
// sees every field).
func samePort(a, b *kubeproxy.ServicePort) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name && a.PortName == b.PortName &&
		a.Protocol == b.Protocol && a.ClusterIP == b.ClusterIP && a.Port == b.Port &&
		a.NodePort == b.NodePort && a.ExternalLocal == b.ExternalLocal &&
		a.InternalLocal == b.InternalLocal && a.HealthCheckNodePort == b.HealthCheckNodePort &&
		a.AffinityClientIP == b.AffinityClientIP && a.AffinitySeconds == b.AffinitySeconds &&
		slices.Equal(a.LoadBalancerIPs, b.LoadBalancerIPs) && slices.Equal(a.ExternalIPs, b.ExternalIPs) &&
		slices.Equal(a.LoadBalancerSourceRanges, b.LoadBalancerSourceRanges) &&
		slices.Equal(a.Endpoints, b.Endpoints) &&
		(a.LoadBalancerIPs == nil) == (b.LoadBalancerIPs == nil) &&
		(a.ExternalIPs == nil) == (b.ExternalIPs == nil) &&
		(a.LoadBalancerSourceRanges == nil) == (b.LoadBalancerSourceRanges == nil) &&
		(a.Endpoints == nil) == (b.Endpoints == nil)
}

// before is kubeproxy.SortPorts' order of two fragments.
func (f *fragment) before(g *fragment) bool {
	return cmp.Or(strings.Compare(f.name, g.name), strings.Compare(f.proto, g.proto)) < 0
}

// change is one port replaced: old or new is nil for a port added or removed.
type change struct{ old, new *fragment }

// Update brings the model to ports and returns the nft -f commands that turn the table
// it held into the one it holds now (what Diff returns for the two), nil when nothing
// changed. ok is false on the first Update: there was no table to change, and the
// caller writes the whole Ruleset (Full).
func (m *Model) Update(ports []kubeproxy.ServicePort) (delta []byte, ok bool) {
	m.waitSum() // the last rebuild's sums: changes below replace fragments in m.order
	if m.rs == nil || m.degenerate {
		prev := m.rs
		m.rebuild(ports)
		if prev == nil {
			return nil, false
		}
		return Diff(prev, m.rs), true
	}
	changes, dup := m.changes(ports)
	if dup {
		prev := m.rs
		m.rebuild(ports)
		return Diff(prev, m.rs), true
	}
	if len(changes) == 0 {
		return nil, true
	}
	return m.apply(changes), true
}

// changes compares ports with the last ones: first index by index (the common case),
// else by key. dup is true when ports holds a key twice.
func (m *Model) changes(ports []kubeproxy.ServicePort) (changes []change, dup bool) {
	if len(ports) == len(m.order) {
		var at []int
		same := true
		for i := range ports {
			f := m.order[i]
			if samePort(&ports[i], &f.in) {
				continue
			}
			if !sameIdentity(&ports[i], &f.in) {
				same = false
				break
			}
			at = append(at, i)
		}
		if same {
			for _, i := range at {
				nf := m.newFragment(&ports[i])
				changes = append(changes, change{old: m.order[i], new: nf})
				m.order[i] = nf
			}
			return changes, false
		}
	}
	seen := make(map[string]*fragment, len(ports))
	order := make([]*fragment, len(ports))
	for i := range ports {
		sp := &ports[i]
		key := portKey(sp)
		if seen[key] != nil {
			return nil, true
		}
		f := m.byKey[key]
		if f == nil || !samePort(sp, &f.in) {
			nf := m.newFragment(sp)
			changes = append(changes, change{old: f, new: nf})
			f = nf
		}
		seen[key] = f
		order[i] = f
	}
	for key, f := range m.byKey {
		if seen[key] == nil {
			changes = append(changes, change{old: f})
		}
	}
	m.order = order
	return changes, false
}

// newFragment renders one port, its sum included.
func (m *Model) newFragment(sp *kubeproxy.ServicePort) *fragment {
	f := renderFragment(m.node, sp)
	f.sum = portSum(&f.in)
	return f
}

// parallelFrom is the number of ports from which renderAll spreads the work over the
// CPUs.
const parallelFrom = 256

// renderAll renders each port's fragment into out (as long as ports). A full sync
// renders every port before anything reaches the kernel, so with many ports the work is
// spread over the CPUs (each port's fragment is independent of the others').
func renderAll(node kubeproxy.Node, ports []kubeproxy.ServicePort, out []*fragment) {
	workers := min(runtime.GOMAXPROCS(0), len(ports)/(parallelFrom/2))
	if workers <= 1 {
		for i := range ports {
			out[i] = renderFragment(node, &ports[i])
		}
		return
	}
	var wg sync.WaitGroup
	var next atomic.Int64
	const chunk = 64
	for range workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(chunk)) - chunk
				if lo >= len(ports) {
					return
				}
				for i := lo; i < min(lo+chunk, len(ports)); i++ {
					out[i] = renderFragment(node, &ports[i])
				}
			}
		})
	}
	wg.Wait()
}

// rebuild renders ports from nothing.
func (m *Model) rebuild(ports []kubeproxy.ServicePort) {
	m.rs = renderBase(m.node)
	m.byKey = make(map[string]*fragment, len(ports))
	m.owners = map[elemRef][]*fragment{}
	m.order = make([]*fragment, len(ports))
	m.degenerate = false
	m.sum = [4]uint64{}
	renderAll(m.node, ports, m.order)
	for _, f := range m.order {
		if m.byKey[f.key] != nil {
			m.degenerate = true
		}
		m.byKey[f.key] = f
	}
	// The ports' sums (their JSON hashed) are only for the Fingerprint, which a full
	// sync reads once the kernel has the table: computed meanwhile.
	order, summed := m.order, make(chan struct{})
	m.summed = summed
	go func() {
		defer close(summed)
		var sum [4]uint64
		for _, f := range order {
			f.sum = portSum(&f.in)
			for i := range sum {
				sum[i] += f.sum[i]
			}
		}
		m.sum = sum
	}()
	if m.degenerate {
		m.rs = Render(m.node, ports)
		m.byKey, m.owners = nil, nil
		return
	}
	sorted := slices.Clone(m.order)
	slices.SortStableFunc(sorted, func(a, b *fragment) int {
		if a.before(b) {
			return -1
		}
		if b.before(a) {
			return 1
		}
		return 0
	})
	// The maps sized once: growing them one entry at a time rehashed them a dozen times.
	chains, elems := len(m.rs.Chains), map[string]int{}
	for _, f := range sorted {
		chains += len(f.rs.Chains)
		for n, c := range f.rs.Containers {
			if isShared(n) {
				elems[n] += len(c.Elements)
			}
		}
	}
	grown := make(map[string]*Chain, chains)
	maps.Copy(grown, m.rs.Chains)
	m.rs.Chains = grown
	owners := 0
	for n, k := range elems {
		c := m.rs.Containers[n]
		grown := make(map[string]Element, len(c.Elements)+k)
		maps.Copy(grown, c.Elements)
		c.Elements = grown
		owners += k
	}
	m.owners = make(map[elemRef][]*fragment, owners)
	for _, f := range sorted {
		for n, c := range f.rs.Chains {
			m.rs.Chains[n] = c
		}
		for n, c := range f.rs.Containers {
			if !isShared(n) {
				m.rs.Containers[n] = c
				continue
			}
			dst := m.rs.Containers[n]
			for k, e := range c.Elements {
				dst.Elements[k] = e // later ports win
				r := elemRef{n, k}
				m.owners[r] = append(m.owners[r], f)
			}
		}
	}
}

// apply makes changes in the Ruleset and writes them as Diff would.
func (m *Model) apply(changes []change) []byte {
	var addedSets, changedChains, staleChains []string
	deletedSets := map[string]*Container{}
	prevChains := map[string]*Chain{}
	touched := map[elemRef]bool{}
	for _, ch := range changes {
		var oldRS, newRS *Ruleset
		if ch.old != nil {
			oldRS = ch.old.rs
			delete(m.byKey, ch.old.key)
			m.addSum(ch.old.sum, ^uint64(0)) // minus
		}
		if ch.new != nil {
			newRS = ch.new.rs
			m.byKey[ch.new.key] = ch.new
			m.addSum(ch.new.sum, 1)
		}
		if oldRS != nil {
			for n := range oldRS.Chains {
				if newRS == nil || newRS.Chains[n] == nil {
					delete(m.rs.Chains, n)
					staleChains = append(staleChains, n)
				}
			}
			for n, c := range oldRS.Containers {
				if isShared(n) {
					for k := range c.Elements {
						r := elemRef{n, k}
						m.owners[r] = slices.DeleteFunc(m.owners[r], func(f *fragment) bool { return f == ch.old })
						touched[r] = true
					}
				} else if newRS == nil || newRS.Containers[n] == nil {
					deletedSets[n] = c
					delete(m.rs.Containers, n)
				}
			}
		}
		if newRS != nil {
			for n, c := range newRS.Chains {
				old := m.rs.Chains[n]
				if old == nil || old.Base != c.Base || old.Comment != c.Comment || !slices.Equal(old.Rules, c.Rules) {
					changedChains = append(changedChains, n)
					prevChains[n] = old
				}
				m.rs.Chains[n] = c
			}
			for n, c := range newRS.Containers {
				if isShared(n) {
					for k := range c.Elements {
						r := elemRef{n, k}
						m.owners[r] = append(m.owners[r], ch.new)
						touched[r] = true
					}
				} else if m.rs.Containers[n] == nil {
					addedSets = append(addedSets, n)
					m.rs.Containers[n] = c
				} else {
					m.rs.Containers[n] = c
				}
			}
		}
	}
	// Elements: the owner last in sort order gives the value.
	type elemChange struct {
		container, key string
		old, new       *Element
	}
	var elems []elemChange
	for r := range touched {
		dst := m.rs.Containers[r.container]
		old, had := dst.Elements[r.key]
		owners := m.owners[r]
		if len(owners) == 0 {
			delete(m.owners, r)
			if had {
				delete(dst.Elements, r.key)
				elems = append(elems, elemChange{r.container, r.key, &old, nil})
			}
			continue
		}
		win := owners[0]
		for _, f := range owners[1:] {
			if win.before(f) {
				win = f
			}
		}
		e := win.rs.Containers[r.container].Elements[r.key]
		if had && old == e {
			continue
		}
		dst.Elements[r.key] = e
		ec := elemChange{container: r.container, key: r.key, new: &e}
		if had {
			ec.old = &old
		}
		elems = append(elems, ec)
	}

	var w writer
	slices.Sort(addedSets)
	for _, n := range addedSets {
		w.addContainer(m.rs.Containers[n])
	}
	slices.Sort(changedChains)
	for _, n := range changedChains {
		w.addChain(m.rs.Chains[n])
		if prevChains[n] != nil {
			w.line("flush chain ", prefix, n)
		}
	}
	for _, n := range changedChains {
		w.rules(m.rs.Chains[n])
	}
	// Per container in name order: deletions, then additions and changes, by key.
	slices.SortFunc(elems, func(a, b elemChange) int {
		ga, gb := 0, 0
		if a.new != nil {
			ga = 1
		}
		if b.new != nil {
			gb = 1
		}
		return cmp.Or(strings.Compare(a.container, b.container), ga-gb, strings.Compare(a.key, b.key))
	})
	for _, ec := range elems {
		if ec.old != nil {
			w.deleteElement(ec.container, *ec.old)
		}
		if ec.new != nil {
			w.addElement(ec.container, *ec.new)
		}
	}
	slices.Sort(staleChains)
	for _, n := range staleChains {
		w.line("flush chain ", prefix, n)
	}
	if m.deferStale {
		now := time.Now()
		if m.now != nil {
			now = m.now()
		}
		for _, n := range staleChains {
			if m.stale == nil {
				m.stale = map[string]time.Time{}
			}
			// The chain was wanted until now: any earlier stamp is of an older flush.
			m.stale[n] = now
		}
	} else {
		for _, n := range staleChains {
			w.line("delete chain ", prefix, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(deletedSets)) {
		kind := "set"
		if deletedSets[n].Map {
			kind = "map"
		}
		w.line("delete ", kind, " ", prefix, n)
	}
	if w.Len() == 0 {
		return nil
	}
	return w.Bytes()
}
