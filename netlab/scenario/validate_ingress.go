package scenario

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
)

// checkHost returns what is wrong with an Ingress host ("" when it is fine): a DNS name,
// or "*." followed by one: the wildcard stands for exactly one label.
func checkHost(h string) string {
	if _, err := netip.ParseAddr(h); err == nil {
		return fmt.Sprintf("must be a DNS name, not an IP address, got %q", h)
	}
	name := strings.TrimPrefix(h, "*.")
	if !isDNSName(name) {
		return fmt.Sprintf("must be a DNS name such as app.example or a wildcard such as *.example, got %q", h)
	}
	return ""
}

func (v *validator) ingress(in *Ingress) {
	w := objectWhere("Ingress", in.Namespace, in.Name, in.Source)
	sp := &in.Spec
	ns := in.Namespace
	if ns == "" {
		ns = "default"
	}
	v.unmodelled(w, "", in.Ingress, modelledObject)
	v.unmodelled(w, "metadata.", in.ObjectMeta, modelledMeta)
	v.unmodelled(w, "spec.", sp, modelledIngressSpec)
	switch {
	case in.Name == "":
		v.errf(w, "metadata.name", "required")
	case !isDNSName(in.Name):
		v.errf(w, "metadata.name", msgDNSName, in.Name)
	default:
		v.defined(w, v.ingresses, "Ingress", in.Namespace, in.Name, in.Source)
	}
	v.namespace(w, in.Namespace)
	// Controller-specific annotations (rewrite-target, ssl-redirect...) change behaviour
	// on a real cluster: say that the lab does not follow them.
	// netlab.dev/* is the lab's own API and is checked.
	for _, k := range sortedKeys(in.Annotations) {
		f := "metadata.annotations[" + k + "]"
		switch {
		case k == AnnotationUpstream:
			if msg := upstreamProblem(in.Annotations[k]); msg != "" {
				v.errf(w, f, "%s", msg)
			}
		case k == LegacyIngressClassAnnotation:
			// the class, like spec.ingressClassName (checked below)
		case strings.HasPrefix(k, "netlab.dev/"):
			v.errf(w, f, "unknown netlab annotation (known: %s)", AnnotationUpstream)
		default:
			v.warnf(w, f, MsgNotModelled)
		}
	}
	v.ingressClassOf(w, in)
	if sp.DefaultBackend == nil && len(sp.Rules) == 0 {
		v.errf(w, "spec", "either defaultBackend or rules must be set")
	}
	if sp.DefaultBackend != nil {
		v.backend(w, "spec.defaultBackend", ns, sp.DefaultBackend)
	}
	for i, t := range sp.TLS {
		f := fmt.Sprintf("spec.tls[%d]", i)
		for j, h := range t.Hosts {
			if msg := checkHost(h); msg != "" {
				v.errf(w, fmt.Sprintf("%s.hosts[%d]", f, j), "%s", msg)
			}
		}
		// A secretName that names no Secret of the scenario is fine: the lab issues a
		// certificate for the hosts from its own CA (netlab ca). One that names a Secret
		// must name a usable one (the Secret itself is checked in secret).
		if t.SecretName != "" {
			if sec := v.findSecret(ns, t.SecretName); sec != nil && sec.Type != corev1.SecretTypeTLS {
				v.errf(w, f+".secretName", "Secret %s/%s has type %q, want %s", ns, t.SecretName, secretType(sec), corev1.SecretTypeTLS)
			}
		}
	}
	for i, r := range sp.Rules {
		f := fmt.Sprintf("spec.rules[%d]", i)
		if r.Host != "" {
			if msg := checkHost(r.Host); msg != "" {
				v.errf(w, f+".host", "%s", msg)
			}
		}
		if r.HTTP == nil {
			v.warnf(w, f+".http", "missing: this rule routes nothing")
			continue
		}
		if len(r.HTTP.Paths) == 0 {
			v.errf(w, f+".http.paths", "at least one path is required")
		}
		for j := range r.HTTP.Paths {
			p := &r.HTTP.Paths[j]
			pf := fmt.Sprintf("%s.http.paths[%d]", f, j)
			switch {
			case p.PathType == nil:
				v.errf(w, pf+".pathType", "required (Exact, Prefix or ImplementationSpecific)")
			case *p.PathType != netv1.PathTypeExact && *p.PathType != netv1.PathTypePrefix && *p.PathType != netv1.PathTypeImplementationSpecific:
				v.errf(w, pf+".pathType", "must be Exact, Prefix or ImplementationSpecific, got %q", *p.PathType)
			}
			switch {
			case p.Path == "" && p.PathType != nil && *p.PathType != netv1.PathTypeImplementationSpecific:
				v.errf(w, pf+".path", "required for pathType %s", *p.PathType)
			case p.Path != "" && !strings.HasPrefix(p.Path, "/"):
				v.errf(w, pf+".path", "must start with \"/\", got %q", p.Path)
			case p.PathType != nil && (*p.PathType == netv1.PathTypeExact || *p.PathType == netv1.PathTypePrefix):
				// The API server's checks: request paths are cleaned before matching,
				// so such a rule could never match.
				for _, seq := range []string{"//", "/./", "/../", "%2f", "%2F"} {
					if strings.Contains(p.Path, seq) {
						v.errf(w, pf+".path", "must not contain %q, got %q", seq, p.Path)
					}
				}
				for _, suf := range []string{"/..", "/."} {
					if strings.HasSuffix(p.Path, suf) {
						v.errf(w, pf+".path", "must not end with %q, got %q", suf, p.Path)
					}
				}
			}
			v.backend(w, pf+".backend", ns, &p.Backend)
		}
	}
}

// ingressClassOf says when the lab's ingress does not serve an Ingress because of its
// class, and refuses an Ingress without class when several IngressClasses are marked
// default (the API server's admission refuses it then).
func (v *validator) ingressClassOf(w where, in *Ingress) {
	labClass := v.s.Lab.Spec.Ingress.ClassName
	c, ok := IngressClassOf(&in.Ingress)
	if !ok {
		var defaults []string
		for _, ic := range v.s.IngressClasses {
			if ic.Annotations[AnnotationDefaultIngressClass] == "true" {
				defaults = append(defaults, ic.Name)
			}
		}
		switch {
		case len(defaults) > 1:
			v.errf(w, "spec.ingressClassName", "required: %d IngressClasses are marked default (%s), and the API server refuses an Ingress without class then",
				len(defaults), strings.Join(defaults, ", "))
		case v.classes.IgnoreWithoutClass:
			v.warnf(w, "spec.ingressClassName", "unset, and the default IngressClass %q is not the lab's controller's: the lab's ingress ignores this Ingress",
				v.classes.Default)
		}
		return
	}
	if Serves(&in.Ingress, labClass, v.classes.Classes, v.classes.IgnoreWithoutClass) {
		return
	}
	f := "spec.ingressClassName"
	if in.Spec.IngressClassName == nil {
		f = "metadata.annotations[" + LegacyIngressClassAnnotation + "]"
	}
	for _, ic := range v.s.IngressClasses {
		if ic.Name == c {
			v.warnf(w, f, "IngressClass %q belongs to controller %q, not the lab's (%s): the lab's ingress ignores this Ingress",
				c, ic.Spec.Controller, IngressController)
			return
		}
	}
	v.warnf(w, f, "%q is not the lab's class %q: the lab's ingress ignores this Ingress", c, labClass)
}

// ingressClass checks an IngressClass: a name, a controller, and that the Lab's own
// class, when declared, is the lab's controller's.
func (v *validator) ingressClass(ic *IngressClass) {
	w := where{file: ic.Source.File, doc: ic.Source.Doc, obj: "IngressClass " + ic.Name}
	v.unmodelled(w, "", ic.IngressClass, modelledObject)
	v.unmodelled(w, "metadata.", ic.ObjectMeta, modelledClassMeta)
	v.unmodelled(w, "spec.", ic.Spec, modelledIngressClassSpec)
	switch {
	case ic.Name == "":
		v.errf(w, "metadata.name", "required")
	case !isDNSName(ic.Name):
		v.errf(w, "metadata.name", msgDNSName, ic.Name)
	default:
		if first, ok := v.ingClasses[ic.Name]; ok {
			v.errf(w, "metadata.name", "IngressClass %s is already defined in %s, document %d", ic.Name, first.File, first.Doc)
		} else {
			v.ingClasses[ic.Name] = ic.Source
		}
	}
	if ic.Namespace != "" {
		v.warnf(w, "metadata.namespace", "an IngressClass is cluster-scoped: namespace %q ignored", ic.Namespace)
	}
	for _, k := range sortedKeys(ic.Annotations) {
		f := "metadata.annotations[" + k + "]"
		switch val := ic.Annotations[k]; {
		case k == AnnotationDefaultIngressClass:
			if val != "true" && val != "false" {
				v.warnf(w, f, "%q is not \"true\": this class is not the default", val)
			}
		default:
			v.warnf(w, f, MsgNotModelled)
		}
	}
	labClass := v.s.Lab.Spec.Ingress.ClassName
	switch c := ic.Spec.Controller; {
	case c == "":
		v.errf(w, "spec.controller", "required (the lab's ingress serves the classes of controller %s)", IngressController)
	case ic.Name == labClass && c != IngressController:
		v.errf(w, "spec.controller", "%q: this is the lab's class (Lab spec.ingress.className %q), whose controller is %s",
			c, labClass, IngressController)
	}
}

// backend checks that an Ingress backend names a Service of the namespace and a TCP port
// of it.
func (v *validator) backend(w where, field, ns string, b *netv1.IngressBackend) {
	if b.Resource != nil {
		v.errf(w, field+".resource", "resource backends are not supported by the lab")
		return
	}
	if b.Service == nil {
		v.errf(w, field+".service", "required")
		return
	}
	bs := b.Service
	if bs.Name == "" {
		v.errf(w, field+".service.name", "required")
		return
	}
	var svc *Service
	for i := range v.s.Services {
		s := &v.s.Services[i]
		sns := s.Namespace
		if sns == "" {
			sns = "default"
		}
		if sns == ns && s.Name == bs.Name {
			svc = s
			break
		}
	}
	pf := field + ".service.port"
	if svc != nil {
		// Valid on a cluster, but the lab's ingress reaches a Service through its
		// ClusterIP or the endpoints kube-proxy follows: neither exists for these.
		switch {
		case svc.Spec.Type == corev1.ServiceTypeExternalName:
			v.warnf(w, field+".service.name", "Service %s/%s is of type ExternalName (%s): the lab's ingress cannot resolve names outside the lab and answers 503 (ingress-nginx would proxy to the name)",
				ns, bs.Name, svc.Spec.ExternalName)
			return
		case svc.Spec.ClusterIP == corev1.ClusterIPNone:
			v.warnf(w, field+".service.name", "Service %s/%s is headless (clusterIP: None): the lab's ingress routes only to a ClusterIP or to the endpoints kube-proxy serves, and answers 503 (ingress-nginx would proxy to its pods)",
				ns, bs.Name)
		}
	}
	switch {
	case bs.Port.Number != 0 && bs.Port.Name != "":
		v.errf(w, pf, "set a number or a name, not both")
		return
	case bs.Port.Number == 0 && bs.Port.Name == "":
		v.errf(w, pf, "a port number or name is required")
		return
	case svc == nil:
		v.errf(w, field+".service.name", "no Service %q in namespace %s", bs.Name, ns)
		return
	}
	for _, p := range svc.Spec.Ports {
		if (bs.Port.Number != 0 && p.Port == bs.Port.Number) || (bs.Port.Name != "" && p.Name == bs.Port.Name) {
			if protoOf(p.Protocol) != corev1.ProtocolTCP {
				v.errf(w, pf, "port %d of Service %s/%s is %s, an Ingress backend needs TCP", p.Port, ns, bs.Name, p.Protocol)
			}
			return
		}
	}
	if bs.Port.Number != 0 {
		v.errf(w, pf+".number", "Service %s/%s has no port %d", ns, bs.Name, bs.Port.Number)
	} else {
		v.errf(w, pf+".name", "Service %s/%s has no port named %q", ns, bs.Name, bs.Port.Name)
	}
}

func (v *validator) findSecret(ns, name string) *Secret {
	for i := range v.s.Secrets {
		s := &v.s.Secrets[i]
		sns := s.Namespace
		if sns == "" {
			sns = "default"
		}
		if sns == ns && s.Name == name {
			return s
		}
	}
	return nil
}

func secretType(s *Secret) corev1.SecretType {
	if s.Type == "" {
		return corev1.SecretTypeOpaque
	}
	return s.Type
}

// secret checks a Secret: the lab uses kubernetes.io/tls Secrets (for Ingress TLS) and
// ignores the others with a warning.
func (v *validator) secret(sec *Secret) {
	w := objectWhere("Secret", sec.Namespace, sec.Name, sec.Source)
	v.unmodelled(w, "", sec.Secret, modelledSecret)
	v.unmodelled(w, "metadata.", sec.ObjectMeta, modelledMeta)
	switch {
	case sec.Name == "":
		v.errf(w, "metadata.name", "required")
	case !isDNSName(sec.Name):
		v.errf(w, "metadata.name", msgDNSName, sec.Name)
	default:
		v.defined(w, v.secrets, "Secret", sec.Namespace, sec.Name, sec.Source)
	}
	v.namespace(w, sec.Namespace)
	if sec.Type != corev1.SecretTypeTLS {
		v.warnf(w, "type", "%q is not used: the lab reads only %s Secrets, ignored", secretType(sec), corev1.SecretTypeTLS)
		return
	}
	get := func(k string) []byte {
		if s, ok := sec.StringData[k]; ok {
			return []byte(s)
		}
		return sec.Data[k]
	}
	crt, key := get(corev1.TLSCertKey), get(corev1.TLSPrivateKeyKey)
	if len(crt) == 0 {
		v.errf(w, "data["+corev1.TLSCertKey+"]", "required for a %s Secret", corev1.SecretTypeTLS)
	}
	if len(key) == 0 {
		v.errf(w, "data["+corev1.TLSPrivateKeyKey+"]", "required for a %s Secret", corev1.SecretTypeTLS)
	}
	if len(crt) > 0 && len(key) > 0 {
		if _, err := tls.X509KeyPair(crt, key); err != nil {
			v.errf(w, "data", "tls.crt and tls.key are not a usable certificate and key: %v", err)
		}
	}
}
