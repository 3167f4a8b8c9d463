package ingressagent_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/ingressagent"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/rundir"
	networkingv1 "k8s.io/api/networking/v1"
)

// The agent ignores SIGHUP until it listens for it (its default action would end the
// agent), so apply's SIGHUP for a plan written after the first load and before then is
// lost: the agent reads the plan again once it listens, if it changed. The plan is
// rewritten here from the Ready hook, which runs in that window. A plan that then fails to
// load is published with its error, for apply to fail at once.
func TestAgentReadsPlanWrittenBeforeItListensForSIGHUP(t *testing.T) {
	dir := t.TempDir()
	_, webPort := namedUpstream(t, "web-1")
	p := webPlan(t, webPort)
	cfgPath := filepath.Join(dir, "plan.json")
	labtest.WritePlan(t, cfgPath, p)
	first := rundir.FileStamp(cfgPath).String()
	reload := make(chan struct{})
	startAgent(t, ingressagent.IngressConfig{Lab: "t", Node: "node-1", Dir: dir,
		HTTPSPort: -1, MetricsPort: -1, AccessLog: &lockedBuffer{}, Reload: reload,
		Ready: func(ingressagent.IngressAddrs) {
			// Between the first load and signal.Notify: as apply writing a plan then.
			p.Ingresses = append(p.Ingresses, labtest.IngressObject(t, "shop", "shop.example", "web", networkingv1.ServiceBackendPort{Name: "http"}))
			labtest.WritePlan(t, cfgPath, p)
		},
	}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	d := rundir.Resolve("t", dir)
	waitStamp := func(what string, ok func(*rundir.IngressLoaded) bool) {
		t.Helper()
		last := "nothing"
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			st, err := d.ReadIngressLoaded("node-1")
			if err == nil && ok(st) {
				return
			}
			if err == nil {
				last = fmt.Sprintf("%+v", *st)
			}
		}
		t.Fatalf("%s: not within 20 s; last stamp %s", what, last)
	}
	second := rundir.FileStamp(cfgPath).String()
	if second == first {
		t.Fatal("the rewrite did not change the plan's stamp")
	}
	waitStamp("the plan written before SIGHUP was caught", func(st *rundir.IngressLoaded) bool {
		return st.Plan == second && st.Routes == 2 && st.Error == ""
	})

	if err := os.WriteFile(cfgPath, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := rundir.FileStamp(cfgPath).String()
	reload <- struct{}{}
	waitStamp("the broken plan's error", func(st *rundir.IngressLoaded) bool {
		return st.Plan == broken && st.Error != ""
	})
}
