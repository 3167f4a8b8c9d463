package lb

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCountConns(t *testing.T) {
	vs := vsWith(SchedRR, nodes(2, 30080))
	ap := netip.MustParseAddrPort
	flows := []Flow{
		{Proto: "TCP", OrigDst: ap("203.0.113.100:80"), ReplySrc: ap("172.18.0.11:30080"), Established: true},
		{Proto: "TCP", OrigDst: ap("203.0.113.100:80"), ReplySrc: ap("172.18.0.11:30080"), Established: true},
		{Proto: "TCP", OrigDst: ap("203.0.113.100:80"), ReplySrc: ap("172.18.0.11:30080")}, // TIME_WAIT
		{Proto: "TCP", OrigDst: ap("203.0.113.100:80"), ReplySrc: ap("172.18.0.12:30080")},
		{Proto: "UDP", OrigDst: ap("203.0.113.100:80"), ReplySrc: ap("172.18.0.12:30080"), Established: true},  // other protocol
		{Proto: "TCP", OrigDst: ap("172.18.0.11:30080"), ReplySrc: ap("172.18.0.11:30080"), Established: true}, // a health check
	}
	got := CountConns([]VirtualService{vs}, flows)
	want := map[string]ConnCount{
		BackendKey(vs, vs.Backends[0]): {Active: 2, Inactive: 1},
		BackendKey(vs, vs.Backends[1]): {Inactive: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CountConns (-want +got):\n%s", diff)
	}
}

func TestBuildReport(t *testing.T) {
	vs := saveFixtureServices()[0]
	vs.Backends[1].Healthy = false
	since := time.Unix(1_700_000_000, 0)
	st := &State{Inhibit: true, Services: []VirtualService{vs}, Probes: map[string]ProbeState{
		BackendKey(vs, vs.Backends[1]): {Probe: Probe{Addr: "172.18.0.12:80"}, Health: HealthStatus{Since: since}, Err: "refused"},
	}}
	conns := map[string]ConnCount{BackendKey(vs, vs.Backends[0]): {Active: 4, Inactive: 1}}
	r := BuildReport("demo", "nl-demo-lb", st, Stats([]VirtualService{vs}, readFixture(t)), conns)
	if len(r.Services) != 1 || len(r.Services[0].Backends) != 2 {
		t.Fatalf("report shape: %+v", r)
	}
	s := r.Services[0]
	if s.Conns != 12 || s.In != (Counter{120, 8000}) || s.Out != (Counter{60, 90000}) || s.Persistence != "10s" || s.Scheduler != "rr" {
		t.Errorf("service totals: %+v", s)
	}
	b1, b2 := s.Backends[0], s.Backends[1]
	if !b1.Healthy || b1.Weight != 1 || b1.Active != 4 || b1.Conns != 7 {
		t.Errorf("node-1: %+v", b1)
	}
	if b2.Healthy || b2.Weight != 0 || b2.Err != "refused" || !b2.Since.Equal(since) || b2.Check != "tcp://172.18.0.12:80" {
		t.Errorf("node-2 (inhibited): %+v", b2)
	}
	var out strings.Builder
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TCP  203.0.113.100:80 (ingress-http)", "rr persistent 10s", "-> 172.18.0.11:80 (node-1)", "down since"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// NewReport is what `netlab lb` shows: the agent's state, counters read from the save
// text and connections counted from the flows, in one report.
func TestNewReport(t *testing.T) {
	vs := saveFixtureServices()[0]
	st := &State{Services: []VirtualService{vs}}
	save, err := os.ReadFile(filepath.Join("testdata", "save-counters.txt"))
	if err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddrPort(fmt.Sprintf("%s:%d", vs.VIP, vs.Port))
	rip := netip.MustParseAddrPort(vs.Backends[0].Addr())
	flows := []Flow{{Proto: ProtoTCP, OrigDst: vip, ReplySrc: rip, Established: true}}
	r, err := NewReport("demo", "nl-demo-lb", st, save, flows)
	if err != nil {
		t.Fatal(err)
	}
	want := BuildReport("demo", "nl-demo-lb", st, Stats(st.Services, readFixture(t)), map[string]ConnCount{BackendKey(vs, vs.Backends[0]): {Active: 1}, BackendKey(vs, vs.Backends[1]): {}})
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("NewReport (-want +got):\n%s", diff)
	}
	if r.Services[0].Backends[0].Active != 1 || r.Services[0].Conns == 0 {
		t.Errorf("report lacks the flow or the counters: %+v", r.Services[0])
	}
	if _, err := NewReport("demo", "nl-demo-lb", st, []byte("*nat\n-A\nCOMMIT\n"), nil); err == nil {
		t.Error("a broken save text gave a report")
	}
}
