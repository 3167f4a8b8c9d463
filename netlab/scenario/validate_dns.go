package scenario

import (
	"fmt"
	"strconv"
	"strings"
)

// dns checks spec.dns and claims what the cluster DNS uses: its pod names, its place in
// the nodes' pod slices, the Service kube-system/kube-dns and its ClusterIP.
func (v *validator) dns() {
	w, d := v.labAt, &v.s.Lab.Spec.DNS
	switch dom := strings.TrimSuffix(d.ClusterDomain, "."); {
	case d.ClusterDomain == "":
		v.errf(w, "spec.dns.clusterDomain", "required")
	case !isDomain(dom):
		v.errf(w, "spec.dns.clusterDomain", msgDNSName, d.ClusterDomain)
	case strings.HasSuffix(dom, ".arpa") || dom == "arpa":
		v.errf(w, "spec.dns.clusterDomain", "%q is a reverse-lookup domain", d.ClusterDomain)
	}
	if !v.s.Lab.Spec.DNSEnabled() {
		return
	}
	if d.Replicas < 1 || d.Replicas > MaxDNSReplicas {
		v.errf(w, "spec.dns.replicas", "must be between 1 and %d, got %d", MaxDNSReplicas, d.Replicas)
		return
	}
	owner := "the cluster DNS (spec.dns)"
	for i := 1; i <= d.Replicas; i++ {
		v.claim(w, "spec.dns.replicas", DNSDeployment+"-"+strconv.Itoa(i), owner, "pod name ")
	}
	v.totalPods += d.Replicas
	if n := len(v.s.Lab.Spec.Nodes); n > 0 {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		v.groups = append(v.groups, podGroup{pods: d.Replicas, nodes: all})
		if n == 1 && d.Replicas > 1 {
			v.warnf(w, "spec.dns.replicas", "the lab has one node: its %d DNS pods all run on it", d.Replicas)
		}
	}
	if v.svc.IsValid() {
		if size(v.svc) < DNSServiceHost+2 {
			v.errf(w, "spec.network.serviceCIDR", "%s has no tenth address for the cluster DNS's Service %s/%s", v.svc, DNSNamespace, DNSService)
			return
		}
		v.clusterIPs[host(v.svc, DNSServiceHost)] = fmt.Sprintf("Service %s/%s, the cluster DNS", DNSNamespace, DNSService)
	}
}

// isDomain reports whether s is a DNS name of lowercase labels (a final dot allowed).
func isDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}

// dnsService reports a Service that takes the cluster DNS's name.
func (v *validator) dnsService(w where, ns, name string) {
	if v.s.Lab.Spec.DNSEnabled() && ns == DNSNamespace && name == DNSService {
		v.errf(w, "metadata.name", "%s/%s is the cluster DNS's Service; set spec.dns.enabled: false in the Lab to define your own", ns, name)
	}
}
