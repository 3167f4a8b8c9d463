package plan

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/netlabdev/netlab/netlab/scenario"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
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
	// dnsSource names where the cluster DNS's objects come from in problems.
	dnsSource = "<cluster DNS>"
)

// DNS is the lab's cluster DNS.
type DNS struct {
	ClusterDomain string `json:"clusterDomain"`
	// ServiceIP is kube-dns's ClusterIP, every pod's and node's nameserver.
	ServiceIP string `json:"serviceIP"`
	Service   string `json:"service"` // kube-system/kube-dns
	Replicas  int    `json:"replicas"`
}

// dnsObjects returns the cluster DNS's Deployment and Service when the lab runs one.
func dnsObjects(s *scenario.Scenario, svcCIDR netip.Prefix) (*DNS, []scenario.Deployment, []scenario.Service) {
	spec := s.Lab.Spec
	if !spec.DNSEnabled() {
		return nil, nil, nil
	}
	ip := nth(svcCIDR, scenario.DNSServiceHost)
	d := &DNS{ClusterDomain: dnsDomain(spec.DNS.ClusterDomain), ServiceIP: ip.String(),
		Service: scenario.DNSNamespace + "/" + scenario.DNSService, Replicas: spec.DNS.Replicas}
	labels := map[string]string{DNSLabelKey: DNSLabelValue}
	replicas := int32(spec.DNS.Replicas)
	dep := appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: scenario.DNSDeployment, Namespace: scenario.DNSNamespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "coredns",
					Ports: []corev1.ContainerPort{
						{Name: "dns", ContainerPort: DNSPort, Protocol: corev1.ProtocolUDP},
						{Name: "dns-tcp", ContainerPort: DNSPort, Protocol: corev1.ProtocolTCP},
					},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
						HTTPGet: &corev1.HTTPGetAction{Path: DNSReadyPath, Port: intstr.FromInt32(DNSReadyPort)}}},
				}}},
			},
		},
	}
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: scenario.DNSService, Namespace: scenario.DNSNamespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: ip.String(), Selector: labels,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: DNSPort, TargetPort: intstr.FromInt32(DNSPort), Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: DNSPort, TargetPort: intstr.FromInt32(DNSPort), Protocol: corev1.ProtocolTCP},
			},
		},
	}
	src := scenario.Source{File: dnsSource}
	return d, []scenario.Deployment{{Deployment: dep, Source: src}}, []scenario.Service{{Service: svc, Source: src}}
}

func dnsDomain(d string) string {
	if d == "" {
		return scenario.DNSDomain
	}
	if d[len(d)-1] == '.' {
		return d[:len(d)-1]
	}
	return d
}

// resolvConfs writes every pod's and node's resolver configuration, as kubelet gives a
// pod with dnsPolicy ClusterFirst: the cluster DNS, the namespace's search path, ndots:5.
// Clients stand for the internet: their resolver points at their own loopback, so a name
// that /etc/hosts does not hold fails at once and no query leaves the lab.
func (b *builder) resolvConfs() {
	p := b.p
	for _, c := range p.Clients {
		p.ResolvConfs = append(p.ResolvConfs, ResolvConf{Netns: c.Netns,
			Content: "# netlab client: Ingress hosts come from /etc/hosts; no cluster DNS, nothing asked outside the lab\nnameserver 127.0.0.1\n"})
	}
	if p.DNS == nil {
		return
	}
	d := p.DNS.ClusterDomain
	for _, n := range p.Nodes {
		p.ResolvConfs = append(p.ResolvConfs, ResolvConf{Netns: n.Netns, Content: p.DNS.resolvConf("svc." + d + " " + d)})
	}
	for _, pod := range p.Pods {
		p.ResolvConfs = append(p.ResolvConfs, p.podResolvConf(pod))
	}
}

func (dns *DNS) resolvConf(search string) string {
	return fmt.Sprintf("# netlab: the cluster DNS (Service %s)\nsearch %s\nnameserver %s\noptions ndots:5\n", dns.Service, search, dns.ServiceIP)
}

// podResolvConf is a pod's resolv.conf (the plan has a cluster DNS).
func (p *Plan) podResolvConf(pod Pod) ResolvConf {
	d := p.DNS.ClusterDomain
	return ResolvConf{Netns: pod.Netns, Content: p.DNS.resolvConf(pod.Namespace + ".svc." + d + " svc." + d + " " + d)}
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
