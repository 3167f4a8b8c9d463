package scenario

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
)

// APIVersion and KindLab identify the netlab object in a scenario file.
const (
	APIVersion = "netlab.dev/v1alpha1"
	KindLab    = "Lab"
)

// Lab describes what Kubernetes does not: nodes, clients, the address plan, the external
// load balancer and the pod network mode. Every field is optional.
type Lab struct {
	APIVersion string  `json:"apiVersion"`
	Kind       string  `json:"kind"`
	Metadata   LabMeta `json:"metadata,omitempty"`
	Spec       LabSpec `json:"spec,omitempty"`
}

// LabMeta is the Lab's metadata; only the name is used.
type LabMeta struct {
	Name string `json:"name,omitempty"`
}

// LabSpec is the body of the Lab object.
type LabSpec struct {
	// Nodes is either a count ("nodes: 3") or a list of node objects.
	Nodes        NodeList    `json:"nodes,omitempty"`
	Clients      []Client    `json:"clients,omitempty"`
	Network      Network     `json:"network,omitempty"`
	LoadBalancer LBSpec      `json:"loadBalancer,omitempty"`
	Ingress      IngressSpec `json:"ingress,omitempty"`
	KubeProxy    KubeProxy   `json:"kubeProxy,omitempty"`
	DNS          DNSSpec     `json:"dns,omitempty"`
	// Checks are what netlab check verifies after the lab's own health checks.
	Checks []Check `json:"checks,omitempty"`
}

// KubeProxy configures every node's kube-proxy agent.
type KubeProxy struct {
	// Mode is iptables (default) or nftables, as kube-proxy's --proxy-mode. A lab keeps
	// its mode: changing it means a new lab.
	Mode string `json:"mode,omitempty"`
}

// kube-proxy modes.
const (
	ProxyModeIPTables = "iptables"
	ProxyModeNFTables = "nftables"
)

// DNSSpec configures the cluster DNS: pods coredns-1..N in namespace kube-system behind
// Service kube-system/kube-dns at the tenth address of the service CIDR.
type DNSSpec struct {
	// Enabled runs the cluster DNS (default true).
	Enabled *bool `json:"enabled,omitempty"`
	// Replicas is the number of DNS pods (default 2, spread over the nodes).
	Replicas int `json:"replicas,omitempty"`
	// ClusterDomain is the cluster's DNS domain (default cluster.local).
	ClusterDomain string `json:"clusterDomain,omitempty"`
}

// The cluster DNS's objects, named as kubeadm's CoreDNS add-on names them.
const (
	DNSNamespace   = "kube-system"
	DNSService     = "kube-dns"
	DNSDeployment  = "coredns"
	DNSDomain      = "cluster.local"
	DNSReplicas    = 2
	MaxDNSReplicas = 8
	// DNSServiceHost is kube-dns's host number in the service CIDR (10.96.0.10); the
	// ClusterIP allocator never hands it out.
	DNSServiceHost = 10
)

// DNSEnabled says whether the lab runs its cluster DNS.
func (s *LabSpec) DNSEnabled() bool { return s.DNS.Enabled == nil || *s.DNS.Enabled }

// Node is one worker node.
type Node struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// Weight is the node's weight on the external load balancer (wrr); default 1.
	Weight *int `json:"weight,omitempty"`
}

// NodeList decodes from a number (that many nodes named node-1..node-N) or a list.
type NodeList []Node

// UnmarshalJSON accepts either an integer count or a list of nodes. Unknown fields of a
// node are errors (the Lab object is decoded strictly).
func (n *NodeList) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*n = nil
		return nil
	}
	if len(s) > 0 && s[0] != '[' {
		var count int
		if err := json.Unmarshal(b, &count); err != nil {
			return &fieldError{Field: "spec.nodes", Msg: "must be a count or a list of nodes, got " + s}
		}
		if count < 1 || count > MaxNodes {
			return &fieldError{Field: "spec.nodes", Msg: fmt.Sprintf("count %d is out of range 1..%d", count, MaxNodes)}
		}
		list := make(NodeList, count)
		for i := range list {
			list[i].Name = fmt.Sprintf("node-%d", i+1)
		}
		*n = list
		return nil
	}
	var list []Node
	strict, err := kjson.UnmarshalStrict(b, &list)
	if err != nil {
		return &fieldError{Field: "spec.nodes", Msg: err.Error()}
	}
	if len(strict) > 0 {
		field, msg := strictField(strict[0])
		return &fieldError{Field: "spec.nodes" + field, Msg: msg}
	}
	*n = list
	return nil
}

// Client is a host on the wan segment ("the internet").
type Client struct {
	Name string `json:"name"`
	// IP on the wan segment; default: the next free address from .2.
	IP string `json:"ip,omitempty"`
}

// Pod network modes.
const (
	ModeHostGW = "host-gw"
	ModeVXLAN  = "vxlan"
)

// Network is the lab's address plan.
type Network struct {
	Mode        string `json:"mode,omitempty"`
	WanCIDR     string `json:"wanCIDR,omitempty"`
	NodeCIDR    string `json:"nodeCIDR,omitempty"`
	PodCIDR     string `json:"podCIDR,omitempty"`
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// NodePodMaskSize is the prefix length of each node's slice of the pod CIDR (default 24).
	NodePodMaskSize int `json:"nodePodMaskSize,omitempty"`
	// ClientRoutesToPods gives clients a route to the pod network through the LB, as some
	// flat-network setups have; off by default (clients reach only the nodes and VIPs).
	ClientRoutesToPods bool `json:"clientRoutesToPods,omitempty"`
}

// LBSpec configures the external L4 load balancer.
type LBSpec struct {
	// VIP is the ingress VIP; LoadBalancer Services get the next free addresses.
	VIP         string           `json:"vip,omitempty"`
	Scheduler   string           `json:"scheduler,omitempty"`
	Persistence *metav1.Duration `json:"persistence,omitempty"`
	HealthCheck HealthCheck      `json:"healthCheck,omitempty"`
	// ExposeNodes lets clients reach each node's ingress ports (80/443) and NodePort range
	// through the LB, as a cloud security group that allows them would (default true);
	// false leaves them only the VIPs. Nothing else on a node is reachable from a client.
	ExposeNodes *bool `json:"exposeNodes,omitempty"`
}

// HealthCheck is a keepalived-style real-server check.
type HealthCheck struct {
	Type     string           `json:"type,omitempty"` // tcp | http
	Path     string           `json:"path,omitempty"`
	Interval *metav1.Duration `json:"interval,omitempty"`
	Timeout  *metav1.Duration `json:"timeout,omitempty"`
	Rise     int              `json:"rise,omitempty"`
	Fall     int              `json:"fall,omitempty"`
	Inhibit  bool             `json:"inhibit,omitempty"`
	// Ingress is how the ingress virtual services (80/443 on every node) are checked:
	// http (default) — a GET of the ingress's /healthz on its health port (10254, as
	// ingress-nginx's), which a hung proxy fails; tcp — a connect to the real server's
	// port, which the kernel completes even for a stopped process.
	Ingress string `json:"ingress,omitempty"`
}

// IngressSpec configures the ingress agent that runs in every node.
type IngressSpec struct {
	// ClassName is the IngressClass this lab's controller serves (default "netlab").
	// Ingresses naming another class are ignored with a warning.
	ClassName string `json:"className,omitempty"`
	// Upstream is how the ingress reaches a backend Service, lab-wide (an Ingress may
	// choose for itself with the annotation netlab.dev/upstream): "service" (default) sends
	// to the Service's ClusterIP and kube-proxy picks a pod per connection; "endpoints"
	// balances every request over the Service's ready endpoints itself, as ingress-nginx,
	// Traefik and Envoy-based controllers do by default.
	Upstream    string `json:"upstream,omitempty"`
	HTTPPort    int    `json:"httpPort,omitempty"`
	HTTPSPort   int    `json:"httpsPort,omitempty"`
	MetricsPort int    `json:"metricsPort,omitempty"`
	// UseForwardedHeaders trusts what clients send in X-Forwarded-For (ingress-nginx's
	// use-forwarded-headers), for clients that are proxies of one's own. Off by default:
	// clients stand for the internet, and the address chain they send is replaced. (A
	// client's X-Request-ID is kept either way, as ingress-nginx keeps it.)
	UseForwardedHeaders bool `json:"useForwardedHeaders,omitempty"`
	// Workers is how many worker processes serve each node's ingress ports (nginx's
	// worker_processes): a number from 1 to MaxIngressWorkers, or "auto" for one per CPU
	// of the host. Unset is 1: one process, the bring-up of today. With more than one, the
	// node's ingress agent supervises them; each runs on one Go processor with listeners
	// of its own on the node's ports (SO_REUSEPORT: the kernel spreads the connections).
	Workers *intstr.IntOrString `json:"workers,omitempty"`
}

// IngressWorkersAuto asks for one ingress worker per CPU; MaxIngressWorkers bounds a
// number given.
const (
	IngressWorkersAuto = "auto"
	MaxIngressWorkers  = 64
)

// IngressWorkers is spec.ingress.workers as the plan carries it: "" for one (unset or
// 1, alike: adding the default to a file changes nothing), "auto", or the number.
func (in IngressSpec) IngressWorkers() string {
	if in.Workers == nil || in.Workers.String() == "1" {
		return ""
	}
	return in.Workers.String()
}

// workersProblem says what is wrong with spec.ingress.workers ("" when nothing is).
func workersProblem(w *intstr.IntOrString) string {
	if w == nil {
		return ""
	}
	if w.Type == intstr.Int {
		if w.IntVal >= 1 && w.IntVal <= MaxIngressWorkers {
			return ""
		}
		return fmt.Sprintf("must be a number from 1 to %d or %q, got %d", MaxIngressWorkers, IngressWorkersAuto, w.IntVal)
	}
	if w.StrVal == IngressWorkersAuto {
		return ""
	}
	return fmt.Sprintf("must be a number from 1 to %d or %q, got %q", MaxIngressWorkers, IngressWorkersAuto, w.StrVal)
}

// Source says where an object came from.
type Source struct {
	File string // file name as given, "<default>" for the embedded scenario
	Doc  int    // 1-based document index within the file
}

// Deployment, Service, Ingress and Secret carry a Kubernetes object and where it came from.
type (
	Deployment struct {
		appsv1.Deployment
		Source Source
	}
	Service struct {
		corev1.Service
		Source Source
	}
	Ingress struct {
		netv1.Ingress
		Source Source
	}
	Secret struct {
		corev1.Secret
		Source Source
	}
	// IngressClass is cluster-scoped: its namespace is ignored.
	IngressClass struct {
		netv1.IngressClass
		Source Source
	}
)

// Scenario is everything a lab is built from.
type Scenario struct {
	Lab         Lab
	LabSource   Source // zero when the scenario has no Lab object
	Deployments []Deployment
	Services    []Service
	Ingresses   []Ingress
	Secrets     []Secret
	// IngressClasses say which classes the lab's ingress serves (their spec.controller)
	// and which class is the default (ingressclass.kubernetes.io/is-default-class).
	IngressClasses []IngressClass
	// Warnings lists what the lab reads but does not model (never dropped silently).
	// Parse adds decoding warnings (unknown fields); Validate adds the rest. Both keep
	// it free of duplicates and sorted like Problems.
	Warnings Problems
	// Files lists the scenario's files in the order they were read; it orders Problems.
	Files []string
}

// Limits checked at validation time.
const (
	MaxNodes     = 64
	MaxLabName   = 24 // keeps nl-<lab>-<object> readable
	MaxIfaceName = 15 // IFNAMSIZ-1: node and client names become interface names
	MaxPodName   = 40 // <deployment>-<i>
	MaxPods      = 2000
	DefaultLab   = "demo"
	// NodePortMin and NodePortMax bound Service nodePorts (the Kubernetes default range).
	NodePortMin = 30000
	NodePortMax = 32767
	// FirstNodeHost is the host number of the first node on the node network (.11);
	// the LB is .1 on both the wan and the node network.
	FirstNodeHost = 11
	// PodSliceReserved is the number of addresses of a node's pod slice no pod gets:
	// the network address, the cni0 gateway (.1) and the broadcast address.
	PodSliceReserved = 3
)

// ReservedNames are object names the lab uses itself (namespaces nl-<lab>-lb, -wan,
// -fabric); no node, client or pod may take them.
var ReservedNames = map[string]string{
	"lb":     "the load balancer",
	"wan":    "the wan bridge",
	"fabric": "the fabric bridge",
}

// Annotations a LoadBalancer Service may carry.
const (
	AnnotationLBScheduler   = "netlab.dev/lb-scheduler"
	AnnotationLBPersistence = "netlab.dev/lb-persistence"
)

// AnnotationTolerateUnready is the old form of a Service's spec.publishNotReadyAddresses.
// The DNS specification still counts the endpoints of a Service with it set to "true" as
// ready; Kubernetes' endpoints controller dropped it in 1.24 and the EndpointSlice
// controller never read it, so only the cluster DNS follows it (plan.Service.TolerateUnready).
const AnnotationTolerateUnready = "service.alpha.kubernetes.io/tolerate-unready-endpoints"

// TolerateUnready says whether svc carries AnnotationTolerateUnready set to a true boolean
// (a value that is not a boolean is ignored, with a warning).
func TolerateUnready(svc *corev1.Service) bool {
	b, err := strconv.ParseBool(svc.Annotations[AnnotationTolerateUnready])
	return err == nil && b
}

// AnnotationUpstream on an Ingress chooses how the ingress reaches its Services
// (UpstreamService or UpstreamEndpoints), overriding the Lab's spec.ingress.upstream.
const AnnotationUpstream = "netlab.dev/upstream"

// Upstream modes of the ingress.
const (
	UpstreamService   = "service"
	UpstreamEndpoints = "endpoints"
)

// LegacyIngressClassAnnotation names an Ingress's class before spec.ingressClassName;
// controllers still honour it when spec.ingressClassName is unset.
const LegacyIngressClassAnnotation = "kubernetes.io/ingress.class"

// upstreamProblem says what is wrong with an upstream mode ("" when it is fine).
func upstreamProblem(v string) string {
	if v == UpstreamService || v == UpstreamEndpoints {
		return ""
	}
	return fmt.Sprintf("must be %q or %q, got %q", UpstreamService, UpstreamEndpoints, v)
}

// IngressClassOf returns the class an Ingress asks for (spec.ingressClassName, else the
// legacy annotation) and whether it asks for one.
func IngressClassOf(in *netv1.Ingress) (string, bool) {
	if in.Spec.IngressClassName != nil {
		return *in.Spec.IngressClassName, true
	}
	if c, ok := in.Annotations[LegacyIngressClassAnnotation]; ok {
		return c, true
	}
	return "", false
}

// ServedBy reports whether the lab's ingress of class className serves in: it names
// that class, or no class at all (the lab's class is the cluster default).
func ServedBy(in *netv1.Ingress, className string) bool {
	return Serves(in, className, nil, false)
}

// Serves reports whether the lab's ingress serves in: it names className or one of
// classes (IngressClasses of the lab's controller), or names no class while
// ignoreWithoutClass is false (no default IngressClass of another controller).
func Serves(in *netv1.Ingress, className string, classes []string, ignoreWithoutClass bool) bool {
	c, ok := IngressClassOf(in)
	if !ok {
		return !ignoreWithoutClass
	}
	return c == className || slices.Contains(classes, c)
}

// IngressController is the spec.controller of an IngressClass the lab's ingress serves
// (ingress-nginx's is k8s.io/ingress-nginx).
const IngressController = "netlab.dev/ingress-controller"

// AnnotationDefaultIngressClass marks the cluster's default IngressClass: Ingresses
// naming no class belong to its controller.
const AnnotationDefaultIngressClass = "ingressclass.kubernetes.io/is-default-class"

// IngressClassPolicy is which Ingresses the lab's ingress serves, from the Lab's
// className and the scenario's IngressClasses.
type IngressClassPolicy struct {
	// Classes are the names of the IngressClasses whose controller is IngressController,
	// other than the Lab's spec.ingress.className (always served), sorted.
	Classes []string
	// IgnoreWithoutClass is true when the default IngressClass belongs to another
	// controller: Ingresses naming no class are then not the lab's.
	IgnoreWithoutClass bool
	// Default names the default IngressClass ("" when none is marked, or several are).
	Default string
}

// ClassPolicy computes which classes the lab's ingress serves. Without IngressClass
// objects (or without a default among them) Ingresses naming no class are served: the
// lab's class stands for the cluster default, as before IngressClasses were read.
func (s *Scenario) ClassPolicy() IngressClassPolicy {
	var p IngressClassPolicy
	var defaults []*IngressClass
	for i := range s.IngressClasses {
		ic := &s.IngressClasses[i]
		if ic.Spec.Controller == IngressController && ic.Name != s.Lab.Spec.Ingress.ClassName && !slices.Contains(p.Classes, ic.Name) {
			p.Classes = append(p.Classes, ic.Name)
		}
		if ic.Annotations[AnnotationDefaultIngressClass] == "true" {
			defaults = append(defaults, ic)
		}
	}
	slices.Sort(p.Classes)
	if len(defaults) == 1 {
		p.Default = defaults[0].Name
		p.IgnoreWithoutClass = defaults[0].Spec.Controller != IngressController
	}
	return p
}

// Problem is one thing wrong with (or one warning about) a scenario.
type Problem struct {
	File   string // source file
	Doc    int    // 1-based document within File (0: not from a document); orders Problems
	Object string // "Service default/web", "Lab demo"
	Field  string // JSON path within the object, may be empty
	Msg    string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(": ")
	}
	if p.Object != "" {
		b.WriteString(p.Object)
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is a list of problems; as an error it prints one per line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
