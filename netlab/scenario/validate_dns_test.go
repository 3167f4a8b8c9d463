package scenario

import (
	"strings"
	"testing"
)

func TestValidateDNS(t *testing.T) {
	kubeDNS := "apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns, namespace: kube-system}\nspec: {selector: {app: sys}, ports: [{port: 80, targetPort: 8080}]}\n"
	sysWeb := strings.Replace(dep("sys", 1, echoContainer), "metadata: {name: sys}", "metadata: {name: sys, namespace: kube-system}", 1)
	runCases(t, []vcase{
		{name: "cluster domain, replicas", docs: []string{lab("  dns: {clusterDomain: Cluster_Local, replicas: 9}\n")},
			probs: []string{
				`bad.yaml: Lab t: spec.dns.clusterDomain: must be a DNS name (lowercase labels of letters, digits and '-', separated by dots), got "Cluster_Local"`,
				`bad.yaml: Lab t: spec.dns.replicas: must be between 1 and 8, got 9`,
			}},
		{name: "reverse domain", docs: []string{lab("  dns: {clusterDomain: 10.in-addr.arpa}\n")},
			probs: []string{`bad.yaml: Lab t: spec.dns.clusterDomain: "10.in-addr.arpa" is a reverse-lookup domain`}},
		{name: "a domain of one label and a final dot", docs: []string{lab("  dns: {clusterDomain: lab.}\n")}},
		{name: "the DNS's names and address are taken", docs: []string{labDoc, webDep, sysWeb,
			strings.Replace(dep("coredns", 1, echoContainer), "metadata: {name: coredns}", "metadata: {name: coredns, namespace: apps}", 1),
			svc("dns", "  clusterIP: 10.96.0.10\n  ports: [{port: 80, targetPort: 8080}]\n"),
			strings.Replace(kubeDNS, "{app: sys}", "{app: sys}, clusterIP: 10.96.0.53", 1)},
			probs: []string{
				`bad.yaml: Deployment apps/coredns: metadata.name: pod name "coredns-1" is already used by the cluster DNS (spec.dns)`,
				`bad.yaml: Service default/dns: spec.clusterIP: 10.96.0.10 is already used by Service kube-system/kube-dns, the cluster DNS`,
				`bad.yaml: Service kube-system/kube-dns: metadata.name: kube-system/kube-dns is the cluster DNS's Service; set spec.dns.enabled: false in the Lab to define your own`,
			}},
		{name: "disabled: the names and .10 are free", docs: []string{lab("  dns: {enabled: false}\n"), webDep, sysWeb,
			dep("coredns", 1, echoContainer),
			svc("dns", "  clusterIP: 10.96.0.10\n  ports: [{port: 80, targetPort: 8080}]\n"),
			kubeDNS}},
		{name: "one node", docs: []string{"apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t}\nspec: {nodes: 1}\n"},
			warns: []string{`bad.yaml: Lab t: spec.dns.replicas: the lab has one node: its 2 DNS pods all run on it`}},
	})
}
