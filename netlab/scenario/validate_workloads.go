package scenario

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	msgPortName  = "must be an IANA service name (at most 15 lowercase letters, digits and '-', with at least one letter), got %q"
	msgPortRange = "must be between 1 and 65535, got %d"
)

// containerPort is one port of a pod template, found by number or name.
type containerPort struct {
	name  string
	port  int32
	proto corev1.Protocol
	field string
}

func protoOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// templatePorts lists a Deployment's valid container ports.
func templatePorts(d *Deployment) []containerPort {
	var out []containerPort
	for i, c := range d.Spec.Template.Spec.Containers {
		for j, p := range c.Ports {
			out = append(out, containerPort{name: p.Name, port: p.ContainerPort, proto: protoOf(p.Protocol),
				field: fmt.Sprintf("spec.template.spec.containers[%d].ports[%d]", i, j)})
		}
	}
	return out
}

// defined records ns/name of a kind and reports a duplicate.
func (v *validator) defined(w where, seen map[string]Source, kind, ns, name string, src Source) {
	if ns == "" {
		ns = "default"
	}
	key := ns + "/" + name
	if first, ok := seen[key]; ok {
		v.errf(w, "metadata.name", "%s %s is already defined in %s, document %d", kind, key, first.File, first.Doc)
		return
	}
	seen[key] = src
}

func (v *validator) deployment(d *Deployment) {
	w := objectWhere("Deployment", d.Namespace, d.Name, d.Source)
	v.unmodelled(w, "", d.Deployment, modelledObject)
	v.unmodelled(w, "metadata.", d.ObjectMeta, modelledMeta)
	v.unmodelled(w, "spec.", d.Spec, modelledDeploymentSpec)
	v.unmodelled(w, "spec.template.metadata.", d.Spec.Template.ObjectMeta, modelledTemplateMeta)
	v.unmodelled(w, "spec.template.spec.", d.Spec.Template.Spec, modelledPodSpec)

	nameOK := v.label(w, "metadata.name", d.Name, 63, "a DNS label")
	v.namespace(w, d.Namespace)
	if nameOK {
		v.defined(w, v.deployments, "Deployment", d.Namespace, d.Name, d.Source)
	}

	// Replicas and pod names <deployment>-<i>.
	replicas := 1
	if d.Spec.Replicas != nil {
		replicas = int(*d.Spec.Replicas)
	}
	if replicas < 0 {
		v.errf(w, "spec.replicas", "must be at least 0, got %d", replicas)
		replicas = 0
	}
	if v.totalPods+replicas > MaxPods && !v.podsCapped {
		v.errf(w, "spec.replicas", "the lab would have %d pods, more than %d", v.totalPods+replicas, MaxPods)
		v.podsCapped = true
	}
	v.totalPods += replicas
	if nameOK && replicas > 0 && !v.podsCapped {
		last := d.Name + "-" + strconv.Itoa(replicas)
		if len(last) > MaxPodName {
			v.errf(w, "metadata.name", "pod names such as %q are %d bytes, longer than %d", last, len(last), MaxPodName)
		} else {
			for i := 1; i <= replicas; i++ {
				if !v.claim(w, "metadata.name", d.Name+"-"+strconv.Itoa(i), w.obj, "pod name ") {
					break
				}
			}
		}
	}

	// Selector and template labels.
	tmplLabels := d.Spec.Template.Labels
	v.labels(w, "spec.template.metadata.labels", tmplLabels)
	switch sel := d.Spec.Selector; {
	case sel == nil:
		v.errf(w, "spec.selector", "required")
	case len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0:
		v.errf(w, "spec.selector", "must not be empty")
	default:
		v.labels(w, "spec.selector.matchLabels", sel.MatchLabels)
		s, err := metav1.LabelSelectorAsSelector(sel)
		switch {
		case err != nil:
			v.errf(w, "spec.selector", "%v", err)
		case len(tmplLabels) == 0:
			v.errf(w, "spec.template.metadata.labels", "required: spec.selector must match them")
		case !s.Matches(labels.Set(tmplLabels)):
			v.errf(w, "spec.selector", "does not match spec.template.metadata.labels")
		}
	}

	// Containers and ports.
	pod := &d.Spec.Template.Spec
	// A Deployment's pods are always restarted (the supervisor does it), as the API
	// server allows no other policy for them.
	if rp := pod.RestartPolicy; rp != "" && rp != corev1.RestartPolicyAlways {
		v.errf(w, "spec.template.spec.restartPolicy", "Unsupported value %q: a Deployment supports only \"Always\"", rp)
	}
	if len(pod.Containers) == 0 {
		v.errf(w, "spec.template.spec.containers", "at least one container is required")
	}
	if pod.Hostname != "" {
		v.label(w, "spec.template.spec.hostname", pod.Hostname, 63, "a DNS label")
	}
	if pod.Subdomain != "" {
		v.label(w, "spec.template.spec.subdomain", pod.Subdomain, 63, "a DNS label")
	}
	containerNames := map[string]string{}
	portNums := map[string]string{}
	portNames := map[string]string{}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		f := fmt.Sprintf("spec.template.spec.containers[%d]", i)
		v.unmodelled(w, f+".", c, modelledContainer)
		if v.label(w, f+".name", c.Name, 63, "a DNS label") {
			if o, ok := containerNames[c.Name]; ok {
				v.errf(w, f+".name", "%q is already used by %s", c.Name, o)
			} else {
				containerNames[c.Name] = f
			}
		}
		for j := range c.Ports {
			p := &c.Ports[j]
			pf := fmt.Sprintf("%s.ports[%d]", f, j)
			v.unmodelled(w, pf+".", p, modelledPort)
			if p.ContainerPort < 1 || p.ContainerPort > 65535 {
				v.errf(w, pf+".containerPort", msgPortRange, p.ContainerPort)
			}
			proto := protoOf(p.Protocol)
			switch proto {
			case corev1.ProtocolTCP, corev1.ProtocolUDP:
			case corev1.ProtocolSCTP:
				v.errf(w, pf+".protocol", "SCTP is not supported by the lab")
			default:
				v.errf(w, pf+".protocol", "must be TCP or UDP, got %q", p.Protocol)
			}
			key := fmt.Sprintf("%d/%s", p.ContainerPort, proto)
			if o, ok := portNums[key]; ok {
				v.errf(w, pf+".containerPort", "%s is already exposed by %s", key, o)
			} else {
				portNums[key] = pf
			}
			if p.Name != "" {
				if len(validation.IsValidPortName(p.Name)) > 0 {
					v.errf(w, pf+".name", msgPortName, p.Name)
				} else if o, ok := portNames[p.Name]; ok {
					v.errf(w, pf+".name", "%q is already used by %s", p.Name, o)
				} else {
					portNames[p.Name] = pf
				}
			}
		}
	}
	ports := templatePorts(d)
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if c.ReadinessProbe == nil {
			continue
		}
		f := fmt.Sprintf("spec.template.spec.containers[%d].readinessProbe", i)
		pr := c.ReadinessProbe
		v.unmodelled(w, f+".", pr, modelledProbe)
		if g := pr.HTTPGet; g != nil {
			v.unmodelled(w, f+".httpGet.", g, modelledHTTPGet)
			if g.Path != "" && !strings.HasPrefix(g.Path, "/") {
				v.errf(w, f+".httpGet.path", "must start with \"/\", got %q", g.Path)
			}
			if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
				v.warnf(w, f+".httpGet.scheme", "%s is not modelled: the pod's agent answers plain HTTP, ignored", g.Scheme)
			}
			v.probePort(w, f+".httpGet.port", g.Port, ports)
		}
		if t := pr.TCPSocket; t != nil {
			v.unmodelled(w, f+".tcpSocket.", t, modelledTCPSocket)
			v.probePort(w, f+".tcpSocket.port", t.Port, ports)
		}
	}

	// Placement.
	group := podGroup{pods: replicas}
	for i := range v.s.Lab.Spec.Nodes {
		group.nodes = append(group.nodes, i)
	}
	if pod.NodeName != "" {
		if i, ok := v.nodeIndex[pod.NodeName]; !ok {
			v.errf(w, "spec.template.spec.nodeName", "no node %q in the lab", pod.NodeName)
			group.nodes = nil
		} else {
			group.nodes = []int{i}
		}
	}
	if len(pod.NodeSelector) > 0 {
		v.labels(w, "spec.template.spec.nodeSelector", pod.NodeSelector)
		var fit []int
		for _, i := range group.nodes {
			if matches(pod.NodeSelector, v.s.Lab.Spec.Nodes[i].Labels) {
				fit = append(fit, i)
			}
		}
		switch {
		case len(fit) > 0:
		case pod.NodeName != "" && group.nodes != nil:
			v.errf(w, "spec.template.spec.nodeSelector", "does not match node %q of spec.template.spec.nodeName", pod.NodeName)
		case pod.NodeName == "":
			v.errf(w, "spec.template.spec.nodeSelector", "matches no node of the lab")
		}
		group.nodes = fit
	}
	if len(group.nodes) > 0 && replicas > 0 {
		v.groups = append(v.groups, group)
	}
}

// probePort resolves a readiness probe port against the pod's container ports: the pod's
// agent listens only on them, so a probe elsewhere would never succeed.
func (v *validator) probePort(w where, field string, port intstr.IntOrString, ports []containerPort) {
	if port.Type == intstr.String {
		if port.StrVal == "" {
			v.errf(w, field, "required")
			return
		}
		if !slices.ContainsFunc(ports, func(p containerPort) bool { return p.name == port.StrVal && p.proto == corev1.ProtocolTCP }) {
			v.errf(w, field, "no TCP containerPort named %q in the pod", port.StrVal)
		}
		return
	}
	if port.IntVal < 1 || port.IntVal > 65535 {
		v.errf(w, field, msgPortRange, port.IntVal)
		return
	}
	if !slices.ContainsFunc(ports, func(p containerPort) bool { return p.port == port.IntVal && p.proto == corev1.ProtocolTCP }) {
		v.errf(w, field, "%d is not a TCP containerPort of the pod (the pod's agent listens only on its containerPorts)", port.IntVal)
	}
}

// selected returns the Deployments a Service selector picks in its namespace.
func (v *validator) selected(ns string, sel map[string]string) []*Deployment {
	var out []*Deployment
	for i := range v.s.Deployments {
		d := &v.s.Deployments[i]
		dns := d.Namespace
		if dns == "" {
			dns = "default"
		}
		if dns == ns && matches(sel, d.Spec.Template.Labels) {
			out = append(out, d)
		}
	}
	return out
}

func deploymentNames(ds []*Deployment) string {
	names := make([]string, len(ds))
	for i, d := range ds {
		ns := d.Namespace
		if ns == "" {
			ns = "default"
		}
		names[i] = ns + "/" + d.Name
	}
	if len(ds) == 1 {
		return "Deployment " + names[0]
	}
	return "Deployments " + strings.Join(names, ", ")
}

func (v *validator) service(svc *Service) {
	w := objectWhere("Service", svc.Namespace, svc.Name, svc.Source)
	sp := &svc.Spec
	ns := svc.Namespace
	if ns == "" {
		ns = "default"
	}
	v.unmodelled(w, "", svc.Service, modelledObject)
	v.unmodelled(w, "metadata.", svc.ObjectMeta, modelledMeta)
	v.unmodelled(w, "spec.", sp, modelledServiceSpec)

	switch {
	case svc.Name == "":
		v.errf(w, "metadata.name", "required")
	case len(validation.IsDNS1035Label(svc.Name)) > 0:
		v.errf(w, "metadata.name", msgDNS1035, svc.Name)
	default:
		v.defined(w, v.services, "Service", svc.Namespace, svc.Name, svc.Source)
		v.dnsService(w, ns, svc.Name)
	}
	v.namespace(w, svc.Namespace)

	typ := sp.Type
	external := typ == corev1.ServiceTypeNodePort || typ == corev1.ServiceTypeLoadBalancer
	isLB := typ == corev1.ServiceTypeLoadBalancer
	switch typ {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	case corev1.ServiceTypeExternalName:
		v.externalName(w, sp)
		return
	default:
		v.errf(w, "spec.type", "must be ClusterIP, NodePort, LoadBalancer or ExternalName, got %q", typ)
	}
	if sp.ExternalName != "" {
		v.warnf(w, "spec.externalName", "ignored: only ExternalName Services use it")
	}
	if len(sp.ExternalIPs) > 0 {
		// kube-proxy's rules match them on every node; the lab's LB does not announce them.
		v.warnf(w, "spec.externalIPs", "kube-proxy's rules for them are written on every node, but nothing routes them to a node: only pods and nodes reach them")
	}
	for i, r := range sp.LoadBalancerSourceRanges {
		f := fmt.Sprintf("spec.loadBalancerSourceRanges[%d]", i)
		if p, err := netip.ParsePrefix(strings.TrimSpace(r)); err != nil || !p.Addr().Is4() {
			v.errf(w, f, "must be an IPv4 CIDR such as 203.0.113.0/24, got %q", r)
		} else if !isLB {
			v.warnf(w, f, "ignored: only LoadBalancer Services use it")
		}
	}

	// Annotations: netlab.dev/* is the lab's API, the rest is not modelled.
	for _, k := range sortedKeys(svc.Annotations) {
		f := "metadata.annotations[" + k + "]"
		val := svc.Annotations[k]
		switch {
		case k == AnnotationLBScheduler:
			if msg := schedulerProblem(val); msg != "" {
				v.errf(w, f, "%s", msg)
			} else if !isLB {
				v.warnf(w, f, "ignored: only LoadBalancer Services use it")
			}
		case k == AnnotationLBPersistence:
			if d, err := time.ParseDuration(val); err != nil {
				v.errf(w, f, "must be a duration such as 30s, got %q", val)
			} else if msg := persistenceProblem(d); msg != "" {
				v.errf(w, f, "%s", msg)
			} else if !isLB {
				v.warnf(w, f, "ignored: only LoadBalancer Services use it")
			}
		case k == AnnotationTolerateUnready:
			if b, err := strconv.ParseBool(val); err != nil {
				v.warnf(w, f, "ignored: not a boolean (%q)", val)
			} else if b && !sp.PublishNotReadyAddresses {
				v.warnf(w, f, "the cluster DNS publishes the not-ready pods too, as the DNS specification says; kube-proxy ignores it, as Kubernetes has since 1.24 (spec.publishNotReadyAddresses does both)")
			}
		case strings.HasPrefix(k, "netlab.dev/"):
			v.errf(w, f, "unknown netlab annotation (known: %s, %s)", AnnotationLBScheduler, AnnotationLBPersistence)
		default:
			v.warnf(w, f, MsgNotModelled)
		}
	}

	// Selector.
	var sel []*Deployment
	if len(sp.Selector) == 0 {
		v.errf(w, "spec.selector", "required: the lab has no manual Endpoints")
	} else {
		v.labels(w, "spec.selector", sp.Selector)
		sel = v.selected(ns, sp.Selector)
		if len(sel) == 0 {
			v.errf(w, "spec.selector", "matches no Deployment in namespace %s", ns)
		}
	}

	// ClusterIP.
	switch ip := sp.ClusterIP; {
	case ip == "":
	case ip == corev1.ClusterIPNone:
		if typ != corev1.ServiceTypeClusterIP {
			v.errf(w, "spec.clusterIP", "None (headless) needs type ClusterIP, got %s", typ)
		}
	case !parseIP(ip).IsValid():
		v.errf(w, "spec.clusterIP", "must be an IPv4 address, got %q", ip)
	case v.svc.IsValid():
		a := parseIP(ip)
		if msg := inNet(a, v.svc, "spec.network.serviceCIDR"); msg != "" {
			v.errf(w, "spec.clusterIP", "%s", msg)
		} else if o, ok := v.clusterIPs[a]; ok {
			v.errf(w, "spec.clusterIP", "%s is already used by %s", a, o)
		} else {
			v.clusterIPs[a] = w.obj
		}
	}
	if len(sp.ClusterIPs) > 0 {
		if sp.ClusterIP != "" && sp.ClusterIPs[0] != sp.ClusterIP {
			v.errf(w, "spec.clusterIPs[0]", "%q must equal spec.clusterIP %q", sp.ClusterIPs[0], sp.ClusterIP)
		}
		if len(sp.ClusterIPs) > 1 {
			v.warnf(w, "spec.clusterIPs", "entries after the first are ignored: the lab is IPv4 single-stack")
		}
	}
	if len(sp.IPFamilies) > 0 && !slices.Equal(sp.IPFamilies, []corev1.IPFamily{corev1.IPv4Protocol}) {
		v.warnf(w, "spec.ipFamilies", "ignored: the lab is IPv4 single-stack")
	}
	if sp.IPFamilyPolicy != nil && *sp.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack {
		v.warnf(w, "spec.ipFamilyPolicy", "ignored: the lab is IPv4 single-stack")
	}

	// Ports.
	if len(sp.Ports) == 0 && sp.ClusterIP != corev1.ClusterIPNone {
		v.errf(w, "spec.ports", "at least one port is required")
	}
	names := map[string]string{}
	nums := map[string]string{}
	for i := range sp.Ports {
		p := &sp.Ports[i]
		f := fmt.Sprintf("spec.ports[%d]", i)
		v.unmodelled(w, f+".", p, modelledServicePort)
		switch {
		case p.Name == "" && len(sp.Ports) > 1:
			v.errf(w, f+".name", "required when the Service has more than one port")
		case p.Name == "":
		case !isDNSLabel(p.Name):
			v.errf(w, f+".name", msgDNSLabel, p.Name)
		case names[p.Name] != "":
			v.errf(w, f+".name", "%q is already used by %s", p.Name, names[p.Name])
		default:
			names[p.Name] = f
		}
		proto := protoOf(p.Protocol)
		switch proto {
		case corev1.ProtocolTCP, corev1.ProtocolUDP:
		case corev1.ProtocolSCTP:
			v.errf(w, f+".protocol", "SCTP is not supported by the lab")
		default:
			v.errf(w, f+".protocol", "must be TCP or UDP, got %q", p.Protocol)
		}
		if p.Port < 1 || p.Port > 65535 {
			v.errf(w, f+".port", msgPortRange, p.Port)
		} else {
			key := fmt.Sprintf("%d/%s", p.Port, proto)
			if o, ok := nums[key]; ok {
				v.errf(w, f+".port", "%s is already used by %s", key, o)
			} else {
				nums[key] = f
			}
		}
		v.targetPort(w, f+".targetPort", p.TargetPort, proto, sel)
		if p.NodePort != 0 {
			switch {
			case !external:
				v.errf(w, f+".nodePort", "only NodePort and LoadBalancer Services have node ports")
			default:
				v.nodePort(w, f+".nodePort", p.NodePort, proto)
			}
		}
	}

	// Traffic policies, affinity.
	switch etp := sp.ExternalTrafficPolicy; {
	case etp == "":
	case etp != corev1.ServiceExternalTrafficPolicyCluster && etp != corev1.ServiceExternalTrafficPolicyLocal:
		v.errf(w, "spec.externalTrafficPolicy", "must be Cluster or Local, got %q", etp)
	case !external:
		v.errf(w, "spec.externalTrafficPolicy", "may only be set on NodePort and LoadBalancer Services")
	}
	if itp := sp.InternalTrafficPolicy; itp != nil && *itp != corev1.ServiceInternalTrafficPolicyCluster && *itp != corev1.ServiceInternalTrafficPolicyLocal {
		v.errf(w, "spec.internalTrafficPolicy", "must be Cluster or Local, got %q", *itp)
	}
	if a := sp.AllocateLoadBalancerNodePorts; a != nil && !*a {
		if isLB {
			v.errf(w, "spec.allocateLoadBalancerNodePorts", "false is not modelled: the lab's load balancer forwards to every node's NodePort, so a LoadBalancer Service needs them")
		} else {
			v.errf(w, "spec.allocateLoadBalancerNodePorts", "may only be set on LoadBalancer Services")
		}
	}
	if sp.HealthCheckNodePort != 0 {
		if !isLB || sp.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			v.errf(w, "spec.healthCheckNodePort", "may only be set on LoadBalancer Services with externalTrafficPolicy Local")
		} else {
			v.nodePort(w, "spec.healthCheckNodePort", sp.HealthCheckNodePort, corev1.ProtocolTCP)
		}
	}
	switch sa := sp.SessionAffinity; sa {
	case "", corev1.ServiceAffinityNone:
		if sp.SessionAffinityConfig != nil && sp.SessionAffinityConfig.ClientIP != nil {
			v.errf(w, "spec.sessionAffinityConfig", "must not be set when spec.sessionAffinity is None")
		}
	case corev1.ServiceAffinityClientIP:
		if c := sp.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			if t := *c.ClientIP.TimeoutSeconds; t < 1 || t > 86400 {
				v.errf(w, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "must be between 1 and 86400, got %d", t)
			}
		}
	default:
		v.errf(w, "spec.sessionAffinity", "must be None or ClientIP, got %q", sa)
	}

	// LoadBalancer address.
	if sp.LoadBalancerIP == "" {
		if isLB {
			v.lbServices++
		}
		return
	}
	if !isLB {
		v.warnf(w, "spec.loadBalancerIP", "ignored: only LoadBalancer Services use it")
		return
	}
	a := parseIP(sp.LoadBalancerIP)
	switch {
	case !a.IsValid():
		v.errf(w, "spec.loadBalancerIP", "must be an IPv4 address, got %q", sp.LoadBalancerIP)
	case !v.wan.IsValid():
	case inNet(a, v.wan, "spec.network.wanCIDR") != "":
		v.errf(w, "spec.loadBalancerIP", "%s", inNet(a, v.wan, "spec.network.wanCIDR"))
	case v.wanUsed[a] != "":
		v.errf(w, "spec.loadBalancerIP", "%s is %s", a, v.wanUsed[a])
	default:
		v.wanUsed[a] = "already used by " + w.obj
	}
}

// targetPort checks that the selected pods expose a Service targetPort: by number, every
// selected Deployment must expose it (the pods' agents listen only on their
// containerPorts, so a pod without it would be a dead endpoint); by name, at least one
// (Kubernetes resolves names per pod and leaves out pods without the name).
func (v *validator) targetPort(w where, field string, tp intstr.IntOrString, proto corev1.Protocol, sel []*Deployment) {
	if tp.Type == intstr.String {
		if len(validation.IsValidPortName(tp.StrVal)) > 0 {
			v.errf(w, field, msgPortName, tp.StrVal)
			return
		}
		if len(sel) == 0 {
			return
		}
		for _, d := range sel {
			if slices.ContainsFunc(templatePorts(d), func(p containerPort) bool { return p.name == tp.StrVal && p.proto == proto }) {
				return
			}
		}
		v.errf(w, field, "no container of %s has a %s port named %q", deploymentNames(sel), proto, tp.StrVal)
		return
	}
	if tp.IntVal < 1 || tp.IntVal > 65535 {
		v.errf(w, field, msgPortRange, tp.IntVal)
		return
	}
	var missing []*Deployment
	for _, d := range sel {
		if !slices.ContainsFunc(templatePorts(d), func(p containerPort) bool { return p.port == tp.IntVal && p.proto == proto }) {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		v.errf(w, field, "no container of %s exposes %d/%s", deploymentNames(missing), tp.IntVal, proto)
	}
}

// nodePort checks a port every node opens: in range and used once.
func (v *validator) nodePort(w where, field string, port int32, proto corev1.Protocol) {
	if port < NodePortMin || port > NodePortMax {
		v.errf(w, field, "must be between %d and %d, got %d", NodePortMin, NodePortMax, port)
		return
	}
	key := fmt.Sprintf("%d/%s", port, proto)
	if o, ok := v.nodePorts[key]; ok {
		v.errf(w, field, "%s is already used by %s", key, o)
		return
	}
	v.nodePorts[key] = w.obj + " " + field
}

// externalName checks an ExternalName Service: a CNAME in the cluster DNS, with no
// ClusterIP, no endpoints and no kube-proxy rules, as in Kubernetes.
func (v *validator) externalName(w where, sp *corev1.ServiceSpec) {
	switch name := sp.ExternalName; {
	case name == "":
		v.errf(w, "spec.externalName", "required for type ExternalName")
	case !isDomain(name):
		v.errf(w, "spec.externalName", msgDNSName, name)
	}
	if sp.ClusterIP != "" {
		v.errf(w, "spec.clusterIP", "must be empty for type ExternalName, got %q", sp.ClusterIP)
	}
	if len(sp.Selector) > 0 {
		v.warnf(w, "spec.selector", "ignored: an ExternalName Service has no endpoints")
	}
	for i, p := range sp.Ports {
		if p.NodePort != 0 {
			v.errf(w, fmt.Sprintf("spec.ports[%d].nodePort", i), "only NodePort and LoadBalancer Services have node ports")
		}
	}
}
