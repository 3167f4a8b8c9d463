package kubeproxy

// Node is the node whose rules are rendered.
type Node struct {
	// Name is the node name; endpoints whose Node equals it are local.
	Name string `json:"name"`
	// IP is the node's address on the node network.
	IP string `json:"ip"`
	// ClusterCIDR is the lab's pod CIDR, kube-proxy's --cluster-cidr: traffic to a
	// ClusterIP from outside it is masqueraded, and pod traffic to a Service's external
	// addresses short-circuits the Local external traffic policy. Empty disables both,
	// as kube-proxy does without a local-traffic detector.
	ClusterCIDR string `json:"clusterCIDR,omitempty"`
	// ServiceCIDR is the lab's service CIDR: nftables mode drops traffic to addresses in
	// it that no Service holds (kube-proxy's cluster-ips-check). Empty leaves that out.
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// NFAcct: the node has kube-proxy's nfacct counters (NFAcctInvalidDropped,
	// NFAcctLocalhostNodePorts), so the iptables mode counts into them as kube-proxy does:
	// the INVALID drop in KUBE-FORWARD, and a rule for NodePorts on 127.0.0.0/8 before
	// each NodePort rule. Without them, both are written as kube-proxy writes them then.
	NFAcct bool `json:"nfacct,omitempty"`
}

// kube-proxy's nfacct counters in iptables mode (its metrics package's names).
const (
	NFAcctInvalidDropped     = "ct_state_invalid_dropped_pkts"
	NFAcctLocalhostNodePorts = "localhost_nps_accepted_pkts"
)

// ServicePort is one port of one Service, with its endpoints: the unit kube-proxy
// programs (a proxy.ServicePortName plus its protocol).
type ServicePort struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// PortName is the Service port's name; empty for a single unnamed port.
	PortName string `json:"portName,omitempty"`
	// Protocol is TCP, UDP or SCTP (any case).
	Protocol  string `json:"protocol"`
	ClusterIP string `json:"clusterIP"`
	Port      int32  `json:"port"`
	// NodePort is 0 when the Service has none.
	NodePort        int32    `json:"nodePort,omitempty"`
	LoadBalancerIPs []string `json:"loadBalancerIPs,omitempty"`
	ExternalIPs     []string `json:"externalIPs,omitempty"`
	// LoadBalancerSourceRanges are the CIDRs allowed to reach the LoadBalancer IPs
	// (spec.loadBalancerSourceRanges); empty allows every source.
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`
	// ExternalLocal is externalTrafficPolicy: Local (only meaningful when the port is
	// reachable from outside: NodePort, LoadBalancer IPs or external IPs).
	ExternalLocal bool `json:"externalLocal,omitempty"`
	// InternalLocal is internalTrafficPolicy: Local.
	InternalLocal bool `json:"internalLocal,omitempty"`
	// HealthCheckNodePort is served by the node agent for ExternalLocal Services.
	HealthCheckNodePort int32 `json:"healthCheckNodePort,omitempty"`
	// AffinityClientIP is sessionAffinity: ClientIP, sticky for AffinitySeconds.
	AffinityClientIP bool       `json:"affinityClientIP,omitempty"`
	AffinitySeconds  int32      `json:"affinitySeconds,omitempty"`
	Endpoints        []Endpoint `json:"endpoints"`
}

// Endpoint is one backend address of a ServicePort (targetPort already resolved).
type Endpoint struct {
	Pod   string `json:"pod"`
	Node  string `json:"node"`
	IP    string `json:"ip"`
	Port  int32  `json:"port"`
	Ready bool   `json:"ready"`
	// Serving and Terminating are EndpointSlice's conditions: a pod leaving is not ready
	// but still serving while it answers. An endpoint that is not terminating serves
	// exactly when it is ready (Serving need not be set).
	Serving     bool `json:"serving,omitempty"`
	Terminating bool `json:"terminating,omitempty"`
}

// IsServing is EndpointSlice's serving condition.
func (e Endpoint) IsServing() bool { return e.Ready || e.Serving }

// ServingTerminating: a leaving pod that still answers. kube-proxy sends new connections
// to such endpoints only when a Service has no ready one (KEP-1669).
func (e Endpoint) ServingTerminating() bool { return e.Terminating && e.IsServing() && !e.Ready }

// ServicePortName is kube-proxy's proxy.ServicePortName string: "ns/name", plus
// ":portname" when the port has a name.
func (sp *ServicePort) ServicePortName() string {
	s := sp.Namespace + "/" + sp.Name
	if sp.PortName != "" {
		s += ":" + sp.PortName
	}
	return s
}

// ServiceName is "ns/name".
func (sp *ServicePort) ServiceName() string { return sp.Namespace + "/" + sp.Name }

// ExternallyAccessible mirrors kube-proxy's ServicePort.ExternallyAccessible.
func (sp *ServicePort) ExternallyAccessible() bool { return sp.externallyAccessible() }

// ExternalPolicyLocal is externalTrafficPolicy: Local on an externally accessible port.
func (sp *ServicePort) ExternalPolicyLocal() bool { return sp.externalPolicyLocal() }

// UsesClusterEndpoints and UsesLocalEndpoints mirror kube-proxy's methods.
func (sp *ServicePort) UsesClusterEndpoints() bool { return sp.usesClusterEndpoints() }

// UsesLocalEndpoints: see UsesClusterEndpoints.
func (sp *ServicePort) UsesLocalEndpoints() bool { return sp.usesLocalEndpoints() }

// externallyAccessible mirrors kube-proxy's ServicePort.ExternallyAccessible.
func (sp *ServicePort) externallyAccessible() bool {
	return sp.NodePort != 0 || len(sp.LoadBalancerIPs) > 0 || len(sp.ExternalIPs) > 0
}

func (sp *ServicePort) externalPolicyLocal() bool {
	return sp.ExternalLocal && sp.externallyAccessible()
}

// usesClusterEndpoints and usesLocalEndpoints mirror kube-proxy's methods of the same name.
// A port reachable from outside uses the cluster-wide endpoints whatever its policies:
// under an external Local policy, pods and the node still short-circuit to all of them.
func (sp *ServicePort) usesClusterEndpoints() bool {
	return !sp.InternalLocal || sp.externallyAccessible()
}

func (sp *ServicePort) usesLocalEndpoints() bool {
	return sp.InternalLocal || sp.externalPolicyLocal()
}
