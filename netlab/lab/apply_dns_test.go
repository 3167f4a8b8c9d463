package lab

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// A change waits for every ready DNS pod to answer from the plan it wrote and from the
// endpoints generation it waited for; a DNS pod that is not ready is not waited for.
func TestWaitDNSLoaded(t *testing.T) {
	dir := rundir.At(t.TempDir())
	p := &plan.Plan{Lab: "t", DNS: &plan.DNS{},
		Pods: []plan.Pod{{Name: "coredns-1", Agent: plan.DNSAgent}, {Name: "coredns-2", Agent: plan.DNSAgent}, {Name: "web-1"}}}
	if err := dir.WritePlan(p); err != nil {
		t.Fatal(err)
	}
	stamp := rundir.FileStamp(dir.Plan()).String()
	endpoints := func(gen int64, ready ...string) {
		t.Helper()
		ef := kubeproxy.EndpointsFile{Generation: gen, PodReady: map[string]bool{}}
		for _, pod := range ready {
			ef.PodReady[pod] = true
		}
		if err := dir.WriteEndpoints(ef); err != nil {
			t.Fatal(err)
		}
	}
	loaded := func(pod, plan string, gen int64) {
		t.Helper()
		if err := dir.WriteDNSLoaded(rundir.DNSLoaded{Pod: pod, Plan: plan, Generation: gen, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(gen int64, within time.Duration) <-chan error {
		out := make(chan error, 1)
		go func() { out <- waitDNSLoaded(context.Background(), dir, p, gen, time.Now().Add(within)) }()
		return out
	}
	pending := func(c <-chan error, what string) {
		t.Helper()
		select {
		case err := <-c:
			t.Fatalf("returned (%v) while %s", err, what)
		case <-time.After(300 * time.Millisecond):
		}
	}
	done := func(c <-chan error) error {
		t.Helper()
		select {
		case err := <-c:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("still waiting after 30 s")
			return nil
		}
	}

	endpoints(5, "coredns-1", "coredns-2", "web-1")
	loaded("coredns-1", stamp, 5)
	loaded("coredns-2", "an older plan", 5)
	c := wait(5, time.Minute)
	pending(c, "coredns-2 answered from an older plan")
	loaded("coredns-2", stamp, 4)
	pending(c, "coredns-2 answered from an older generation")
	loaded("coredns-2", stamp, 6)
	if err := done(c); err != nil {
		t.Fatal(err)
	}

	// Not ready: out of kube-dns's endpoints, not waited for.
	endpoints(7, "coredns-1", "web-1")
	loaded("coredns-1", stamp, 7)
	if err := done(wait(7, time.Minute)); err != nil {
		t.Fatal(err)
	}
	// Ready and never loading: an error naming the pod and what it last loaded.
	endpoints(8, "coredns-1", "coredns-2")
	err := done(wait(8, 200*time.Millisecond))
	if err == nil || !strings.Contains(err.Error(), "coredns-1") || !strings.Contains(err.Error(), "generation 7") {
		t.Fatalf("err %v, want coredns-1 named with what it last loaded", err)
	}
	// A lab without cluster DNS: nothing to wait for.
	p.DNS = nil
	if err := done(wait(9, time.Millisecond)); err != nil {
		t.Fatal(err)
	}
}
