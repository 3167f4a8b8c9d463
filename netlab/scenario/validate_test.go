package scenario

// Address plan of these tests: the defaults (wan 203.0.113.0/24 with the VIP at .100,
// nodes 172.18.0.0/24, pods 10.244.0.0/16 in /24 slices, services 10.96.0.0/12) unless a
// case says otherwise. Documents: 1 the Lab, 2 Deployment web, 3 Service web, 4+ the case.

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const labDoc = `apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: t}
spec:
  nodes:
  - {name: node-1, labels: {zone: a}}
  - {name: node-2, labels: {zone: b}}
`

const webDep = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: netlab/echo
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: http}}
`

const webSvc = `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
`

// lab returns the Lab document with more lines under spec.
func lab(spec string) string { return labDoc + spec }

// dep returns a Deployment of the given name (label app=<name>) with a pod spec body.
func dep(name string, replicas int, podSpec string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %s}
spec:
  replicas: %d
  selector: {matchLabels: {app: %s}}
  template:
    metadata: {labels: {app: %s}}
    spec:
%s`, name, replicas, name, name, podSpec)
}

const echoContainer = `      containers:
      - {name: c, image: netlab/echo, ports: [{name: http, containerPort: 8080}]}
`

// svc returns a Service named name selecting app=web with a spec body.
func svc(name, spec string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s}
spec:
  selector: {app: web}
%s`, name, spec)
}

func ingress(spec string) string {
	return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app}
spec:
` + spec
}

// run parses docs as one file bad.yaml and validates it; it returns the problems and
// the warnings as strings.
func run(t *testing.T, docs ...string) (probs, warns []string) {
	t.Helper()
	s, err := Parse("bad.yaml", []byte(strings.Join(docs, "---\n")))
	if err != nil {
		return lines(err), nil
	}
	err = Validate(s)
	if err != nil {
		if _, ok := err.(Problems); !ok {
			t.Fatalf("Validate returned %T, want Problems", err)
		}
		probs = lines(err)
	}
	for _, w := range s.Warnings {
		warns = append(warns, w.String())
	}
	return probs, warns
}

func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

type vcase struct {
	name  string
	docs  []string
	probs []string
	warns []string
}

func runCases(t *testing.T, cases []vcase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			probs, warns := run(t, c.docs...)
			if d := cmp.Diff(c.probs, probs); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
			if d := cmp.Diff(c.warns, warns); d != "" {
				t.Errorf("warnings (-want +got):\n%s", d)
			}
		})
	}
}

func TestValidateGood(t *testing.T) {
	runCases(t, []vcase{
		{name: "minimal", docs: []string{labDoc, webDep, webSvc}},
		{name: "no lab object", docs: []string{webDep, webSvc}},
		{name: "nodes as a count", docs: []string{"apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t}\nspec: {nodes: 3}\n", webDep}},
		{name: "everything", docs: []string{
			lab(`  clients: [{name: alice, ip: 198.51.100.7}, {name: bob}]
  network: {mode: host-gw, wanCIDR: 198.51.100.0/24, nodeCIDR: 172.20.0.0/24, podCIDR: 10.32.0.0/16, serviceCIDR: 10.100.0.0/16, nodePodMaskSize: 25}
  loadBalancer:
    vip: 198.51.100.10
    scheduler: wrr
    persistence: 30s
    healthCheck: {type: http, path: /healthz, interval: 2s, timeout: 2s, rise: 1, fall: 3}
  ingress: {className: lab, httpPort: 8080, httpsPort: 8443, metricsPort: 9100}
`), webDep,
			dep("api", 4, `      nodeSelector: {zone: b}
      containers:
      - name: api
        image: netlab/echo
        ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}, {containerPort: 9000}]
        readinessProbe: {tcpSocket: {port: 9000}, periodSeconds: 2}
`),
			dep("pinned", 1, "      nodeName: node-1\n"+echoContainer),
			svc("web", `  type: LoadBalancer
  externalTrafficPolicy: Local
  healthCheckNodePort: 32000
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
  loadBalancerIP: 198.51.100.20
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
`),
			`apiVersion: v1
kind: Service
metadata:
  name: api
  annotations: {netlab.dev/lb-scheduler: sh, netlab.dev/lb-persistence: 10m}
spec:
  type: LoadBalancer
  selector: {app: api}
  clusterIP: 10.100.0.50
  ports:
  - {name: http, port: 80, targetPort: http}
  - {name: dns, port: 53, protocol: UDP, targetPort: dns, nodePort: 30053}
  - {name: other, port: 9000, nodePort: 30053}
`,
			ingress(`  ingressClassName: lab
  defaultBackend: {service: {name: web, port: {number: 80}}}
  tls: [{hosts: [app.example, "*.apps.example"], secretName: issued-by-the-lab}]
  rules:
  - host: app.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http}}}}
      - {path: /api, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}
  - host: "*.apps.example"
    http:
      paths:
      - {pathType: ImplementationSpecific, backend: {service: {name: api, port: {name: http}}}}
`)}},
	})
}

func TestValidateLab(t *testing.T) {
	runCases(t, []vcase{
		{name: "lab name", docs: []string{strings.Replace(labDoc, "name: t}", "name: Demo_1}", 1)},
			probs: []string{`bad.yaml: Lab Demo_1: metadata.name: must be lowercase letters and digits, starting with a letter (no '-': namespaces are named nl-<lab>-<object>), got "Demo_1"`}},
		{name: "lab name with a dash", docs: []string{strings.Replace(labDoc, "name: t}", "name: my-lab}", 1)},
			probs: []string{`bad.yaml: Lab my-lab: metadata.name: must be lowercase letters and digits, starting with a letter (no '-': namespaces are named nl-<lab>-<object>), got "my-lab"`}},
		{name: "lab name too long", docs: []string{strings.Replace(labDoc, "name: t}", "name: alabwithaverylongnameindeed}", 1)},
			probs: []string{`bad.yaml: Lab alabwithaverylongnameindeed: metadata.name: "alabwithaverylongnameindeed" is 27 bytes, longer than 24 (namespaces are named nl-<lab>-<object>)`}},
		{name: "auto clients pass the vip", docs: []string{lab("  clients: [{name: a}, {name: b}, {name: c}]\n  network: {wanCIDR: 203.0.113.0/29}\n  loadBalancer: {vip: 203.0.113.3}\n"), webDep,
			// clients .2, .4, .5; the Service's VIP .6
			svc("lb1", "  type: LoadBalancer\n  ports: [{port: 80, targetPort: 8080}]\n")}},
		{name: "wan full", docs: []string{lab("  clients: [{name: a}, {name: b}, {name: c}, {name: d}]\n  network: {wanCIDR: 203.0.113.0/29}\n  loadBalancer: {vip: 203.0.113.3}\n"), webDep,
			svc("lb1", "  type: LoadBalancer\n  ports: [{port: 80, targetPort: 8080}]\n")},
			probs: []string{`bad.yaml: Lab t: spec.network.wanCIDR: 203.0.113.0/29 has 6 host addresses, the lab needs 7 (lb, VIP, 4 clients, 1 LoadBalancer Services)`}},
		{name: "node and client names", docs: []string{`apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: t}
spec:
  nodes: [{name: node-1}, {name: node-1}, {name: lb}, {name: worker-number-one}, {name: Node3, weight: -1}]
  clients: [{name: node-1}, {name: wan}, {name: ""}]
`},
			probs: []string{
				`bad.yaml: Lab t: spec.nodes[1].name: "node-1" is already used by Lab t spec.nodes[0]`,
				`bad.yaml: Lab t: spec.nodes[2].name: "lb" is reserved for the load balancer`,
				`bad.yaml: Lab t: spec.nodes[3].name: "worker-number-one" is 17 bytes, longer than 15 (it becomes an interface name)`,
				`bad.yaml: Lab t: spec.nodes[4].name: must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit), got "Node3"`,
				`bad.yaml: Lab t: spec.nodes[4].weight: must be at least 0, got -1`,
				`bad.yaml: Lab t: spec.clients[0].name: "node-1" is already used by Lab t spec.nodes[0]`,
				`bad.yaml: Lab t: spec.clients[1].name: "wan" is reserved for the wan bridge`,
				`bad.yaml: Lab t: spec.clients[2].name: required`,
			}},
		{name: "second lab", docs: []string{lab("  clients: [{name: c}]\n"), strings.Replace(labDoc, "{zone: a}", `{"bad key!": a, zone2: "bad value!"}`, 1)},
			probs: []string{"bad.yaml: Lab t: a second Lab object (the first is in bad.yaml, document 1)"}},
		{name: "node label keys and values", docs: []string{strings.Replace(labDoc, "{zone: a}", `{"bad key!": a, zone2: "bad value!"}`, 1)},
			probs: []string{
				`bad.yaml: Lab t: spec.nodes[0].labels: "bad key!" is not a valid label key`,
				`bad.yaml: Lab t: spec.nodes[0].labels.zone2: "bad value!" is not a valid label value`,
			}},
		{name: "cidrs", docs: []string{lab(`  network: {mode: flannel, wanCIDR: 203.0.113.0/33, nodeCIDR: "fd00::/64", podCIDR: 10.244.1.0/16, serviceCIDR: 127.0.0.0/16}
`)},
			probs: []string{
				`bad.yaml: Lab t: spec.network.mode: must be host-gw or vxlan, got "flannel"`,
				`bad.yaml: Lab t: spec.network.wanCIDR: must be an IPv4 CIDR such as 10.244.0.0/16, got "203.0.113.0/33"`,
				`bad.yaml: Lab t: spec.network.nodeCIDR: must be an IPv4 CIDR such as 10.244.0.0/16, got "fd00::/64"`,
				`bad.yaml: Lab t: spec.network.podCIDR: 10.244.1.0/16 has host bits set (did you mean 10.244.0.0/16?)`,
				`bad.yaml: Lab t: spec.network.serviceCIDR: 127.0.0.0/16 overlaps 127.0.0.0/8 (loopback)`,
			}},
		{name: "overlapping cidrs", docs: []string{lab(`  network: {podCIDR: 10.0.0.0/8, nodeCIDR: 203.0.113.128/25}
`), webDep},
			probs: []string{
				`bad.yaml: Lab t: spec.network.nodeCIDR: 203.0.113.128/25 overlaps spec.network.wanCIDR 203.0.113.0/24`,
				`bad.yaml: Lab t: spec.network.serviceCIDR: 10.96.0.0/12 overlaps spec.network.podCIDR 10.0.0.0/8`,
			}},
		{name: "node pod mask", docs: []string{lab("  network: {nodePodMaskSize: 8}\n")},
			probs: []string{`bad.yaml: Lab t: spec.network.nodePodMaskSize: must be between 16 (the prefix length of spec.network.podCIDR) and 30, got 8`}},
		{name: "pod cidr too small for the nodes", docs: []string{lab("  network: {podCIDR: 10.244.0.0/23}\n")},
			probs: []string{`bad.yaml: Lab t: spec.network.nodePodMaskSize: spec.network.podCIDR 10.244.0.0/23 has room for 1 node slices of /24 (node i owns slice i, slice 0 is unused), the lab has 2 nodes`}},
		{name: "pods do not fit", docs: []string{lab("  network: {nodePodMaskSize: 28}\n"), dep("web", 27, echoContainer)},
			probs: []string{`bad.yaml: Lab t: spec.network.podCIDR: 29 pods do not fit: 2 nodes hold 26 (13 per /28 slice)`}},
		{name: "pinned pods do not fit", docs: []string{lab("  network: {nodePodMaskSize: 28}\n"),
			dep("a", 10, "      nodeName: node-1\n"+echoContainer), dep("b", 4, "      nodeSelector: {zone: a}\n"+echoContainer), dep("c", 10, echoContainer)},
			probs: []string{`bad.yaml: Lab t: spec.network.nodePodMaskSize: 14 pods are pinned to node-1, which hold 13 (13 per /28 slice)`}},
		{name: "node cidr too small", docs: []string{"apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t}\nspec: {nodes: 5, network: {nodeCIDR: 172.18.0.0/28}}\n"},
			probs: []string{`bad.yaml: Lab t: spec.network.nodeCIDR: 172.18.0.0/28 has room for 4 nodes (from .11), the lab has 5`}},
		{name: "client addresses", docs: []string{lab(`  clients: [{name: a, ip: 203.0.113.7}, {name: b, ip: 203.0.113.7}, {name: c, ip: 198.51.100.1}, {name: d, ip: 203.0.113.100}, {name: e, ip: 203.0.113.1}, {name: f, ip: 203.0.113.255}, {name: g, ip: nowhere}]
`)},
			probs: []string{
				`bad.yaml: Lab t: spec.clients[1].ip: 203.0.113.7 is already used by client "a"`,
				`bad.yaml: Lab t: spec.clients[2].ip: 198.51.100.1 is outside spec.network.wanCIDR 203.0.113.0/24`,
				`bad.yaml: Lab t: spec.clients[3].ip: 203.0.113.100 is the ingress VIP (spec.loadBalancer.vip)`,
				`bad.yaml: Lab t: spec.clients[4].ip: 203.0.113.1 is the load balancer`,
				`bad.yaml: Lab t: spec.clients[5].ip: 203.0.113.255 is the network or broadcast address of spec.network.wanCIDR 203.0.113.0/24`,
				`bad.yaml: Lab t: spec.clients[6].ip: must be an IPv4 address, got "nowhere"`,
			}},
		{name: "wan too small", docs: []string{lab("  clients: [{name: a}, {name: b}]\n  network: {wanCIDR: 203.0.113.0/30}\n  loadBalancer: {vip: 203.0.113.2}\n")},
			probs: []string{`bad.yaml: Lab t: spec.network.wanCIDR: 203.0.113.0/30 has 2 host addresses, the lab needs 4 (lb, VIP, 2 clients, 0 LoadBalancer Services)`}},
		{name: "no room after the vip", docs: []string{lab("  loadBalancer: {vip: 203.0.113.253}\n"), webDep,
			svc("a", "  type: LoadBalancer\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("b", "  type: LoadBalancer\n  ports: [{port: 80, targetPort: 8080}]\n")},
			probs: []string{`bad.yaml: Lab t: spec.loadBalancer.vip: only 1 free addresses follow 203.0.113.253 in 203.0.113.0/24, 2 LoadBalancer Services need one each`}},
		{name: "load balancer", docs: []string{lab(`  loadBalancer:
    vip: 203.0.113.1
    scheduler: fastest
    persistence: -1s
    healthCheck: {type: http, path: healthz, interval: 0s, timeout: 2s, rise: -1, fall: -2}
`)},
			probs: []string{
				`bad.yaml: Lab t: spec.loadBalancer.vip: 203.0.113.1 is the load balancer's own address on the wan`,
				`bad.yaml: Lab t: spec.loadBalancer.scheduler: must be one of rr, wrr, sh, random, got "fastest"`,
				`bad.yaml: Lab t: spec.loadBalancer.persistence: must not be negative, got -1s`,
				`bad.yaml: Lab t: spec.loadBalancer.healthCheck.path: must start with "/", got "healthz"`,
				`bad.yaml: Lab t: spec.loadBalancer.healthCheck.interval: must be positive, got 0s`,
				`bad.yaml: Lab t: spec.loadBalancer.healthCheck.rise: must be at least 1, got -1`,
				`bad.yaml: Lab t: spec.loadBalancer.healthCheck.fall: must be at least 1, got -2`,
			}},
		{name: "health check", docs: []string{lab(`  loadBalancer:
    vip: 198.51.100.1
    healthCheck: {type: udp, interval: 1s, timeout: 2s}
`)},
			probs: []string{
				`bad.yaml: Lab t: spec.loadBalancer.vip: 198.51.100.1 is outside spec.network.wanCIDR 203.0.113.0/24`,
				`bad.yaml: Lab t: spec.loadBalancer.healthCheck.type: must be tcp or http, got "udp"`,
				`bad.yaml: Lab t: spec.loadBalancer.healthCheck.timeout: 2s is longer than the interval 1s`,
			}},
		{name: "ingress agent", docs: []string{lab("  ingress: {className: Bad_Class, upstream: pods, httpPort: 8080, httpsPort: 8080, metricsPort: 70000}\n")},
			probs: []string{
				`bad.yaml: Lab t: spec.ingress.className: must be a DNS name (lowercase labels of letters, digits and '-', separated by dots), got "Bad_Class"`,
				`bad.yaml: Lab t: spec.ingress.upstream: must be "service" or "endpoints", got "pods"`,
				`bad.yaml: Lab t: spec.ingress.httpsPort: 8080 is already used by Lab t spec.ingress.httpPort`,
				`bad.yaml: Lab t: spec.ingress.metricsPort: must be between 1 and 65535, got 70000`,
			}},
		{name: "ingress workers, a number out of range", docs: []string{lab("  ingress: {workers: 0}\n")},
			probs: []string{`bad.yaml: Lab t: spec.ingress.workers: must be a number from 1 to 64 or "auto", got 0`}},
		{name: "ingress workers, a word", docs: []string{lab("  ingress: {workers: many}\n")},
			probs: []string{`bad.yaml: Lab t: spec.ingress.workers: must be a number from 1 to 64 or "auto", got "many"`}},
		{name: "ingress workers, a number as a string", docs: []string{lab("  ingress: {workers: \"2\"}\n")},
			probs: []string{`bad.yaml: Lab t: spec.ingress.workers: must be a number from 1 to 64 or "auto", got "2"`}},
	})
}

// The LB cannot honestly do least-connections, and xt_recent counts whole seconds: both
// are refused at validation, before any kernel call, not late by the lb agent.
func TestValidateLBSchedulerAndPersistence(t *testing.T) {
	src := `apiVersion: netlab.dev/v1alpha1
kind: Lab
metadata: {name: t}
spec:
  loadBalancer: {scheduler: lc, persistence: 1500ms}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations: {netlab.dev/lb-scheduler: lc, netlab.dev/lb-persistence: 2.5s}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`
	s, err := Parse("lb.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	lc := "lc (least connections) is not supported: iptables cannot see a real server's active connections when it schedules a new one; use rr, wrr, sh, random"
	want := []string{
		"lb.yaml: Lab t: spec.loadBalancer.scheduler: " + lc,
		"lb.yaml: Lab t: spec.loadBalancer.persistence: must be a whole number of seconds, got 1.5s",
		"lb.yaml: Service default/web: metadata.annotations[netlab.dev/lb-persistence]: must be a whole number of seconds, got 2.5s",
		"lb.yaml: Service default/web: metadata.annotations[netlab.dev/lb-scheduler]: " + lc,
	}
	err = Validate(s)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Validate: %v, want problems", err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.String())
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
}
