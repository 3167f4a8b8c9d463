package plan

import (
	"fmt"
	"strconv"
)

// The cluster DNS's pods, as kubeadm's CoreDNS add-on runs them.
const (
	// DNSAgent marks the pods whose process is the DNS agent rather than the echo agent.
	DNSAgent = "dns"
	// DNSReadyPort and DNSReadyPath are the readiness endpoint (CoreDNS's ready plugin).
	DNSReadyPort = 8181
	DNSReadyPath = "/ready"
	DNSPort      = 53
	// DNSLabel selects the DNS pods, as kube-dns selects CoreDNS's.
	DNSLabelKey   = "k8s-app"
	DNSLabelValue = "kube-dns"
)

// DNS is the lab's cluster DNS.
type DNS struct {
	ClusterDomain string `json:"clusterDomain"`
	// ServiceIP is kube-dns's ClusterIP, every pod's and node's nameserver.
	ServiceIP string `json:"serviceIP"`
	Service   string `json:"service"` // kube-system/kube-dns
	Replicas  int    `json:"replicas"`
}

// ResolvConf is a resolv.conf naming the cluster DNS, with this search path.
func (dns *DNS) ResolvConf(search string) string {
	return fmt.Sprintf("# netlab: the cluster DNS (Service %s)\nsearch %s\nnameserver %s\noptions ndots:5\n", dns.Service, search, dns.ServiceIP)
}

// NoDNSResolvConf is the resolv.conf of a namespace that has no DNS server to ask: the
// clients always (they stand for the internet, and their Ingress hosts come from
// /etc/hosts), pods and nodes when the lab runs no cluster DNS. It names the namespace's
// own loopback, so that a lookup fails at once instead of going to the host's resolver,
// an address outside the lab.
func NoDNSResolvConf(netns, comment string) ResolvConf {
	return ResolvConf{Netns: netns, Content: "# " + comment + "\nnameserver 127.0.0.1\n"}
}

// The comments of NoDNSResolvConf's files: a client's, and a pod's or node's in a lab
// without cluster DNS.
const (
	ClientResolvComment = "netlab client: Ingress hosts come from /etc/hosts; no cluster DNS, nothing asked outside the lab"
	NoClusterDNS        = "netlab: this lab runs no cluster DNS (Lab.spec.dns.enabled: false); nothing asked outside the lab"
)

// PodResolvConf is a pod's resolv.conf: the cluster DNS with the pod's search path, or,
// in a lab without one, NoDNSResolvConf.
func (p *Plan) PodResolvConf(pod Pod) ResolvConf {
	if p.DNS == nil {
		return NoDNSResolvConf(pod.Netns, NoClusterDNS)
	}
	d := p.DNS.ClusterDomain
	return ResolvConf{Netns: pod.Netns, Content: p.DNS.ResolvConf(pod.Namespace + ".svc." + d + " svc." + d + " " + d)}
}

// dnsProcesses: the DNS agent of each DNS pod, in the pod's namespace.
func dnsProcesses(p *Plan) []Process {
	if p.DNS == nil {
		return nil
	}
	var out []Process
	for _, pod := range p.Pods {
		if pod.Agent != DNSAgent {
			continue
		}
		out = append(out, Process{Role: "pod", Name: pod.Name, Netns: pod.Netns,
			Args: []string{"agent", "dns", "--lab", p.Lab, "--pod", pod.Name, "--node", pod.Node, "--ip", addrOf(pod.IP),
				"--port", strconv.Itoa(DNSPort), "--ready-port", strconv.Itoa(DNSReadyPort)}})
	}
	return out
}
