package ingressagent

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/netlabdev/netlab/netlab/ingress"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// The node's stamp names a plan version only once every worker has read it: worker by
// worker, in any order, a worker that ended and its successor, and a version one worker
// could not load (the stamp carries the error).
func TestWorkerGroupStampWaitsForEveryWorker(t *testing.T) {
	dir := t.TempDir()
	d := rundir.Resolve("t", dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &workerGroup{cfg: IngressConfig{Node: "node-1", Config: filepath.Join(dir, "plan.json")}, dir: d, n: 3,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), ctx: ctx, cancel: cancel,
		changed: make(chan struct{}), procs: map[int]*workerProc{}, plans: map[int]loadedPlan{}, retired: ingress.NewMetrics()}
	stamp := func() string {
		st, err := d.ReadIngressLoaded("node-1")
		if err != nil {
			return "none"
		}
		if st.Error != "" {
			return st.Plan + " error " + st.Error
		}
		return st.Plan
	}
	step := func(what string, i int, lp loadedPlan, want string) {
		t.Helper()
		g.loaded(i, lp)
		if got := stamp(); got != want {
			t.Fatalf("%s: stamp %q, want %q", what, got, want)
		}
	}
	step("worker 1 read A", 1, loadedPlan{plan: "A", routes: 1}, "none")
	step("worker 3 read A", 3, loadedPlan{plan: "A", routes: 1}, "none")
	step("worker 2 read A: all three", 2, loadedPlan{plan: "A", routes: 1}, "A")
	step("worker 1 read B", 1, loadedPlan{plan: "B", routes: 2}, "A")
	step("worker 2 read B", 2, loadedPlan{plan: "B", routes: 2}, "A")
	step("worker 3 still on A (it read A again)", 3, loadedPlan{plan: "A", routes: 1}, "A")
	step("worker 3 read B: all three", 3, loadedPlan{plan: "B", routes: 2}, "B")

	// Worker 3 ends; its successor reads C before the others: nothing new.
	w3 := &workerProc{i: 3, done: make(chan struct{})}
	g.procs[3] = w3
	g.detach(w3)
	step("worker 3's successor read C", 3, loadedPlan{plan: "C", routes: 3}, "B")
	step("worker 1 read C", 1, loadedPlan{plan: "C", routes: 3}, "B")
	step("worker 2 read C: all three", 2, loadedPlan{plan: "C", routes: 3}, "C")

	// D cannot be loaded by worker 2: the stamp names D with its error once all read it.
	step("worker 1 read D", 1, loadedPlan{plan: "D", routes: 4}, "C")
	step("worker 2 failed on D", 2, loadedPlan{plan: "D", err: "bad json"}, "C")
	step("worker 3 read D", 3, loadedPlan{plan: "D", routes: 4}, "D error bad json")
}

// The node's counters never go back: a worker's counts stay in the sum when it ends (its
// last snapshot, retired), and its successor's add to them.
func TestWorkerGroupMetricsNeverGoBack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := &workerGroup{n: 2, log: slog.New(slog.NewTextHandler(io.Discard, nil)), ctx: ctx, cancel: cancel,
		changed: make(chan struct{}), procs: map[int]*workerProc{}, plans: map[int]loadedPlan{}, retired: ingress.NewMetrics()}
	total := func() uint64 {
		var n uint64
		for _, s := range g.counted() {
			for _, r := range s.Requests {
				n += r.N
			}
		}
		return n
	}
	counts := func(n uint64) ingress.MetricsSnapshot {
		return ingress.MetricsSnapshot{Requests: []ingress.RequestCount{{Ingress: "default/web", Service: "default/web:http", Code: 200, N: n}}}
	}
	w := &workerProc{i: 2, done: make(chan struct{})}
	g.procs[2] = w
	w.last = counts(40)
	if got := total(); got != 40 {
		t.Fatalf("one worker with 40: %d", got)
	}
	g.detach(w)
	if got := total(); got != 40 {
		t.Fatalf("after worker 2 ended: %d, want its 40 kept", got)
	}
	w2 := &workerProc{i: 2, done: make(chan struct{})}
	g.procs[2] = w2
	w2.last = counts(5)
	if got := total(); got != 45 {
		t.Fatalf("its successor with 5: %d, want 45", got)
	}
}
