package rundir

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/plan"
)

func TestLayout(t *testing.T) {
	d := ForLab("demo")
	for got, want := range map[string]string{
		d.Path():                              "/run/netlab/demo",
		d.Plan():                              "/run/netlab/demo/plan.json",
		d.Endpoints():                         "/run/netlab/demo/endpoints.json",
		d.SyncStatus("node-1"):                "/run/netlab/demo/kube-proxy/node-1.json",
		d.LBState():                           "/run/netlab/demo/lb-state.json",
		d.CA():                                "/run/netlab/demo/ca",
		d.CACert():                            "/run/netlab/demo/ca/ca.crt",
		d.Logs():                              "/run/netlab-logs/demo",
		d.Scenario():                          "/run/netlab-logs/demo/scenario.yaml",
		d.Log("ingress", "node-2"):            "/run/netlab-logs/demo/ingress-node-2.log",
		d.PIDFile("controller", "controller"): "/run/netlab/demo/pids/controller-controller.json",
		d.StoppedMark("pod", "web-1"):         "/run/netlab/demo/pids/pod-web-1.stopped",
		d.SupervisorReport():                  "/run/netlab/demo/supervisor.json",
		d.Lock():                              "/run/netlab/.demo.lock",
		LockPath("demo"):                      "/run/netlab/.demo.lock",
		EtcNetnsDir("nl-demo-client"):         "/etc/netns/nl-demo-client",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	if At("/tmp/x").Log("lb", "lb") != "/tmp/x/logs/lb-lb.log" {
		t.Error("an At directory keeps its logs inside")
	}
	if Resolve("demo", "").Path() != d.Path() || Resolve("demo", "/tmp/x").Path() != "/tmp/x" {
		t.Error("Resolve: --dir must win over --lab")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := WriteFileAtomic(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "two" {
		t.Fatalf("content %q, %v", b, err)
	}
	if st, _ := os.Stat(path); st.Mode() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode())
	}
	// A failed write leaves the old file and no temporary behind.
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "sub"), []byte("x"), 0o600); err == nil {
		t.Error("replacing a directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want f.json and sub", names)
	}
}

func TestFilesRoundTrip(t *testing.T) {
	d := At(t.TempDir())
	p := &plan.Plan{Lab: "demo", Nodes: []plan.Node{{Name: "node-1"}}}
	if err := d.WritePlan(p); err != nil {
		t.Fatal(err)
	}
	back, err := d.ReadPlan()
	if err != nil || back.Lab != "demo" || len(back.Nodes) != 1 {
		t.Fatalf("plan round trip: %+v, %v", back, err)
	}
	ef := kubeproxy.EndpointsFile{Generation: 3, Updated: time.Unix(1_700_000_000, 0).UTC(),
		Ports: []kubeproxy.ServicePort{{Namespace: "default", Name: "web", Protocol: "TCP"}}}
	if err := d.WriteEndpoints(ef); err != nil {
		t.Fatal(err)
	}
	if got, err := d.ReadEndpoints(); err != nil || !cmp.Equal(ef, *got) {
		t.Errorf("endpoints round trip: %+v, %v", got, err)
	}
	ss := kubeproxy.SyncStatus{Node: "node-1", Generation: 3, Full: true, Ms: 1.5, At: time.Unix(1_700_000_001, 0).UTC()}
	if err := d.WriteSyncStatus(ss); err != nil { // creates kube-proxy/
		t.Fatal(err)
	}
	if got, err := d.ReadSyncStatus("node-1"); err != nil || !cmp.Equal(ss, *got) {
		t.Errorf("sync status round trip: %+v, %v", got, err)
	}
	if _, err := d.ReadSyncStatus("node-2"); err == nil {
		t.Error("sync status of a node that never synced")
	}
	if _, err := At(t.TempDir()).ReadPlan(); err == nil {
		t.Error("ReadPlan of an empty directory succeeded")
	}
}

func TestLBStateFile(t *testing.T) {
	d := At(t.TempDir())
	vs := lb.VirtualService{Name: "web", VIP: "203.0.113.100", Port: 80, Protocol: lb.ProtoTCP, Scheduler: lb.SchedRR,
		Backends: []lb.Backend{{Name: "node-1", IP: "172.18.0.11", Port: 30080, Weight: 1, Healthy: true},
			{Name: "node-2", IP: "172.18.0.12", Port: 30080, Weight: 1}}}
	st := lb.State{Updated: time.Unix(1_700_000_000, 0).UTC(), Inhibit: true, Services: []lb.VirtualService{vs},
		Probes: map[string]lb.ProbeState{lb.BackendKey(vs, vs.Backends[1]): {Probe: lb.Probe{Addr: "172.18.0.12:80"}, Err: "refused"}}}
	if err := d.WriteLBState(st); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(d.LBState()); err != nil || fi.Mode() != 0o644 {
		t.Errorf("state file mode: %v, %v", fi, err)
	}
	back, err := d.ReadLBState()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, *back); diff != "" {
		t.Errorf("state round trip (-want +got):\n%s", diff)
	}
	if w := back.ShownWeight(back.Services[0].Backends[1]); w != 0 {
		t.Errorf("inhibited backend shown with weight %d", w)
	}
	if _, err := ReadLBStateFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("reading a missing state file succeeded")
	}
}
