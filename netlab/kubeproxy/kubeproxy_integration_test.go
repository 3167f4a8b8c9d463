// Integration tests of Services: real namespaces, kube-proxy agents, real packets. Root.
//
// Address plan (scenario below, unique lab name per test):
//
//	wan 203.0.113.0/24      client .2, lb .1
//	fabric 172.18.0.0/24    lb .1 (the nodes' gateway), node-1 .11, node-2 .12
//	pods 10.244.0.0/16      node-1 10.244.1.0/24, node-2 10.244.2.0/24 (placement by plan)
//	services 10.96.0.0/12   web (NodePort), sticky (ClientIP affinity), solo (LoadBalancer,
//	                        externalTrafficPolicy Local, 1 pod), dns (UDP 53 -> 5353),
//	                        web-local and solo-local (internalTrafficPolicy Local), multi
//	                        (80 -> named http 8080, 81 -> 9090 by number), fixed (manifest
//	                        clusterIP 10.96.200.200 and nodePort 30777), empty (NodePort,
//	                        a Deployment with 0 replicas: no endpoints)
package kubeproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// The fixed Service's manifest addresses.
const fixedClusterIP, fixedNodePort = "10.96.200.200", "30777"

func service(t *testing.T, p *plan.Plan, name string) plan.Service {
	t.Helper()
	for _, s := range p.Services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no service %s", name)
	return plan.Service{}
}

func podsOf(p *plan.Plan, deployment string) []plan.Pod {
	var out []plan.Pod
	for _, pod := range p.Pods {
		if pod.Deployment == deployment {
			out = append(out, pod)
		}
	}
	return out
}

func names(pods []plan.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name)
	}
	return out
}

func url(ip string, port int32) string {
	return fmt.Sprintf("http://%s/", net.JoinHostPort(ip, fmt.Sprint(port)))
}

func TestIntegrationServices(t *testing.T) { servicesSuite(t, "iptables") }

// servicesSuite is the behaviour of Services, the same in both kube-proxy modes; only the
// checks of the rules themselves differ (rulesCheck, rulesCounterCheck).
func servicesSuite(t *testing.T, mode string) {
	labtest.RequireRoot(t)
	p := up(t, mode)
	web, sticky, solo, dns := service(t, p, "web"), service(t, p, "sticky"), service(t, p, "solo"), service(t, p, "dns")
	webPods := names(podsOf(p, "web"))
	clientNS, clientIP := p.Clients[0].Netns, plan.Addr(p.Clients[0].IP)

	t.Run("rules carry kube-proxy's names", func(t *testing.T) {
		if mode == "nftables" {
			nftRulesCheck(t, p)
			return
		}
		for _, n := range p.Nodes {
			out, err := kernel.Save(n.Netns, false, "nat")
			if err != nil {
				t.Fatal(err)
			}
			want := kubeproxy.SVCChain("default/web:http", "tcp")
			if !strings.Contains(string(out), ":"+want+" ") || !strings.Contains(string(out), "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES") {
				t.Errorf("%s: nat table lacks %s or the PREROUTING jump:\n%s", n.Name, want, out)
			}
			// kube-proxy's canary chains, as a real node's iptables-save shows them.
			for _, table := range []string{"mangle", "nat", "filter"} {
				out, err := kernel.Save(n.Netns, false, table)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(out), "\n:"+kubeproxy.CanaryChain+" - ") {
					t.Errorf("%s: table %s has no %s:\n%s", n.Name, table, kubeproxy.CanaryChain, out)
				}
			}
		}
	})

	t.Run("ClusterIP from every pod and node", func(t *testing.T) {
		var from []string
		for _, pod := range p.Pods {
			from = append(from, pod.Netns)
		}
		for _, n := range p.Nodes {
			from = append(from, n.Netns)
		}
		for _, ns := range from {
			e, _, err := labtest.GetEcho(ns, url(web.ClusterIP, 80))
			if err != nil {
				t.Errorf("from %s: %v", ns, err)
				continue
			}
			if !slices.Contains(webPods, e.Pod) {
				t.Errorf("from %s: answered by %s, not a web pod", ns, e.Pod)
			}
		}
	})

	t.Run("NodePort on every node", func(t *testing.T) {
		np := web.Ports[0].NodePort
		for _, n := range p.Nodes {
			e, _, err := labtest.GetEcho(clientNS, url(plan.Addr(n.IP), np))
			if err != nil {
				t.Errorf("%s:%d: %v", n.Name, np, err)
				continue
			}
			if !slices.Contains(webPods, e.Pod) || e.ClientIP == clientIP {
				t.Errorf("%s:%d: answered by %s seeing %s (want a web pod, masqueraded)", n.Name, np, e.Pod, e.ClientIP)
			}
		}
	})

	t.Run("NodePort on the node's loopback, counted by nfacct", func(t *testing.T) {
		np := web.Ports[0].NodePort
		for _, n := range p.Nodes {
			count := func() uint64 {
				t.Helper()
				var pkts uint64
				err := kernel.Do(n.Netns, func() (err error) {
					pkts, _, err = kernel.NFAcctHere(kubeproxy.NFAcctLocalhostNodePorts)
					return err
				})
				if err != nil {
					t.Fatalf("%s: %v", n.Name, err)
				}
				return pkts
			}
			var before uint64
			if mode == "iptables" {
				before = count()
			}
			e, _, err := labtest.GetEcho(n.Netns, url("127.0.0.1", np))
			if mode == "nftables" {
				// kube-proxy's nftables mode serves no NodePorts on 127.0.0.0/8.
				if err == nil {
					t.Errorf("%s: 127.0.0.1:%d answered (%s) in nftables mode", n.Name, np, e.Pod)
				}
				continue
			}
			if err != nil || !slices.Contains(webPods, e.Pod) {
				t.Errorf("%s: 127.0.0.1:%d: %+v, %v; want a web pod", n.Name, np, e, err)
				continue
			}
			if after := count(); after <= before {
				t.Errorf("%s: %s counted %d packets before the request and %d after", n.Name, kubeproxy.NFAcctLocalhostNodePorts, before, after)
			}
		}
	})

	t.Run("new connections spread over every endpoint", func(t *testing.T) {
		from := podsOf(p, "solo")[0].Netns
		count := map[string]int{}
		const n = 300
		for range n {
			e, _, err := labtest.GetEcho(from, url(web.ClusterIP, 80))
			if err != nil {
				t.Fatal(err)
			}
			count[e.Pod]++
		}
		for _, pod := range webPods {
			// 1/3 of 300 is 100 with a standard deviation of ~8: 60..140 is ~5 sigma.
			if c := count[pod]; c < 60 || c > 140 {
				t.Errorf("%s got %d of %d connections (%v)", pod, c, n, count)
			}
		}
	})

	t.Run("ClientIP affinity sticks", func(t *testing.T) {
		for _, from := range []string{podsOf(p, "solo")[0].Netns, podsOf(p, "dns")[0].Netns} {
			seen := map[string]int{}
			for range 20 {
				e, _, err := labtest.GetEcho(from, url(sticky.ClusterIP, 80))
				if err != nil {
					t.Fatal(err)
				}
				seen[e.Pod]++
			}
			if len(seen) != 1 {
				t.Errorf("from %s: sticky Service answered by %v", from, seen)
			}
		}
	})

	t.Run("hairpin: a pod reaches itself through its Service", func(t *testing.T) {
		for _, pod := range podsOf(p, "web") {
			hit := false
			for i := 0; i < 60 && !hit; i++ {
				e, _, err := labtest.GetEcho(pod.Netns, url(web.ClusterIP, 80))
				if err != nil {
					t.Fatalf("%s: %v", pod.Name, err)
				}
				if e.Pod == pod.Name {
					hit = true
					if e.ClientIP == plan.Addr(pod.IP) {
						t.Errorf("%s reached itself without masquerade (client %s)", pod.Name, e.ClientIP)
					}
				}
			}
			if !hit {
				t.Errorf("%s never reached itself in 60 tries", pod.Name)
			}
		}
	})

	t.Run("externalTrafficPolicy Local", func(t *testing.T) {
		soloPod := podsOf(p, "solo")[0]
		np, hc := solo.Ports[0].NodePort, solo.HealthCheckNodePort
		if hc == 0 {
			t.Fatal("no healthCheckNodePort allocated")
		}
		for _, n := range p.Nodes {
			resp, err := labtest.Client(clientNS, false).Get(url(plan.Addr(n.IP), hc))
			if err != nil {
				t.Errorf("%s health check: %v", n.Name, err)
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var hcBody struct {
				Service        struct{ Namespace, Name string } `json:"service"`
				LocalEndpoints int                              `json:"localEndpoints"`
			}
			if err := json.Unmarshal(body, &hcBody); err != nil {
				t.Errorf("%s health check body %q: %v", n.Name, body, err)
			}
			wantCode, wantN := http.StatusServiceUnavailable, 0
			if n.Name == soloPod.Node {
				wantCode, wantN = http.StatusOK, 1
			}
			if resp.StatusCode != wantCode || hcBody.LocalEndpoints != wantN || hcBody.Service.Name != "solo" || hcBody.Service.Namespace != "default" {
				t.Errorf("%s health check: %d %s, want %d with localEndpoints %d", n.Name, resp.StatusCode, body, wantCode, wantN)
			}
			e, _, err := labtest.GetEcho(clientNS, url(plan.Addr(n.IP), np))
			if n.Name == soloPod.Node {
				if err != nil || e.Pod != soloPod.Name || e.ClientIP != clientIP {
					t.Errorf("%s NodePort: %+v %v; want %s seeing the client %s", n.Name, e, err, soloPod.Name, clientIP)
				}
			} else if err == nil {
				t.Errorf("%s has no local endpoint, but its NodePort answered (%s)", n.Name, e.Pod)
			}
		}
	})

	t.Run("UDP Service", func(t *testing.T) {
		from := podsOf(p, "solo")[0].Netns
		seen := map[string]bool{}
		for i := 0; i < 40; i++ {
			c, err := kernel.DialIn(from, "udp", net.JoinHostPort(dns.ClusterIP, "53"), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			n, err := c.Read(buf)
			c.Close()
			if err != nil {
				t.Fatalf("udp answer: %v", err)
			}
			var e labtest.Echo
			if err := json.Unmarshal(buf[:n], &e); err != nil {
				t.Fatalf("udp answer %q: %v", buf[:n], err)
			}
			seen[e.Pod] = true
		}
		want := names(podsOf(p, "dns"))
		var got []string
		for k := range seen {
			got = append(got, k)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("UDP answered by %v, want every dns pod %v", got, want)
		}
	})

	t.Run("internalTrafficPolicy Local", func(t *testing.T) {
		webLocal, soloLocal := service(t, p, "web-local"), service(t, p, "solo-local")
		soloCluster := service(t, p, "solo")
		soloPod := podsOf(p, "solo")[0]
		for _, n := range p.Nodes {
			var localWeb []string
			for _, pod := range podsOf(p, "web") {
				if pod.Node == n.Name {
					localWeb = append(localWeb, pod.Name)
				}
			}
			// From the node's own namespace and from a pod on it.
			from := []string{n.Netns}
			for _, pod := range p.Pods {
				if pod.Node == n.Name && pod.Deployment != "web" {
					from = append(from, pod.Netns)
					break
				}
			}
			for _, ns := range from {
				// web has pods on both nodes: only this node's answer, all of them. At least
				// 20 requests, and on until every local pod answered (the choice is random),
				// up to 64.
				seen := map[string]int{}
				allSeen := func() bool {
					for _, pod := range localWeb {
						if seen[pod] == 0 {
							return false
						}
					}
					return true
				}
				for i := 0; i < 64 && (i < 20 || !allSeen()); i++ {
					e, _, err := labtest.GetEcho(ns, url(webLocal.ClusterIP, 80))
					if err != nil {
						t.Fatalf("web-local from %s: %v", ns, err)
					}
					seen[e.Pod]++
				}
				if len(localWeb) == 0 {
					t.Fatalf("%s has no web pod: the scenario no longer tests web-local", n.Name)
				}
				for pod := range seen {
					if !slices.Contains(localWeb, pod) {
						t.Errorf("web-local from %s (on %s) reached %s, not a local endpoint %v: %v", ns, n.Name, pod, localWeb, seen)
					}
				}
				for _, pod := range localWeb {
					if seen[pod] == 0 {
						t.Errorf("web-local from %s never reached local endpoint %s: %v", ns, pod, seen)
					}
				}
				// solo has one pod: its node reaches it, the other node drops the traffic
				// (kube-proxy's "has no local endpoints" DROP: a timeout, not a refusal),
				// while the cluster-wide solo Service still answers from the same place.
				if n.Name == soloPod.Node {
					if e, _, err := labtest.GetEcho(ns, url(soloLocal.ClusterIP, 80)); err != nil || e.Pod != soloPod.Name {
						t.Errorf("solo-local from %s (the pod's node): %+v %v", ns, e, err)
					}
					continue
				}
				c, err := kernel.DialIn(ns, "tcp", net.JoinHostPort(soloLocal.ClusterIP, "80"), time.Second)
				if err == nil {
					c.Close()
					t.Errorf("solo-local from %s (on %s, no local endpoint) connected", ns, n.Name)
				} else if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
					t.Errorf("solo-local from %s (on %s, no local endpoint): %v, want the SYN dropped (a timeout)", ns, n.Name, err)
				}
				if e, _, err := labtest.GetEcho(ns, url(soloCluster.ClusterIP, 80)); err != nil || e.Pod != soloPod.Name {
					t.Errorf("control: solo (cluster policy) from %s: %+v %v", ns, e, err)
				}
			}
		}
	})

	t.Run("multi-port Service: each port to its targetPort", func(t *testing.T) {
		multi := service(t, p, "multi")
		multiPods := names(podsOf(p, "multi"))
		from := podsOf(p, "solo")[0].Netns
		// port 80 targets the container port named http (8080); 81 targets 9090 by number.
		for _, tc := range []struct {
			port   int32
			target int
		}{{80, 8080}, {81, 9090}} {
			// At least 12 requests, and on until every pod answered: the choice is random
			// (12 requests all to one of 2 pods happen once in 2048); 64 bound it (2^-63).
			seen := map[string]bool{}
			n := 0
			for ; n < 64 && (n < 12 || len(seen) < len(multiPods)); n++ {
				e, _, err := labtest.GetEcho(from, url(multi.ClusterIP, tc.port))
				if err != nil {
					t.Fatalf("multi:%d: %v", tc.port, err)
				}
				if e.Port != tc.target || !slices.Contains(multiPods, e.Pod) {
					t.Fatalf("multi:%d answered by %s on port %d, want a multi pod on %d", tc.port, e.Pod, e.Port, tc.target)
				}
				seen[e.Pod] = true
			}
			if len(seen) != len(multiPods) {
				t.Errorf("multi:%d: %d requests reached %v, want every pod %v", tc.port, n, seen, multiPods)
			}
		}
	})

	t.Run("manifest clusterIP and nodePort are the addresses", func(t *testing.T) {
		fixed := service(t, p, "fixed")
		np := fixed.Ports[0].NodePort
		if fixed.ClusterIP != fixedClusterIP || fmt.Sprint(np) != fixedNodePort {
			t.Fatalf("fixed planned at %s nodePort %d, want the manifest's %s and %s", fixed.ClusterIP, np, fixedClusterIP, fixedNodePort)
		}
		from := podsOf(p, "solo")[0].Netns
		if e, _, err := labtest.GetEcho(from, url(fixedClusterIP, 80)); err != nil || !slices.Contains(webPods, e.Pod) {
			t.Errorf("fixed at %s:80: %+v %v", fixedClusterIP, e, err)
		}
		for _, n := range p.Nodes {
			if e, _, err := labtest.GetEcho(clientNS, url(plan.Addr(n.IP), np)); err != nil || !slices.Contains(webPods, e.Pod) {
				t.Errorf("fixed at %s:%d: %+v %v", n.Name, np, e, err)
			}
		}
	})

	t.Run("a Service without endpoints is rejected", func(t *testing.T) {
		empty := service(t, p, "empty")
		np := empty.Ports[0].NodePort
		pod := podsOf(p, "solo")[0]
		node := p.Nodes[0]
		for _, tc := range []struct{ from, addr string }{
			{pod.Netns, net.JoinHostPort(empty.ClusterIP, "80")},
			{node.Netns, net.JoinHostPort(empty.ClusterIP, "80")},
			{clientNS, net.JoinHostPort(plan.Addr(node.IP), fmt.Sprint(np))},
		} {
			// A REJECT answers the SYN at once: connection refused, long before the
			// dial's timeout (a DROP would end in that timeout instead).
			start := time.Now()
			c, err := kernel.DialIn(tc.from, "tcp", tc.addr, 5*time.Second)
			if err == nil {
				c.Close()
				t.Errorf("%s from %s connected, but the Service has no endpoints", tc.addr, tc.from)
				continue
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("%s from %s: %v after %v, want connection refused", tc.addr, tc.from, err, time.Since(start))
			}
		}
	})

	t.Run("netlab rules shows the Service's chain with growing counters", func(t *testing.T) {
		if mode == "nftables" {
			nftRulesCounterCheck(t, p)
			return
		}
		pod := podsOf(p, "solo")[0]
		svcChain := kubeproxy.SVCChain("default/web:http", "tcp")
		// sum adds the packet counters of the SVC chain's jumps to its endpoints (the nat
		// table counts a connection's first packet).
		sum := func() int {
			t.Helper()
			out, err := labtest.CLI(t, "rules", pod.Node, "--name", p.Lab, "--service", "web")
			if err != nil {
				t.Fatalf("netlab rules: %v\n%s", err, out)
			}
			if strings.Contains(out, kubeproxy.SVCChain("default/sticky:http", "tcp")) ||
				strings.Contains(out, kubeproxy.SVCChain("default/sticky", "tcp")) {
				t.Errorf("--service web shows sticky's chain:\n%s", out)
			}
			total, jumps := 0, 0
			for line := range strings.Lines(out) {
				f := strings.Fields(line)
				if len(f) < 5 || f[2] != "-A" || f[3] != svcChain || !strings.Contains(line, "-j KUBE-SEP-") {
					continue
				}
				var n int
				if _, err := fmt.Sscan(f[0], &n); err != nil {
					t.Fatalf("packet counter %q: %v in %q", f[0], err, line)
				}
				total += n
				jumps++
			}
			if jumps != len(webPods) {
				t.Fatalf("netlab rules %s --service web: %d jumps from %s to endpoints, want %d:\n%s", pod.Node, jumps, svcChain, len(webPods), out)
			}
			return total
		}
		before := sum()
		const n = 25
		for i := range n {
			if _, _, err := labtest.GetEcho(pod.Netns, url(web.ClusterIP, 80)); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		after := sum()
		t.Logf("%s endpoint jumps: %d packets before, %d after %d connections", svcChain, before, after, n)
		if after-before != n {
			t.Errorf("%s's endpoint jumps counted %d packets before and %d after %d new connections (one per connection)", svcChain, before, after, n)
		}
	})

	t.Run("a killed pod leaves the endpoints and comes back", func(t *testing.T) {
		victim := podsOf(p, "web")[1]
		from := podsOf(p, "solo")[0].Netns
		readyIn := func() bool {
			ef, err := rundir.ForLab(p.Lab).ReadEndpoints()
			if err != nil {
				t.Fatal(err)
			}
			for _, sp := range ef.Ports {
				for _, ep := range sp.Endpoints {
					if ep.Pod == victim.Name && ep.Ready {
						return true
					}
				}
			}
			return false
		}
		if !readyIn() {
			t.Fatalf("%s is not a ready endpoint before the kill", victim.Name)
		}
		if _, err := lab.KillPod(p.Lab, victim.Name); err != nil {
			t.Fatal(err)
		}
		// A killed pod leaves the endpoints (within half a second; the bound is for a
		// loaded machine).
		deadline := time.Now().Add(15 * time.Second)
		for readyIn() {
			if time.Now().After(deadline) {
				t.Fatalf("%s still a ready endpoint 15 s after it was killed", victim.Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Every node applies it at once (the file is watched); then no request fails.
		labtest.WaitSynced(t, p)
		for i := range 60 {
			e, _, err := labtest.GetEcho(from, url(web.ClusterIP, 80))
			if err != nil {
				t.Fatalf("request %d after the kill: %v", i, err)
			}
			if e.Pod == victim.Name {
				t.Fatalf("request %d answered by the killed pod", i)
			}
		}
		if err := lab.StartPod(p.Lab, victim.Name, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(15 * time.Second)
		for !readyIn() {
			if time.Now().After(deadline) {
				rec, _ := os.ReadFile(rundir.ForLab(p.Lab).Readiness())
				t.Fatalf("%s did not come back into the endpoints within 15 s of its start; controller's record: %s", victim.Name, rec)
			}
			time.Sleep(20 * time.Millisecond)
		}
		log, _ := os.ReadFile(rundir.ForLab(p.Lab).Log("controller", "controller"))
		for _, want := range []string{`"endpoint removed"`, `"endpoint added"`, `"sync done"`} {
			if !strings.Contains(string(log), want) {
				t.Errorf("controller log lacks %s", want)
			}
		}
	})

	t.Run("a UDP flow leaves with its endpoint", func(t *testing.T) {
		// One UDP socket, so one source port and one conntrack entry: the entry, not the
		// rules, decides where its datagrams go, until kube-proxy deletes it.
		from := podsOf(p, "solo")[0].Netns
		c, err := kernel.DialIn(from, "udp", net.JoinHostPort(dns.ClusterIP, "53"), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ask := func() (string, error) {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write([]byte("ping")); err != nil {
				return "", err
			}
			buf := make([]byte, 64<<10)
			n, err := c.Read(buf)
			if err != nil {
				return "", err
			}
			var e labtest.Echo
			if err := json.Unmarshal(buf[:n], &e); err != nil {
				return "", fmt.Errorf("answer %q: %v", buf[:n], err)
			}
			return e.Pod, nil
		}
		victim, err := ask()
		if err != nil {
			t.Fatal(err)
		}
		if again, err := ask(); err != nil || again != victim {
			t.Fatalf("the flow moved from %s to %s (%v) with nothing changed", victim, again, err)
		}
		if _, err := lab.KillPod(p.Lab, victim); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := lab.StartPod(p.Lab, victim, 30*time.Second); err != nil {
				t.Error(err)
			}
		}()
		// The controller notices within a few probe periods (a UDP-only pod is ready while
		// a process runs in it). A timeout prints the controller's record of the pod.
		deadline := time.Now().Add(15 * time.Second)
		for {
			ef, err := rundir.ForLab(p.Lab).ReadEndpoints()
			if err != nil {
				t.Fatal(err)
			}
			gone := true
			for _, sp := range ef.Ports {
				for _, ep := range sp.Endpoints {
					gone = gone && !(ep.Pod == victim && ep.Ready)
				}
			}
			if gone {
				break
			}
			if time.Now().After(deadline) {
				rec, _ := os.ReadFile(rundir.ForLab(p.Lab).Readiness())
				t.Fatalf("%s still a ready endpoint 15 s after it was killed; controller's record: %s", victim, rec)
			}
			time.Sleep(20 * time.Millisecond)
		}
		labtest.WaitSynced(t, p)
		// kube-proxy deletes the entry after its sync; the same flow then reaches the
		// other endpoint. Without that, the entry keeps sending it to the killed pod's
		// address, which answers "port unreachable" until the entry times out (30 s+).
		var got string
		deadline = time.Now().Add(15 * time.Second)
		for {
			if got, err = ask(); err == nil && got != victim {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the flow still goes to the killed %s after every node synced: %q, %v", victim, got, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// up brings the scenario up with only the processes Services need (pods, controller,
// kube-proxy), so this test does not depend on the ingress and LB agents; the LB
// namespace still routes between the wan and the fabric.
func up(t *testing.T, mode string) *plan.Plan {
	t.Helper()
	prefix, tweak := "kp", func(*scenario.Scenario) {}
	if mode == "nftables" {
		prefix, tweak = "kpn", labtest.NFTables
	}
	p := labtest.PlanWith(t, prefix, labtest.Fixture(t, "kube-proxy.yaml"), tweak)
	if p.KubeProxy.Mode != mode {
		t.Fatalf("plan mode %q, want %q", p.KubeProxy.Mode, mode)
	}
	p.Processes = slices.DeleteFunc(p.Processes, func(pr plan.Process) bool {
		return pr.Role != "pod" && pr.Role != "controller" && pr.Role != "kube-proxy"
	})
	t.Cleanup(func() { labtest.Remove(t, p.Lab) })
	if err := lab.Up(context.Background(), p, lab.Options{Binary: labtest.Binary(t), ReadyTimeout: 30 * time.Second}); err != nil {
		t.Fatalf("up: %v", err)
	}
	return p
}
