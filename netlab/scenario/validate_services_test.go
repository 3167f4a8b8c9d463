package scenario

import "testing"

func TestValidateServices(t *testing.T) {
	runCases(t, []vcase{
		{name: "types and selectors", docs: []string{labDoc, webDep,
			svc("ext", "  type: ExternalName\n  externalName: example.com\n  ports: [{port: 80, targetPort: 8080}]\n"),
			"apiVersion: v1\nkind: Service\nmetadata: {name: ext2}\nspec: {type: ExternalName, externalName: Bad_Name, clusterIP: 10.96.0.40}\n",
			"apiVersion: v1\nkind: Service\nmetadata: {name: ext3}\nspec: {type: ExternalName}\n",
			svc("odd", "  type: Headless\n  ports: [{port: 80, targetPort: 8080}]\n"),
			`apiVersion: v1
kind: Service
metadata: {name: nosel}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: prod}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: 1web}
spec:
  selector: {app: web}
`},
			probs: []string{
				`bad.yaml: Service default/ext2: spec.externalName: must be a DNS name (lowercase labels of letters, digits and '-', separated by dots), got "Bad_Name"`,
				`bad.yaml: Service default/ext2: spec.clusterIP: must be empty for type ExternalName, got "10.96.0.40"`,
				`bad.yaml: Service default/ext3: spec.externalName: required for type ExternalName`,
				`bad.yaml: Service default/odd: spec.type: must be ClusterIP, NodePort, LoadBalancer or ExternalName, got "Headless"`,
				`bad.yaml: Service default/nosel: spec.selector: required: the lab has no manual Endpoints`,
				`bad.yaml: Service prod/other: spec.selector: matches no Deployment in namespace prod`,
				`bad.yaml: Service default/1web: metadata.name: must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending with a letter or digit), got "1web"`,
				`bad.yaml: Service default/1web: spec.ports: at least one port is required`,
			},
			warns: []string{`bad.yaml: Service default/ext: spec.selector: ignored: an ExternalName Service has no endpoints`}},
		{name: "duplicate", docs: []string{labDoc, webDep, webSvc, webSvc},
			probs: []string{`bad.yaml: Service default/web: metadata.name: Service default/web is already defined in bad.yaml, document 3`}},
		{name: "ports", docs: []string{labDoc, webDep,
			svc("ports", `  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {port: 81, targetPort: 8080}
  - {name: http, port: 80, targetPort: 8080}
  - {name: Bad, port: 0, targetPort: 0, protocol: SCTP}
  - {name: dns, port: 53, protocol: ICMP, targetPort: 9090}
  - {name: udp, port: 80, protocol: UDP, targetPort: 8080}
  - {name: metrics, port: 9100, targetPort: metrics}
  - {name: named, port: 9101, targetPort: Not_A_Name}
`)},
			probs: []string{
				`bad.yaml: Service default/ports: spec.ports[1].name: required when the Service has more than one port`,
				`bad.yaml: Service default/ports: spec.ports[2].name: "http" is already used by spec.ports[0]`,
				`bad.yaml: Service default/ports: spec.ports[2].port: 80/TCP is already used by spec.ports[0]`,
				`bad.yaml: Service default/ports: spec.ports[3].name: must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit), got "Bad"`,
				`bad.yaml: Service default/ports: spec.ports[3].protocol: SCTP is not supported by the lab`,
				`bad.yaml: Service default/ports: spec.ports[3].port: must be between 1 and 65535, got 0`,
				// targetPort 0 is defaulted to port (0): out of range
				`bad.yaml: Service default/ports: spec.ports[3].targetPort: must be between 1 and 65535, got 0`,
				`bad.yaml: Service default/ports: spec.ports[4].protocol: must be TCP or UDP, got "ICMP"`,
				`bad.yaml: Service default/ports: spec.ports[4].targetPort: no container of Deployment default/web exposes 9090/ICMP`,
				`bad.yaml: Service default/ports: spec.ports[5].targetPort: no container of Deployment default/web exposes 8080/UDP`,
				`bad.yaml: Service default/ports: spec.ports[6].targetPort: no container of Deployment default/web has a TCP port named "metrics"`,
				`bad.yaml: Service default/ports: spec.ports[7].targetPort: must be an IANA service name (at most 15 lowercase letters, digits and '-', with at least one letter), got "Not_A_Name"`,
			}},
		{name: "target port on every selected deployment", docs: []string{labDoc,
			`apiVersion: apps/v1
kind: Deployment
metadata: {name: a}
spec:
  selector: {matchLabels: {app: a}}
  template:
    metadata: {labels: {app: a, tier: front}}
    spec: {containers: [{name: c, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: b}
spec:
  selector: {matchLabels: {app: b}}
  template:
    metadata: {labels: {app: b, tier: front}}
    spec: {containers: [{name: c, ports: [{name: http, containerPort: 9000}, {name: admin, containerPort: 9001}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: front}
spec:
  selector: {tier: front}
  ports:
  - {name: a, port: 80, targetPort: 8080}
  - {name: b, port: 81, targetPort: http}
  - {name: c, port: 82, targetPort: admin}
  - {name: d, port: 83, targetPort: other}
  - {name: e, port: 84, targetPort: 7000}
`},
			probs: []string{
				`bad.yaml: Service default/front: spec.ports[0].targetPort: no container of Deployment default/b exposes 8080/TCP`,
				`bad.yaml: Service default/front: spec.ports[3].targetPort: no container of Deployments default/a, default/b has a TCP port named "other"`,
				`bad.yaml: Service default/front: spec.ports[4].targetPort: no container of Deployments default/a, default/b exposes 7000/TCP`,
			}},
		{name: "cluster ips", docs: []string{labDoc, webDep,
			svc("none", "  clusterIP: None\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("noneports", "  clusterIP: None\n"),
			svc("nonenp", "  type: NodePort\n  clusterIP: None\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("outside", "  clusterIP: 10.0.0.1\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("bad", "  clusterIP: ten\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("dns", "  clusterIP: 10.96.0.10\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("a", "  clusterIP: 10.96.0.20\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("b", "  clusterIP: 10.96.0.20\n  clusterIPs: [10.96.0.11, \"fd00::1\"]\n  ports: [{port: 80, targetPort: 8080}]\n")},
			probs: []string{
				`bad.yaml: Service default/nonenp: spec.clusterIP: None (headless) needs type ClusterIP, got NodePort`,
				`bad.yaml: Service default/outside: spec.clusterIP: 10.0.0.1 is outside spec.network.serviceCIDR 10.96.0.0/12`,
				`bad.yaml: Service default/bad: spec.clusterIP: must be an IPv4 address, got "ten"`,
				`bad.yaml: Service default/dns: spec.clusterIP: 10.96.0.10 is already used by Service kube-system/kube-dns, the cluster DNS`,
				`bad.yaml: Service default/b: spec.clusterIP: 10.96.0.20 is already used by Service default/a`,
				`bad.yaml: Service default/b: spec.clusterIPs[0]: "10.96.0.11" must equal spec.clusterIP "10.96.0.20"`,
			},
			warns: []string{`bad.yaml: Service default/b: spec.clusterIPs: entries after the first are ignored: the lab is IPv4 single-stack`}},
		{name: "node ports", docs: []string{lab("  ingress: {httpPort: 30080}\n"), webDep,
			svc("cip", "  ports: [{port: 80, targetPort: 8080, nodePort: 30001}]\n"),
			svc("range", "  type: NodePort\n  ports: [{port: 80, targetPort: 8080, nodePort: 8080}]\n"),
			svc("ingress", "  type: NodePort\n  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]\n"),
			svc("a", "  type: NodePort\n  ports: [{port: 80, targetPort: 8080, nodePort: 30001}]\n"),
			svc("b", "  type: LoadBalancer\n  externalTrafficPolicy: Local\n  healthCheckNodePort: 30001\n  ports: [{port: 80, targetPort: 8080, nodePort: 30001}]\n"),
			svc("c", "  type: LoadBalancer\n  healthCheckNodePort: 30002\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("d", "  type: LoadBalancer\n  allocateLoadBalancerNodePorts: false\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("e", "  type: NodePort\n  allocateLoadBalancerNodePorts: false\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("f", "  type: LoadBalancer\n  allocateLoadBalancerNodePorts: true\n  ports: [{port: 81, targetPort: 8080}]\n")},
			probs: []string{
				`bad.yaml: Service default/cip: spec.ports[0].nodePort: only NodePort and LoadBalancer Services have node ports`,
				`bad.yaml: Service default/range: spec.ports[0].nodePort: must be between 30000 and 32767, got 8080`,
				`bad.yaml: Service default/ingress: spec.ports[0].nodePort: 30080/TCP is already used by Lab t spec.ingress.httpPort`,
				`bad.yaml: Service default/b: spec.ports[0].nodePort: 30001/TCP is already used by Service default/a spec.ports[0].nodePort`,
				`bad.yaml: Service default/b: spec.healthCheckNodePort: 30001/TCP is already used by Service default/a spec.ports[0].nodePort`,
				`bad.yaml: Service default/c: spec.healthCheckNodePort: may only be set on LoadBalancer Services with externalTrafficPolicy Local`,
				`bad.yaml: Service default/d: spec.allocateLoadBalancerNodePorts: false is not modelled: the lab's load balancer forwards to every node's NodePort, so a LoadBalancer Service needs them`,
				`bad.yaml: Service default/e: spec.allocateLoadBalancerNodePorts: may only be set on LoadBalancer Services`,
			}},
		{name: "policies and affinity", docs: []string{labDoc, webDep,
			svc("a", "  externalTrafficPolicy: Local\n  internalTrafficPolicy: Nearest\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("b", "  type: NodePort\n  externalTrafficPolicy: Remote\n  sessionAffinity: Sticky\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("c", "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("d", "  sessionAffinity: None\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10}}\n  ports: [{port: 80, targetPort: 8080}]\n")},
			probs: []string{
				`bad.yaml: Service default/a: spec.externalTrafficPolicy: may only be set on NodePort and LoadBalancer Services`,
				`bad.yaml: Service default/a: spec.internalTrafficPolicy: must be Cluster or Local, got "Nearest"`,
				`bad.yaml: Service default/b: spec.externalTrafficPolicy: must be Cluster or Local, got "Remote"`,
				`bad.yaml: Service default/b: spec.sessionAffinity: must be None or ClientIP, got "Sticky"`,
				`bad.yaml: Service default/c: spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be between 1 and 86400, got 86401`,
				`bad.yaml: Service default/d: spec.sessionAffinityConfig: must not be set when spec.sessionAffinity is None`,
			}},
		{name: "load balancer ips and annotations", docs: []string{lab("  clients: [{name: alice, ip: 203.0.113.7}]\n"), webDep,
			svc("vip", "  type: LoadBalancer\n  loadBalancerIP: 203.0.113.100\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("client", "  type: LoadBalancer\n  loadBalancerIP: 203.0.113.7\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("outside", "  type: LoadBalancer\n  loadBalancerIP: 192.0.2.1\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("a", "  type: LoadBalancer\n  loadBalancerIP: 203.0.113.50\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("b", "  type: LoadBalancer\n  loadBalancerIP: 203.0.113.50\n  ports: [{port: 80, targetPort: 8080}]\n"),
			svc("cip", "  loadBalancerIP: 203.0.113.51\n  ports: [{port: 80, targetPort: 8080}]\n"),
			`apiVersion: v1
kind: Service
metadata:
  name: annotated
  annotations:
    netlab.dev/lb-scheduler: fastest
    netlab.dev/lb-persistence: forever
    netlab.dev/lb-shedular: rr
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: clusterip
  annotations:
    netlab.dev/lb-scheduler: sh
    netlab.dev/lb-persistence: -1s
    service.beta.kubernetes.io/aws-load-balancer-type: nlb
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`},
			probs: []string{
				`bad.yaml: Service default/vip: spec.loadBalancerIP: 203.0.113.100 is the ingress VIP (spec.loadBalancer.vip)`,
				`bad.yaml: Service default/client: spec.loadBalancerIP: 203.0.113.7 is already used by client "alice"`,
				`bad.yaml: Service default/outside: spec.loadBalancerIP: 192.0.2.1 is outside spec.network.wanCIDR 203.0.113.0/24`,
				`bad.yaml: Service default/b: spec.loadBalancerIP: 203.0.113.50 is already used by Service default/a`,
				`bad.yaml: Service default/annotated: metadata.annotations[netlab.dev/lb-persistence]: must be a duration such as 30s, got "forever"`,
				`bad.yaml: Service default/annotated: metadata.annotations[netlab.dev/lb-scheduler]: must be one of rr, wrr, sh, random, got "fastest"`,
				`bad.yaml: Service default/annotated: metadata.annotations[netlab.dev/lb-shedular]: unknown netlab annotation (known: netlab.dev/lb-scheduler, netlab.dev/lb-persistence)`,
				`bad.yaml: Service default/clusterip: metadata.annotations[netlab.dev/lb-persistence]: must not be negative, got -1s`,
			},
			warns: []string{
				`bad.yaml: Service default/cip: spec.loadBalancerIP: ignored: only LoadBalancer Services use it`,
				`bad.yaml: Service default/clusterip: metadata.annotations[netlab.dev/lb-scheduler]: ignored: only LoadBalancer Services use it`,
				`bad.yaml: Service default/clusterip: metadata.annotations[service.beta.kubernetes.io/aws-load-balancer-type]: not modelled by the lab, ignored`,
			}},
	})
}
