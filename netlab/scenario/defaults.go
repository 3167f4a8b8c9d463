package scenario

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults of the address plan and the components (README: the Lab object).
const (
	DefaultWanCIDR      = "203.0.113.0/24"
	DefaultNodeCIDR     = "172.18.0.0/24"
	DefaultPodCIDR      = "10.244.0.0/16"
	DefaultServiceCIDR  = "10.96.0.0/12"
	DefaultVIP          = "203.0.113.100"
	DefaultScheduler    = "rr"
	DefaultIngressClass = "netlab"
	DefaultHTTPPort     = 80
	DefaultHTTPSPort    = 443
	DefaultMetricsPort  = 10254 // as ingress-nginx
	DefaultNodeMask     = 24
)

// ApplyDefaults fills every unset field of the Lab and the Kubernetes objects that the lab
// reads. It is idempotent.
func (s *Scenario) ApplyDefaults() {
	l := &s.Lab
	if l.APIVersion == "" {
		l.APIVersion = APIVersion
	}
	if l.Kind == "" {
		l.Kind = KindLab
	}
	if l.Metadata.Name == "" {
		l.Metadata.Name = DefaultLab
	}
	sp := &l.Spec
	if len(sp.Nodes) == 0 {
		sp.Nodes = NodeList{{Name: "node-1"}, {Name: "node-2"}}
	}
	for i := range sp.Nodes {
		if sp.Nodes[i].Weight == nil {
			w := 1
			sp.Nodes[i].Weight = &w
		}
	}
	if len(sp.Clients) == 0 {
		sp.Clients = []Client{{Name: "client"}}
	}
	n := &sp.Network
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&n.Mode, ModeHostGW)
	def(&s.Lab.Spec.KubeProxy.Mode, ProxyModeIPTables)
	def(&n.WanCIDR, DefaultWanCIDR)
	def(&n.NodeCIDR, DefaultNodeCIDR)
	def(&n.PodCIDR, DefaultPodCIDR)
	def(&n.ServiceCIDR, DefaultServiceCIDR)
	if n.NodePodMaskSize == 0 {
		n.NodePodMaskSize = DefaultNodeMask
	}
	lb := &sp.LoadBalancer
	def(&lb.VIP, DefaultVIP)
	def(&lb.Scheduler, DefaultScheduler)
	if lb.Persistence == nil {
		lb.Persistence = &metav1.Duration{}
	}
	if lb.ExposeNodes == nil {
		yes := true
		lb.ExposeNodes = &yes
	}
	hc := &lb.HealthCheck
	def(&hc.Type, "tcp")
	def(&hc.Path, "/healthz")
	def(&hc.Ingress, "http")
	if hc.Interval == nil {
		hc.Interval = &metav1.Duration{Duration: time.Second}
	}
	if hc.Timeout == nil {
		hc.Timeout = &metav1.Duration{Duration: 500 * time.Millisecond}
	}
	if hc.Rise == 0 {
		hc.Rise = 2
	}
	if hc.Fall == 0 {
		hc.Fall = 2
	}
	in := &sp.Ingress
	def(&in.ClassName, DefaultIngressClass)
	def(&in.Upstream, UpstreamService)
	if in.HTTPPort == 0 {
		in.HTTPPort = DefaultHTTPPort
	}
	if in.HTTPSPort == 0 {
		in.HTTPSPort = DefaultHTTPSPort
	}
	if in.MetricsPort == 0 {
		in.MetricsPort = DefaultMetricsPort
	}
	d := &sp.DNS
	if d.Enabled == nil {
		on := true
		d.Enabled = &on
	}
	if d.Replicas == 0 {
		d.Replicas = DNSReplicas
	}
	def(&d.ClusterDomain, DNSDomain)
	for i := range s.Deployments {
		if s.Deployments[i].Namespace == "" {
			s.Deployments[i].Namespace = "default"
		}
		if s.Deployments[i].Spec.Replicas == nil {
			r := int32(1)
			s.Deployments[i].Spec.Replicas = &r
		}
	}
	for i := range s.Services {
		if s.Services[i].Namespace == "" {
			s.Services[i].Namespace = "default"
		}
		for j := range s.Services[i].Spec.Ports {
			p := &s.Services[i].Spec.Ports[j]
			if p.Protocol == "" {
				p.Protocol = "TCP"
			}
			if p.TargetPort.IntVal == 0 && p.TargetPort.StrVal == "" {
				p.TargetPort.IntVal = p.Port
			}
		}
		if s.Services[i].Spec.Type == "" {
			s.Services[i].Spec.Type = "ClusterIP"
		}
	}
	for i := range s.Ingresses {
		if s.Ingresses[i].Namespace == "" {
			s.Ingresses[i].Namespace = "default"
		}
	}
	for i := range s.Secrets {
		if s.Secrets[i].Namespace == "" {
			s.Secrets[i].Namespace = "default"
		}
	}
}
