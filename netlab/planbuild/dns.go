package planbuild

import (
	"net/netip"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// dnsSource names where the cluster DNS's objects come from in problems.
const dnsSource = "<cluster DNS>"

// dnsObjects returns the cluster DNS's Deployment and Service when the lab runs one.
func dnsObjects(s *scenario.Scenario, svcCIDR netip.Prefix) (*plan.DNS, []scenario.Deployment, []scenario.Service) {
	spec := s.Lab.Spec
	if !spec.DNSEnabled() {
		return nil, nil, nil
	}
	ip := nth(svcCIDR, scenario.DNSServiceHost)
	d := &plan.DNS{ClusterDomain: dnsDomain(spec.DNS.ClusterDomain), ServiceIP: ip.String(),
		Service: scenario.DNSNamespace + "/" + scenario.DNSService, Replicas: spec.DNS.Replicas}
	labels := map[string]string{plan.DNSLabelKey: plan.DNSLabelValue}
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
						{Name: "dns", ContainerPort: plan.DNSPort, Protocol: corev1.ProtocolUDP},
						{Name: "dns-tcp", ContainerPort: plan.DNSPort, Protocol: corev1.ProtocolTCP},
					},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
						HTTPGet: &corev1.HTTPGetAction{Path: plan.DNSReadyPath, Port: intstr.FromInt32(plan.DNSReadyPort)}}},
				}}},
			},
		},
	}
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: scenario.DNSService, Namespace: scenario.DNSNamespace, Labels: labels},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: ip.String(), Selector: labels,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: plan.DNSPort, TargetPort: intstr.FromInt32(plan.DNSPort), Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: plan.DNSPort, TargetPort: intstr.FromInt32(plan.DNSPort), Protocol: corev1.ProtocolTCP},
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
// that /etc/hosts does not hold fails at once and no query leaves the lab. Pods and nodes
// of a lab without cluster DNS get the same: the host's resolver is outside the lab.
func (b *builder) resolvConfs() {
	p := b.p
	for _, c := range p.Clients {
		p.ResolvConfs = append(p.ResolvConfs, plan.NoDNSResolvConf(c.Netns, plan.ClientResolvComment))
	}
	for _, n := range p.Nodes {
		if p.DNS == nil {
			p.ResolvConfs = append(p.ResolvConfs, plan.NoDNSResolvConf(n.Netns, plan.NoClusterDNS))
			continue
		}
		d := p.DNS.ClusterDomain
		p.ResolvConfs = append(p.ResolvConfs, plan.ResolvConf{Netns: n.Netns, Content: p.DNS.ResolvConf("svc." + d + " " + d)})
	}
	for _, pod := range p.Pods {
		p.ResolvConfs = append(p.ResolvConfs, p.PodResolvConf(pod))
	}
}
