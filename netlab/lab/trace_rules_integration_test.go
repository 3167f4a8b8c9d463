// Integration tests of the rules a trace names (nf_tables tracing of the request's flow)
// in both kube-proxy modes, and of the trace rules being gone after a trace, an
// interrupted one and a killed one. Default lab address plan in lab_integration_test.go.
package lab_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/nftrace"
	"github.com/netlabdev/netlab/netlab/plan"
)

// traceTables lists the trace tables left in any of a lab's namespaces.
func traceTables(t *testing.T, labName string) []string {
	t.Helper()
	nss, err := kernel.ListNetns(plan.NetnsName(labName, ""))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ns := range nss {
		l, err := nftrace.Leftovers(ns)
		if err != nil {
			t.Fatalf("list tables in %s: %v", ns, err)
		}
		for _, name := range l {
			out = append(out, ns+": "+name)
		}
	}
	return out
}

// ruleWith finds the first rule of a hop whose chain starts with a prefix, whose text holds
// a string and whose verdict another.
func ruleWith(h lab.Hop, chainPrefix, text, verdict string) (lab.TraceRule, bool) {
	for _, r := range h.Rules {
		if strings.HasPrefix(r.Chain, chainPrefix) && strings.Contains(r.Rule, text) && strings.Contains(r.Verdict, verdict) {
			return r, true
		}
	}
	return lab.TraceRule{}, false
}

// assertKubeProxyRules traces a request from node-1 to the api Service's ClusterIP and
// checks that the kube-proxy hop names the Service and endpoint rules, in iptables or
// nftables terms, ending at the DNAT to the pod that answered. (Through the ingress, the
// ingress may reuse a kept-alive connection whose first packet met the rules earlier.)
func assertKubeProxyRules(t *testing.T, p *plan.Plan, nft bool) {
	t.Helper()
	var vip string
	for _, s := range p.Services {
		if s.Name == "api" {
			vip = s.ClusterIP
		}
	}
	tr, err := lab.TraceWith(context.Background(), p.Lab, lab.TraceOptions{From: "node-1", URL: "tcp://" + vip + ":80", Packets: true})
	if err != nil {
		t.Fatal(err)
	}
	kp, pod := hop(t, tr, "kube-proxy"), hop(t, tr, "pod")
	podIP := strings.Split(strings.Split(pod.Summary, "(")[1], ":")[0] // "pod api-2 on node-1 (10.244.1.4:8080) …"
	svcChain, sepChain, dnat := "KUBE-SVC-", "KUBE-SEP-", "--to-destination "+podIP+":"
	if nft {
		svcChain, sepChain, dnat = "service-", "endpoint-", "dnat to "+podIP+":"
	}
	svc, ok1 := ruleWith(kp, svcChain, "", sepChain)
	_, ok2 := ruleWith(kp, sepChain, dnat, "accept")
	if !ok1 || !ok2 || svc.Position < 1 {
		t.Errorf("kube-proxy hop: want a %s rule jumping to %s… and its DNAT to %s, got %+v", svcChain, sepChain, podIP, kp.Rules)
	}
}

func TestIntegrationTraceRulesNftables(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.UpWith(t, "trn", "", labtest.NFTables)
	tr, err := lab.TraceWith(context.Background(), p.Lab, lab.TraceOptions{URL: "http://app.example/api", Packets: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(hop(t, tr, "load balancer").Rules) == 0 {
		t.Errorf("load balancer hop names no rule")
	}
	assertKubeProxyRules(t, p, true)
	if l := traceTables(t, p.Lab); len(l) > 0 {
		t.Errorf("trace tables left after the trace: %v", l)
	}
}

// interruptTrace starts `netlab trace` of a request that gets no answer for seconds (an
// HTTP request to the cluster DNS's TCP port), waits until its trace rules are in, signals
// it, and checks that no trace rule is left once it has gone.
func interruptTrace(t *testing.T, p *plan.Plan, sig syscall.Signal) {
	t.Helper()
	cmd := exec.Command(labtest.Binary(t), "trace", "--name", p.Lab, "--from", "node-1", "tcp://10.96.0.10:53")
	cmd.Env = append(os.Environ(), labtest.AsCLIEnv+"=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ns := plan.NetnsName(p.Lab, "node-1")
	for try := 0; ; try++ {
		if l, _ := nftrace.Leftovers(ns); len(l) > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("trace ended before it was interrupted: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	_ = cmd.Process.Signal(sig)
	<-done
	if l := traceTables(t, p.Lab); len(l) > 0 {
		t.Errorf("trace tables left after a trace got %v: %v", sig, l)
	}
}
