package nftables

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
)

// checkModel updates m to ports and compares it with Render and Diff from prev.
func checkModel(t *testing.T, step string, m *Model, prev *Ruleset, ports []kubeproxy.ServicePort) *Ruleset {
	t.Helper()
	delta, ok := m.Update(ports)
	want := Render(testNode, ports)
	if d := cmp.Diff(string(Dump(want)), string(Dump(m.Ruleset()))); d != "" {
		t.Fatalf("%s: model differs from Render (-Render +Model):\n%s", step, d)
	}
	// The fingerprint kept up to date in place is a new model's, whatever the order.
	fp, fok := m.Fingerprint()
	fresh := NewModel(testNode)
	shuffled := slices.Clone(ports)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	fresh.Update(shuffled)
	if ffp, ok := fresh.Fingerprint(); fp != ffp || fok != ok {
		t.Fatalf("%s: fingerprint %q (%v), a new model's %q (%v)", step, fp, fok, ffp, ok)
	}
	keys := map[string]bool{}
	for i := range ports {
		keys[portKey(&ports[i])] = true
	}
	if fok != (len(keys) == len(ports)) {
		t.Fatalf("%s: fingerprint ok %v with %d ports, %d keys", step, fok, len(ports), len(keys))
	}
	if prev == nil {
		if ok || delta != nil {
			t.Fatalf("%s: first Update gave a delta", step)
		}
		return want
	}
	if !ok {
		t.Fatalf("%s: no delta after the first Update", step)
	}
	if d := cmp.Diff(string(Diff(prev, want)), string(delta)); d != "" {
		t.Fatalf("%s: delta differs from Diff (-Diff +Model):\n%s", step, d)
	}
	return want
}

func TestModelEqualsRenderAndDiff(t *testing.T) {
	m := NewModel(testNode)
	ports := overallPorts()
	steps := []struct {
		name string
		do   func()
	}{
		{"first", func() {}},
		{"same", func() {}},
		{"endpoint not ready, in place", func() { ports[2].Endpoints[0].Ready = false }},
		{"endpoint added", func() { ports[2].Endpoints = append(ports[2].Endpoints, ep("10.180.0.9", 80, "test-node")) }},
		{"affinity off", func() { ports[1].AffinityClientIP = false }},
		{"affinity on", func() { ports[1].AffinityClientIP = true }},
		{"svc3 goes", func() { ports = slices.Delete(ports, 3, 4) }},
		{"second port of svc6 (shares cluster-ips)", func() {
			extra := ports[0]
			extra.PortName, extra.Port = "p443", 443
			extra.Endpoints = []kubeproxy.Endpoint{ep("10.180.0.60", 443, "")}
			ports = append(ports, extra)
		}},
		{"source range in place", func() { ports[1].LoadBalancerSourceRanges[0] = "198.51.100.0/24" }},
		{"order changed", func() { slices.Reverse(ports) }},
		{"first port of svc6 goes", func() {
			ports = slices.DeleteFunc(ports, func(p kubeproxy.ServicePort) bool { return p.Name == "svc6" && p.PortName == "p80" })
		}},
		{"the same port twice", func() { ports = append(ports, ports[0]) }},
		{"twice, changed", func() { ports[len(ports)-1].Endpoints = nil }},
		{"back to once", func() { ports = ports[:len(ports)-1] }},
		{"two Services, one ClusterIP", func() {
			dup := ports[0]
			dup.Namespace = "ns0"
			ports = append(ports, dup)
		}},
		{"the earlier one changes", func() { ports[0].Endpoints = nil }},
		{"the later one goes", func() { ports = ports[:len(ports)-1] }},
		{"all gone", func() { ports = nil }},
		{"all back", func() { ports = overallPorts() }},
	}
	var prev *Ruleset
	for _, s := range steps {
		s.do()
		prev = checkModel(t, s.name, m, prev, ports)
	}
}

// A random walk over a few dozen Services: endpoints come and go, policies, ports and
// Services change, the list is reordered; after every step the model is Render's table
// and its commands are Diff's.
func TestModelRandomWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 1))
	var ports []kubeproxy.ServicePort
	newPort := func(i int) kubeproxy.ServicePort {
		sp := kubeproxy.ServicePort{Namespace: "ns" + strconv.Itoa(i%3), Name: "svc" + strconv.Itoa(i%7),
			PortName: "p" + strconv.Itoa(i%2), Protocol: []string{"TCP", "UDP"}[rng.IntN(2)],
			ClusterIP: "172.30.0." + strconv.Itoa(1+i%9), Port: int32(80 + i%2)}
		if rng.IntN(2) == 0 {
			sp.NodePort = int32(30000 + rng.IntN(5))
		}
		if rng.IntN(3) == 0 {
			sp.LoadBalancerIPs = []string{"1.2.3." + strconv.Itoa(rng.IntN(3))}
			if rng.IntN(2) == 0 {
				sp.LoadBalancerSourceRanges = []string{"203.0.113.0/25"}
			}
		}
		if rng.IntN(4) == 0 {
			sp.ExternalIPs = []string{"192.168.99." + strconv.Itoa(rng.IntN(3))}
		}
		sp.ExternalLocal = rng.IntN(3) == 0
		sp.InternalLocal = rng.IntN(4) == 0
		if rng.IntN(3) == 0 {
			sp.AffinityClientIP, sp.AffinitySeconds = true, 10800
		}
		for range rng.IntN(4) {
			sp.Endpoints = append(sp.Endpoints, ep("10.180.0."+strconv.Itoa(rng.IntN(6)), 80, []string{"", "test-node"}[rng.IntN(2)]))
		}
		return sp
	}
	for i := range 12 {
		ports = append(ports, newPort(i))
	}
	m := NewModel(testNode)
	var prev *Ruleset
	for step := range 400 {
		switch r := rng.IntN(10); {
		case step == 0:
		case r < 4 && len(ports) > 0: // an endpoint changes in place
			p := &ports[rng.IntN(len(ports))]
			if len(p.Endpoints) > 0 {
				e := &p.Endpoints[rng.IntN(len(p.Endpoints))]
				e.Ready = !e.Ready
				e.Serving, e.Terminating = rng.IntN(2) == 0, rng.IntN(2) == 0
			} else {
				p.Endpoints = append(p.Endpoints, ep("10.180.0.7", 80, ""))
			}
		case r < 6 && len(ports) > 0: // a port replaced
			i := rng.IntN(len(ports))
			ports[i] = newPort(rng.IntN(40))
		case r < 7: // a port added
			ports = append(ports, newPort(rng.IntN(40)))
		case r < 8 && len(ports) > 0: // a port removed
			i := rng.IntN(len(ports))
			ports = slices.Delete(ports, i, i+1)
		case r < 9:
			rng.Shuffle(len(ports), func(i, j int) { ports[i], ports[j] = ports[j], ports[i] })
		default: // nothing changed
		}
		prev = checkModel(t, "step "+strconv.Itoa(step), m, prev, ports)
	}
}

// samePort must see every field of a ServicePort and an Endpoint: changing any one makes
// two ports differ.
func TestSamePortSeesEveryField(t *testing.T) {
	base := overallPorts()[1] // svc5: every slice set
	base.ExternalIPs = []string{"192.168.99.1"}
	check := func(path string, change func(p *kubeproxy.ServicePort)) {
		p := base
		p.LoadBalancerIPs = slices.Clone(base.LoadBalancerIPs)
		p.ExternalIPs = slices.Clone(base.ExternalIPs)
		p.LoadBalancerSourceRanges = slices.Clone(base.LoadBalancerSourceRanges)
		p.Endpoints = slices.Clone(base.Endpoints)
		if !samePort(&base, &p) {
			t.Fatalf("a copy differs")
		}
		change(&p)
		if samePort(&base, &p) {
			t.Errorf("samePort misses a change of %s", path)
		}
	}
	st := reflect.TypeOf(base)
	for i := range st.NumField() {
		f := st.Field(i)
		check(f.Name, func(p *kubeproxy.ServicePort) {
			fv := reflect.ValueOf(p).Elem().Field(i)
			switch fv.Kind() {
			case reflect.String:
				fv.SetString(fv.String() + "x")
			case reflect.Int32:
				fv.SetInt(fv.Int() + 1)
			case reflect.Bool:
				fv.SetBool(!fv.Bool())
			case reflect.Slice:
				fv.Set(reflect.Append(fv, reflect.Zero(fv.Type().Elem())))
			default:
				t.Fatalf("field %s: kind %s not covered by this test", f.Name, fv.Kind())
			}
		})
	}
	et := reflect.TypeOf(kubeproxy.Endpoint{})
	for i := range et.NumField() {
		f := et.Field(i)
		check("Endpoints[0]."+f.Name, func(p *kubeproxy.ServicePort) {
			fv := reflect.ValueOf(&p.Endpoints[0]).Elem().Field(i)
			switch fv.Kind() {
			case reflect.String:
				fv.SetString(fv.String() + "x")
			case reflect.Int32:
				fv.SetInt(fv.Int() + 1)
			case reflect.Bool:
				fv.SetBool(!fv.Bool())
			default:
				t.Fatalf("endpoint field %s: kind %s not covered by this test", f.Name, fv.Kind())
			}
		})
	}
}

// Fingerprints tell apart ports that differ in one field, or the same ports on another
// node.
func TestModelFingerprintDiffers(t *testing.T) {
	fp := func(node kubeproxy.Node, ports []kubeproxy.ServicePort) string {
		m := NewModel(node)
		if _, ok := m.Fingerprint(); ok {
			t.Fatal("a fingerprint before the first Update")
		}
		m.Update(ports)
		f, ok := m.Fingerprint()
		if !ok {
			t.Fatal("no fingerprint")
		}
		return f
	}
	base := fp(testNode, overallPorts())
	seen := map[string]string{base: "base"}
	variants := map[string]func(p []kubeproxy.ServicePort){
		"endpoint not ready":   func(p []kubeproxy.ServicePort) { p[2].Endpoints[0].Ready = false },
		"no endpoints (nil)":   func(p []kubeproxy.ServicePort) { p[2].Endpoints = nil },
		"no endpoints (empty)": func(p []kubeproxy.ServicePort) { p[2].Endpoints = []kubeproxy.Endpoint{} },
		"affinity":             func(p []kubeproxy.ServicePort) { p[1].AffinityClientIP = !p[1].AffinityClientIP },
		"node port":            func(p []kubeproxy.ServicePort) { p[0].NodePort++ },
	}
	for name, change := range variants {
		p := overallPorts()
		change(p)
		f := fp(testNode, p)
		if other, ok := seen[f]; ok {
			t.Errorf("%s: same fingerprint as %s", name, other)
		}
		seen[f] = name
	}
	other := testNode
	other.IP = "192.168.0.99"
	if fp(other, overallPorts()) == base {
		t.Error("another node: same fingerprint")
	}
}

// A model of many ports (rendered on several goroutines) is Render's table, and a later
// change of one of them is Diff's.
func TestModelOfManyPortsEqualsRender(t *testing.T) {
	ports := benchPorts(3 * parallelFrom)
	ports[7].ExternalLocal, ports[8].AffinityClientIP, ports[8].AffinitySeconds = true, true, 60
	ports[9].Endpoints = nil
	m := NewModel(testNode)
	prev := checkModel(t, "build", m, nil, ports)
	ports[100].Endpoints[1].Ready = false
	checkModel(t, "one endpoint leaves", m, prev, ports)
}

// With deletes deferred, Update flushes a chain no port wants any more and leaves it in
// the table (Diff's commands without its delete), StaleDeletes deletes it once
// StaleDelay has passed, and a chain wanted again before then is refilled, not deleted.
func TestModelDefersStaleDeletes(t *testing.T) {
	m := NewModel(testNode)
	m.DeferStaleDeletes(true)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	ports := overallPorts()
	i := slices.IndexFunc(ports, func(p kubeproxy.ServicePort) bool { return len(p.Endpoints) >= 2 })
	if i < 0 {
		t.Fatal("no port with two endpoints")
	}
	m.Update(ports)
	before := Render(testNode, ports)
	gone := ports[i].Endpoints[len(ports[i].Endpoints)-1]
	ports[i].Endpoints = slices.Clone(ports[i].Endpoints[:len(ports[i].Endpoints)-1])
	after := Render(testNode, ports)

	delta, _ := m.Update(ports)
	var kept, deletes []string
	for l := range strings.Lines(string(Diff(before, after))) {
		if strings.HasPrefix(l, "delete chain ") {
			deletes = append(deletes, l)
		} else {
			kept = append(kept, l)
		}
	}
	if len(deletes) != 1 || !strings.Contains(deletes[0], "endpoint-") {
		t.Fatalf("Diff deletes %q, want one endpoint chain", deletes)
	}
	if d := cmp.Diff(strings.Join(kept, ""), string(delta)); d != "" {
		t.Fatalf("delta differs from Diff's without its delete (-Diff +Model):\n%s", d)
	}
	if !m.StalePending() || m.StaleDue(now) || m.StaleDeletes(now, false) != nil {
		t.Fatal("a chain just made stale is not pending, or is due at once")
	}
	if !m.StaleDue(now.Add(StaleDelay)) {
		t.Fatal("a stale chain is not due after StaleDelay")
	}
	if got := string(m.StaleDeletes(now.Add(StaleDelay), false)); got != deletes[0] {
		t.Fatalf("StaleDeletes after StaleDelay: %q, want %q", got, deletes[0])
	}
	if m.StalePending() || m.StaleDeletes(now.Add(time.Hour), true) != nil {
		t.Fatal("a deleted chain is still pending")
	}

	// Gone, and back before the delay: the chain is refilled (Diff's commands), never
	// deleted.
	ports[i].Endpoints = append(ports[i].Endpoints, gone)
	m.Update(ports) // back, after the delete
	ports[i].Endpoints = ports[i].Endpoints[:len(ports[i].Endpoints)-1]
	m.Update(ports) // gone again: stale
	ports[i].Endpoints = append(ports[i].Endpoints, gone)
	back := Render(testNode, ports)
	delta, _ = m.Update(ports)
	if d := cmp.Diff(string(Diff(after, back)), string(delta)); d != "" {
		t.Fatalf("a stale chain wanted again: delta differs from Diff (-Diff +Model):\n%s", d)
	}
	if m.StalePending() || m.StaleDeletes(now.Add(time.Hour), true) != nil {
		t.Fatal("a chain wanted again is still to be deleted")
	}

	// Stale, wanted again, stale again later: due StaleDelay after the last flush, not
	// the first.
	ports[i].Endpoints = ports[i].Endpoints[:len(ports[i].Endpoints)-1]
	m.Update(ports)
	ports[i].Endpoints = append(ports[i].Endpoints, gone)
	m.Update(ports)
	first := now
	now = now.Add(StaleDelay / 2)
	ports[i].Endpoints = ports[i].Endpoints[:len(ports[i].Endpoints)-1]
	m.Update(ports)
	if m.StaleDue(first.Add(StaleDelay)) || m.StaleDeletes(first.Add(StaleDelay), false) != nil {
		t.Fatal("a chain flushed again is due StaleDelay after its first flush")
	}
	if !m.StaleDue(now.Add(StaleDelay)) || m.StaleDeletes(now.Add(StaleDelay), false) == nil {
		t.Fatal("a chain flushed again is not due StaleDelay after its last flush")
	}
}

// DeleteStale deletes the per-service chains and the affinity sets a listing has and a
// Ruleset does not, nothing of the Ruleset's own.
func TestDeleteStale(t *testing.T) {
	ports := overallPorts()
	i := slices.IndexFunc(ports, func(p kubeproxy.ServicePort) bool { return len(p.Endpoints) >= 2 })
	ports[i].AffinityClientIP, ports[i].AffinitySeconds = true, 10800
	before := Render(testNode, ports)
	var ex Existing
	for n := range before.Chains {
		ex.Chains = append(ex.Chains, n)
	}
	for n := range before.Containers {
		ex.Sets = append(ex.Sets, n)
	}
	if DeleteStale(before, ex) != nil {
		t.Fatalf("the Ruleset's own listing: %s", DeleteStale(before, ex))
	}
	ports[i].AffinityClientIP = false
	ports[i].Endpoints = ports[i].Endpoints[:1]
	after := Render(testNode, ports)
	var want []string
	for _, n := range slices.Sorted(maps.Keys(before.Chains)) {
		if after.Chains[n] == nil {
			want = append(want, "flush chain ip kube-proxy "+n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(before.Chains)) {
		if after.Chains[n] == nil {
			want = append(want, "delete chain ip kube-proxy "+n)
		}
	}
	sets := 0
	for _, n := range slices.Sorted(maps.Keys(before.Containers)) {
		if after.Containers[n] == nil {
			want = append(want, "delete set ip kube-proxy "+n)
			sets++
		}
	}
	if sets == 0 || len(want) == sets {
		t.Fatalf("the change leaves no stale affinity set or no stale chain: %q", want)
	}
	if d := cmp.Diff(strings.Join(want, "\n")+"\n", string(DeleteStale(after, ex))); d != "" {
		t.Fatalf("DeleteStale (-want +got):\n%s", d)
	}
}

// SameNames holds a listing to a Ruleset's chains and named sets, anonymous sets aside.
func TestSameNames(t *testing.T) {
	rs := Render(testNode, overallPorts())
	var ex Existing
	for n := range rs.Chains {
		ex.Chains = append(ex.Chains, n)
	}
	for n := range rs.Containers {
		ex.Sets = append(ex.Sets, n)
	}
	ex.Sets = append(ex.Sets, "__1.abc", "__map7")
	if !SameNames(rs, ex) {
		t.Fatal("the Ruleset's own names differ")
	}
	more := ex
	more.Chains = append(slices.Clone(ex.Chains), "extra")
	fewer := ex
	fewer.Chains = ex.Chains[1:]
	other := ex
	other.Sets = append(slices.Clone(ex.Sets[1:]), "other")
	for what, e := range map[string]Existing{"a chain more": more, "a chain fewer": fewer, "another set": other} {
		if SameNames(rs, e) {
			t.Errorf("%s: same", what)
		}
	}
}
