package plan

import "encoding/json"

// Plan is the desired state of one lab.
type Plan struct {
	Lab     string  `json:"lab"`
	Network Network `json:"network"`

	Switches []Switch `json:"switches"`
	LB       LB       `json:"loadBalancer"`
	Nodes    []Node   `json:"nodes"`
	Pods     []Pod    `json:"pods"`
	Clients  []Client `json:"clients"`

	Ingress IngressConfig `json:"ingress"`
	// KubeProxy is how every node's kube-proxy agent programs Services.
	KubeProxy KubeProxyConfig `json:"kubeProxy"`
	// DNS is the cluster DNS; nil when the Lab turns it off.
	DNS *DNS `json:"dns,omitempty"`

	Services  []Service  `json:"services,omitempty"`
	Ingresses []Ingress  `json:"ingresses,omitempty"`
	TLS       []TLSEntry `json:"tls,omitempty"`

	// Deployments and Secrets as the live changes need them (apply, scale, rollout).
	Deployments []Deployment `json:"deployments,omitempty"`
	Secrets     []SecretRef  `json:"secrets,omitempty"`

	Links     []Link      `json:"links"`
	Neighbors []Neighbor  `json:"neighbors,omitempty"`
	FDB       []FDBEntry  `json:"fdb,omitempty"`
	Routes    []Route     `json:"routes"`
	Sysctls   []Sysctl    `json:"sysctls"`
	Hosts     []HostsFile `json:"hostsFiles,omitempty"`
	// ResolvConfs are the pods', nodes' and clients' /etc/netns/<ns>/resolv.conf.
	ResolvConfs []ResolvConf `json:"resolvConfs,omitempty"`
	Processes   []Process    `json:"processes"`

	Warnings []string `json:"warnings,omitempty"`

	// Checks are the scenario's own checks (Lab.spec.checks), which netlab check runs:
	// each a scenario.Check as JSON (this package does not import the scenario's, which
	// needs the Kubernetes types; the agents read plans and must not).
	Checks []json.RawMessage `json:"checks,omitempty"`
}

// Network is the resolved address plan.
type Network struct {
	Mode               string `json:"mode"`
	WanCIDR            string `json:"wanCIDR"`
	NodeCIDR           string `json:"nodeCIDR"`
	PodCIDR            string `json:"podCIDR"`
	ServiceCIDR        string `json:"serviceCIDR"`
	NodePortRange      string `json:"nodePortRange"`
	ClientRoutesToPods bool   `json:"clientRoutesToPods,omitempty"`
}

// KubeProxyConfig is the kube-proxy agents' configuration.
type KubeProxyConfig struct {
	// Mode is "iptables" or "nftables" ("" reads as iptables, for plans written before
	// the field existed).
	Mode string `json:"mode"`
}

// NFTables reports whether the lab's kube-proxy runs in nftables mode.
func (p *Plan) NFTables() bool { return p.KubeProxy.Mode == "nftables" }

// IngressConfig is what every node's ingress agent serves.
type IngressConfig struct {
	ClassName string `json:"className"`
	// Upstream is the lab-wide upstream mode ("service" or "endpoints"; "" is
	// "service"); an Ingress's netlab.dev/upstream annotation overrides it.
	Upstream    string `json:"upstream,omitempty"`
	HTTPPort    int    `json:"httpPort"`
	HTTPSPort   int    `json:"httpsPort"`
	MetricsPort int    `json:"metricsPort"`
	// UseForwardedHeaders: the ingress keeps clients' X-Forwarded-For (a client's
	// X-Request-ID is kept either way).
	UseForwardedHeaders bool `json:"useForwardedHeaders,omitempty"`
	// Classes are more class names served besides ClassName: the scenario's
	// IngressClasses whose spec.controller is the lab's (netlab.dev/ingress-controller).
	Classes []string `json:"classes,omitempty"`
	// IgnoreWithoutClass: the default IngressClass is another controller's, so Ingresses
	// naming no class are not served.
	IgnoreWithoutClass bool `json:"ignoreWithoutClass,omitempty"`
	// DefaultClass names that default IngressClass (set only with IgnoreWithoutClass),
	// for status to say why such an Ingress is not served.
	DefaultClass string `json:"defaultClass,omitempty"`
	// Workers is the number of the ingress agent's worker processes per node ("" is one,
	// "auto" one per CPU): the agent's --workers.
	Workers string `json:"workers,omitempty"`
}

// UpstreamOf is the upstream mode of an Ingress with these annotations: its
// netlab.dev/upstream annotation, else the lab's, else "service".
func (p *Plan) UpstreamOf(annotations map[string]string) string {
	if v := annotations[AnnotationUpstream]; v != "" {
		return v
	}
	if p.Ingress.Upstream != "" {
		return p.Ingress.Upstream
	}
	return UpstreamService
}

// The upstream modes of an Ingress, and its annotation (scenario's AnnotationUpstream,
// UpstreamService and UpstreamEndpoints: a test holds them equal).
const (
	AnnotationUpstream = "netlab.dev/upstream"
	UpstreamService    = "service"
	UpstreamEndpoints  = "endpoints"
)

// Switch is a Linux bridge living alone in its own namespace (wan, fabric).
type Switch struct {
	Name   string `json:"name"`
	Netns  string `json:"namespace"`
	Bridge string `json:"bridge"`
}

// LB is the external load balancer's box.
type LB struct {
	Netns       string        `json:"namespace"`
	WanIP       string        `json:"wanIP"`    // CIDR form
	FabricIP    string        `json:"fabricIP"` // CIDR form; the nodes' default gateway
	VIP         string        `json:"vip"`      // the ingress VIP
	Scheduler   string        `json:"scheduler"`
	Persistence string        `json:"persistence"`
	HealthCheck HealthCheck   `json:"healthCheck"`
	VIPs        []VirtualServ `json:"virtualServices"`
	// ExposeNodes: clients may reach the nodes' ingress ports and NodePorts, not only
	// the VIPs (Lab.spec.loadBalancer.exposeNodes).
	ExposeNodes bool `json:"exposeNodes"`
}

// HealthCheck is the LB's real-server check.
type HealthCheck struct {
	Type     string `json:"type"`
	Path     string `json:"path"`
	Interval string `json:"interval"`
	Timeout  string `json:"timeout"`
	Rise     int    `json:"rise"`
	Fall     int    `json:"fall"`
	Inhibit  bool   `json:"inhibit"`
	// Ingress is the check of the ingress virtual services: http (the ingress's /healthz
	// on its health port) or tcp.
	Ingress string `json:"ingress,omitempty"`
}

// VirtualServ is one VIP:port of the LB and the node port its real servers listen on.
type VirtualServ struct {
	Name        string `json:"name"` // "ingress-http", "default/shop:http"
	IP          string `json:"ip"`
	Port        int32  `json:"port"`
	Protocol    string `json:"protocol"`
	Scheduler   string `json:"scheduler"`
	Persistence string `json:"persistence"`
	NodePort    int32  `json:"nodePort"` // real server port on every node
	// CheckPort, when set, is what the health check probes on every node instead of
	// NodePort (a Service's healthCheckNodePort with externalTrafficPolicy: Local).
	CheckPort int32  `json:"checkPort,omitempty"`
	CheckPath string `json:"checkPath,omitempty"`
	Service   string `json:"service,omitempty"` // namespace/name for LoadBalancer Services
	// SourceRanges are the Service's loadBalancerSourceRanges: the only clients the VIP
	// accepts (empty: every client).
	SourceRanges []string `json:"sourceRanges,omitempty"`
}

// Node is a worker node.
type Node struct {
	Name    string `json:"name"`
	Netns   string `json:"namespace"`
	IP      string `json:"ip"`      // CIDR form on the fabric
	PodCIDR string `json:"podCIDR"` // this node's slice
	Gateway string `json:"cni0"`    // cni0 address, CIDR form
	// BridgeMAC is cni0's address, fixed so that pods can hold a permanent entry for it.
	BridgeMAC string            `json:"cni0MAC"`
	Labels    map[string]string `json:"labels,omitempty"`
	Weight    int               `json:"weight"`
	// VTEP is the node's VXLAN endpoint in vxlan mode (nil in host-gw mode).
	VTEP *VTEP `json:"vtep,omitempty"`
}

// VTEP is a node's VXLAN device, as flannel's vxlan backend makes it: a device in the node
// namespace with the node's slice's network address as a /32, learning off; other nodes'
// slices are routed onlink to their VTEP addresses, whose MACs and node IPs are written
// as permanent neighbour and FDB entries.
type VTEP struct {
	Dev  string `json:"dev"`  // flannel.1
	VNI  int    `json:"vni"`  // 1
	Port int    `json:"port"` // UDP 8472, flannel's
	Addr string `json:"addr"` // CIDR form, the slice's .0/32
	MAC  string `json:"mac"`
	MTU  int    `json:"mtu"` // 1450: 50 bytes of VXLAN, UDP, IP and Ethernet headers
}

// FDBEntry is a permanent bridge forwarding entry of a VXLAN device: frames for MAC go
// to the VTEP at Dst.
type FDBEntry struct {
	Netns string `json:"namespace"`
	Dev   string `json:"dev"`
	MAC   string `json:"mac"`
	Dst   string `json:"dst"`
}

// Pod is one replica of a Deployment.
type Pod struct {
	Name       string            `json:"name"`
	Namespace  string            `json:"k8sNamespace"`
	Deployment string            `json:"deployment"`
	Netns      string            `json:"namespace"`
	Node       string            `json:"node"`
	IP         string            `json:"ip"` // CIDR form
	Gateway    string            `json:"gateway"`
	HostVeth   string            `json:"hostVeth"`
	MAC        string            `json:"mac"` // of the pod's eth0
	Labels     map[string]string `json:"labels,omitempty"`
	Ports      []ContainerPort   `json:"ports"`
	Probe      Probe             `json:"readiness"`
	// Template is the hash of the Deployment's pod template this pod was made from.
	Template string `json:"template,omitempty"`
	// Terminating: the pod is leaving (SIGTERM sent or about to be); its endpoints are
	// ready: false, serving while it answers, terminating: true.
	Terminating bool `json:"terminating,omitempty"`
	// GraceSeconds is terminationGracePeriodSeconds; PreStopSleep a preStop `sleep N`.
	GraceSeconds int64 `json:"terminationGracePeriodSeconds,omitempty"`
	PreStopSleep int64 `json:"preStopSleepSeconds,omitempty"`
	// Agent is the process the pod runs: "" the echo agent, "dns" the cluster DNS's.
	Agent string `json:"agent,omitempty"`
	// Hostname and Subdomain are the template's: the pod's endpoint of the headless
	// Service named Subdomain (its namespace's) is named Hostname in the cluster DNS.
	Hostname  string `json:"hostname,omitempty"`
	Subdomain string `json:"subdomain,omitempty"`
}

// ContainerPort is a port a pod's agent serves.
type ContainerPort struct {
	Name     string `json:"name,omitempty"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
}

// Probe is how readiness is checked.
type Probe struct {
	Type   string `json:"type"` // http | tcp
	Port   int32  `json:"port"`
	Path   string `json:"path,omitempty"`
	Period string `json:"period"`
}

// Client is a host on the wan.
type Client struct {
	Name  string `json:"name"`
	Netns string `json:"namespace"`
	IP    string `json:"ip"` // CIDR form
}

// Service is a Kubernetes Service with its allocations.
type Service struct {
	Namespace      string            `json:"namespace"`
	Name           string            `json:"name"`
	Type           string            `json:"type"`
	ClusterIP      string            `json:"clusterIP"`
	Selector       map[string]string `json:"selector"`
	Ports          []ServicePort     `json:"ports"`
	LoadBalancerIP string            `json:"loadBalancerIP,omitempty"`
	ExternalIPs    []string          `json:"externalIPs,omitempty"`
	// LoadBalancerSourceRanges are the CIDRs allowed to reach the LoadBalancer IP
	// (canonical form); empty allows every source.
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`
	ExternalTrafficLocal     bool     `json:"externalTrafficLocal,omitempty"`
	InternalTrafficLocal     bool     `json:"internalTrafficLocal,omitempty"`
	HealthCheckNodePort      int32    `json:"healthCheckNodePort,omitempty"`
	SessionAffinityClient    bool     `json:"sessionAffinityClientIP,omitempty"`
	AffinitySeconds          int32    `json:"affinitySeconds,omitempty"`
	LBScheduler              string   `json:"lbScheduler,omitempty"`
	LBPersistence            string   `json:"lbPersistence,omitempty"`
	// ExternalName is an ExternalName Service's CNAME target (no ClusterIP, no rules).
	ExternalName string `json:"externalName,omitempty"`
	// PublishNotReady is spec.publishNotReadyAddresses: every endpoint counts as ready.
	PublishNotReady bool `json:"publishNotReadyAddresses,omitempty"`
	// TolerateUnready is the annotation service.alpha.kubernetes.io/tolerate-unready-endpoints
	// set to true. The DNS specification counts such a Service's endpoints ready, so the
	// cluster DNS publishes them all; kube-proxy and status do not read it (Kubernetes'
	// endpoints controller dropped it in 1.24, and the EndpointSlice controller that
	// kube-proxy reads never had it).
	TolerateUnready bool `json:"tolerateUnreadyEndpoints,omitempty"`
	// Endpoints lists every selected pod's address for each port (readiness is live state).
	Endpoints []Endpoint `json:"endpoints"`
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name       string `json:"name,omitempty"`
	Port       int32  `json:"port"`
	TargetPort string `json:"targetPort"` // as written: number or name
	NodePort   int32  `json:"nodePort,omitempty"`
	Protocol   string `json:"protocol"`
}

// Endpoint is a selected pod's address for one Service port; a headless Service without
// ports has one endpoint per pod with no port (Port 0, no protocol), for the DNS alone.
type Endpoint struct {
	PortName string `json:"portName,omitempty"`
	Pod      string `json:"pod"`
	Node     string `json:"node"`
	IP       string `json:"ip"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
	// Hostname is the pod's hostname when its subdomain is this Service (EndpointHostname).
	Hostname string `json:"hostname,omitempty"`
}

// Ingress is an Ingress object kept whole for the ingress agents (they do the matching).
type Ingress struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Object is the networking.k8s.io/v1 Ingress as JSON.
	Object []byte `json:"object"`
	// Created orders Ingresses by creation, as creationTimestamp does on a cluster: 0 for
	// the Ingresses the lab came up with; an apply gives the Ingresses it creates one more
	// than the newest of the running lab, and an Ingress keeps its number while it exists.
	// Conflicting rules and default backends go to the oldest (ingress-nginx's order).
	Created int `json:"created,omitempty"`
}

// TLSEntry is certificate material the ingress serves.
type TLSEntry struct {
	Hosts  []string `json:"hosts"`
	Secret string   `json:"secret,omitempty"` // namespace/name of a kubernetes.io/tls Secret
	Cert   []byte   `json:"cert,omitempty"`   // PEM from that Secret
	Key    []byte   `json:"key,omitempty"`
}

// Link is a veth pair. A end and B end live in namespaces; an end with Master is enslaved
// to that bridge in its namespace.
type Link struct {
	A LinkEnd `json:"a"`
	B LinkEnd `json:"b"`
}

// LinkEnd is one end of a veth pair.
type LinkEnd struct {
	Netns  string   `json:"namespace"`
	Name   string   `json:"name"`
	MAC    string   `json:"mac,omitempty"`
	MTU    int      `json:"mtu,omitempty"`   // both ends; 0: the kernel's 1500
	Addrs  []string `json:"addrs,omitempty"` // CIDR form
	Master string   `json:"master,omitempty"`
}

// Neighbor is a permanent neighbour (ARP) entry inside a namespace. The kernel's
// neighbour table is shared by every namespace of the machine and has a global size limit
// (gc_thresh3, 1024 by default); permanent entries are exempt from it. A pod and its node
// reach each other through such entries, so a lab of hundreds of pods does not crowd the
// host's own ARP cache.
type Neighbor struct {
	Netns string `json:"namespace"`
	Dev   string `json:"dev"`
	IP    string `json:"ip"`
	MAC   string `json:"mac"`
}

// Route is a route inside a namespace. Dst "default" for the default route.
type Route struct {
	Netns  string `json:"namespace"`
	Dst    string `json:"dst"`
	Via    string `json:"via,omitempty"`
	Dev    string `json:"dev,omitempty"`
	Onlink bool   `json:"onlink,omitempty"` // the gateway is on Dev whatever its address
}

// Sysctl is a sysctl inside a lab namespace (never the root namespace).
type Sysctl struct {
	Netns string `json:"namespace"`
	Key   string `json:"key"` // e.g. net.ipv4.ip_forward
	Value string `json:"value"`
}

// HostsFile is /etc/netns/<ns>/hosts, which `ip netns exec` bind-mounts over /etc/hosts.
type HostsFile struct {
	Netns   string `json:"namespace"`
	Content string `json:"content"`
}

// ResolvConf is /etc/netns/<ns>/resolv.conf, which `ip netns exec` bind-mounts over
// /etc/resolv.conf.
type ResolvConf struct {
	Netns   string `json:"namespace"`
	Content string `json:"content"`
}

// Headless says whether the Service has no ClusterIP of its own (clusterIP: None).
func (s *Service) Headless() bool { return s.ClusterIP == "None" }

// Process is an agent the lab runs, living entirely in Netns.
type Process struct {
	Role  string   `json:"role"` // pod, ingress, kube-proxy, lb, controller
	Name  string   `json:"name"` // object it serves: pod or node name, "lb", "controller"
	Netns string   `json:"namespace"`
	Args  []string `json:"args"` // after the netlab binary: agent <role> ...
}

// Namespaces lists every namespace of the plan in creation order.
func (p *Plan) Namespaces() []string {
	var out []string
	for _, s := range p.Switches {
		out = append(out, s.Netns)
	}
	out = append(out, p.LB.Netns)
	for _, n := range p.Nodes {
		out = append(out, n.Netns)
	}
	for _, c := range p.Clients {
		out = append(out, c.Netns)
	}
	for _, pod := range p.Pods {
		out = append(out, pod.Netns)
	}
	return out
}

// NetnsName is the contract name of a lab object's namespace: nl-<lab>-<object>.
func NetnsName(lab, object string) string { return "nl-" + lab + "-" + object }
