package scenario

import (
	"strings"
	"testing"
)

func TestValidateDeployments(t *testing.T) {
	runCases(t, []vcase{
		{name: "names and replicas", docs: []string{labDoc,
			dep("Web", 1, echoContainer),
			dep("neg", -1, echoContainer),
			dep("a-deployment-with-a-name-of-thirty-eight", 10, echoContainer),
			dep("node", 1, echoContainer),
			strings.Replace(webDep, "metadata: {name: web}", "metadata: {name: web, namespace: prod}", 1),
			webDep},
			probs: []string{
				`bad.yaml: Deployment default/Web: metadata.name: must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit), got "Web"`,
				`bad.yaml: Deployment default/neg: spec.replicas: must be at least 0, got -1`,
				`bad.yaml: Deployment default/a-deployment-with-a-name-of-thirty-eight: metadata.name: pod names such as "a-deployment-with-a-name-of-thirty-eight-10" are 43 bytes, longer than 40`,
				`bad.yaml: Deployment default/node: metadata.name: pod name "node-1" is already used by Lab t spec.nodes[0]`,
				`bad.yaml: Deployment default/web: metadata.name: pod name "web-1" is already used by Deployment prod/web`,
			}},
		{name: "hostname and subdomain", docs: []string{labDoc, `apiVersion: apps/v1
kind: Deployment
metadata: {name: db}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {hostname: Db_0, subdomain: db.hl, containers: [{name: c}]}
`},
			probs: []string{
				`bad.yaml: Deployment default/db: spec.template.spec.hostname: must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit), got "Db_0"`,
				`bad.yaml: Deployment default/db: spec.template.spec.subdomain: must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit), got "db.hl"`,
			}},
		{name: "duplicate", docs: []string{labDoc, webDep, webDep},
			probs: []string{
				`bad.yaml: Deployment default/web: metadata.name: Deployment default/web is already defined in bad.yaml, document 2`,
				`bad.yaml: Deployment default/web: metadata.name: pod name "web-1" is already used by Deployment default/web`,
			}},
		{name: "too many pods", docs: []string{labDoc, dep("a", 1500, echoContainer), dep("b", 600, echoContainer)},
			probs: []string{`bad.yaml: Deployment default/b: spec.replicas: the lab would have 2102 pods, more than 2000`}},
		{name: "selectors", docs: []string{labDoc,
			`apiVersion: apps/v1
kind: Deployment
metadata: {name: nosel}
spec:
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: c}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: empty}
spec:
  selector: {}
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: c}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: other}
spec:
  selector: {matchLabels: {app: other}}
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: c}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: nolabels}
spec:
  selector: {matchExpressions: [{key: app, operator: Exists}]}
  template:
    spec: {containers: [{name: c}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: badop}
spec:
  selector: {matchExpressions: [{key: app, operator: Near}]}
  template:
    metadata: {labels: {app: x}}
    spec: {containers: [{name: c}]}
`},
			probs: []string{
				`bad.yaml: Deployment default/nosel: spec.selector: required`,
				`bad.yaml: Deployment default/empty: spec.selector: must not be empty`,
				`bad.yaml: Deployment default/other: spec.selector: does not match spec.template.metadata.labels`,
				`bad.yaml: Deployment default/nolabels: spec.template.metadata.labels: required: spec.selector must match them`,
				`bad.yaml: Deployment default/badop: spec.selector: "Near" is not a valid label selector operator`,
			}},
		{name: "containers and ports", docs: []string{labDoc,
			dep("nocontainers", 1, "      containers: []\n"),
			dep("ports", 1, `      containers:
      - name: a
        ports: [{name: http, containerPort: 8080}, {name: http, containerPort: 0}, {name: Bad_Name, containerPort: 9000, protocol: SCTP}]
      - name: a
        ports: [{containerPort: 8080, protocol: TCP}, {containerPort: 8080, protocol: UDP}, {containerPort: 53, protocol: ICMP}]
`)},
			probs: []string{
				`bad.yaml: Deployment default/nocontainers: spec.template.spec.containers: at least one container is required`,
				`bad.yaml: Deployment default/ports: spec.template.spec.containers[0].ports[1].containerPort: must be between 1 and 65535, got 0`,
				`bad.yaml: Deployment default/ports: spec.template.spec.containers[0].ports[1].name: "http" is already used by spec.template.spec.containers[0].ports[0]`,
				`bad.yaml: Deployment default/ports: spec.template.spec.containers[0].ports[2].protocol: SCTP is not supported by the lab`,
				`bad.yaml: Deployment default/ports: spec.template.spec.containers[0].ports[2].name: must be an IANA service name (at most 15 lowercase letters, digits and '-', with at least one letter), got "Bad_Name"`,
				`bad.yaml: Deployment default/ports: spec.template.spec.containers[1].name: "a" is already used by spec.template.spec.containers[0]`,
				`bad.yaml: Deployment default/ports: spec.template.spec.containers[1].ports[0].containerPort: 8080/TCP is already exposed by spec.template.spec.containers[0].ports[0]`,
				`bad.yaml: Deployment default/ports: spec.template.spec.containers[1].ports[2].protocol: must be TCP or UDP, got "ICMP"`,
			}},
		{name: "readiness probes", docs: []string{labDoc,
			dep("probes", 1, `      containers:
      - name: a
        ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]
        readinessProbe: {httpGet: {path: healthz, port: metrics}}
      - name: b
        readinessProbe: {tcpSocket: {port: 9090}}
      - name: c
        readinessProbe: {httpGet: {port: dns}}
      - name: d
        readinessProbe: {tcpSocket: {port: 0}}
`)},
			probs: []string{
				`bad.yaml: Deployment default/probes: spec.template.spec.containers[0].readinessProbe.httpGet.path: must start with "/", got "healthz"`,
				`bad.yaml: Deployment default/probes: spec.template.spec.containers[0].readinessProbe.httpGet.port: no TCP containerPort named "metrics" in the pod`,
				`bad.yaml: Deployment default/probes: spec.template.spec.containers[1].readinessProbe.tcpSocket.port: 9090 is not a TCP containerPort of the pod (the pod's agent listens only on its containerPorts)`,
				`bad.yaml: Deployment default/probes: spec.template.spec.containers[2].readinessProbe.httpGet.port: no TCP containerPort named "dns" in the pod`,
				`bad.yaml: Deployment default/probes: spec.template.spec.containers[3].readinessProbe.tcpSocket.port: must be between 1 and 65535, got 0`,
			}},
		{name: "placement", docs: []string{labDoc,
			dep("a", 1, "      nodeName: node-9\n"+echoContainer),
			dep("b", 1, "      nodeSelector: {zone: c}\n"+echoContainer),
			dep("c", 1, "      nodeName: node-1\n      nodeSelector: {zone: b}\n"+echoContainer),
			dep("d", 1, "      nodeSelector: {zone: b}\n"+echoContainer)},
			probs: []string{
				`bad.yaml: Deployment default/a: spec.template.spec.nodeName: no node "node-9" in the lab`,
				`bad.yaml: Deployment default/b: spec.template.spec.nodeSelector: matches no node of the lab`,
				`bad.yaml: Deployment default/c: spec.template.spec.nodeSelector: does not match node "node-1" of spec.template.spec.nodeName`,
			}},
	})
}

func TestValidateNamesAndCapacity(t *testing.T) {
	runCases(t, []vcase{
		{name: "namespaces and missing names", docs: []string{lab("  network: {serviceCIDR: 10.96.0.0/30}\n"),
			strings.Replace(webDep, "metadata: {name: web}", "metadata: {name: web, namespace: Prod}", 1),
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {}\nspec: {selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c}]}}}\n",
			svc("a", "  ports: [{port: 80}]\n"), svc("b", "  ports: [{port: 80}]\n"), svc("", "  ports: [{port: 80}]\n"),
			"apiVersion: v1\nkind: Secret\nmetadata: {name: Bad_Name}\ntype: kubernetes.io/tls\nstringData: {tls.key: k}\n",
		},
			probs: []string{
				`bad.yaml: Lab t: spec.network.serviceCIDR: 10.96.0.0/30 has no tenth address for the cluster DNS's Service kube-system/kube-dns`,
				`bad.yaml: Lab t: spec.network.serviceCIDR: 10.96.0.0/30 has room for 0 ClusterIPs, the lab has 3 Services`,
				`bad.yaml: Deployment Prod/web: metadata.namespace: must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit), got "Prod"`,
				`bad.yaml: Deployment default/: metadata.name: required`,
				`bad.yaml: Service default/a: spec.ports[0].targetPort: no container of Deployment default/ exposes 80/TCP`,
				`bad.yaml: Service default/b: spec.ports[0].targetPort: no container of Deployment default/ exposes 80/TCP`,
				`bad.yaml: Service default/: metadata.name: required`,
				`bad.yaml: Service default/: spec.ports[0].targetPort: no container of Deployment default/ exposes 80/TCP`,
				`bad.yaml: Secret default/Bad_Name: metadata.name: must be a DNS name (lowercase labels of letters, digits and '-', separated by dots), got "Bad_Name"`,
				`bad.yaml: Secret default/Bad_Name: data[tls.crt]: required for a kubernetes.io/tls Secret`,
			}},
	})
}
