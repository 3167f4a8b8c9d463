package lab

import (
	"encoding/json"
	"strconv"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
	netv1 "k8s.io/api/networking/v1"
)

func ingressStatus(p *plan.Plan) []IngressStatus {
	out := []IngressStatus{}
	for _, in := range p.Ingresses {
		var obj netv1.Ingress
		if err := json.Unmarshal(in.Object, &obj); err != nil {
			continue
		}
		is := IngressStatus{Name: in.Name, Namespace: in.Namespace, Rules: []IngressRuleState{}}
		class, named := scenario.IngressClassOf(&obj)
		is.Class = class
		if scenario.Serves(&obj, p.Ingress.ClassName, p.Ingress.Classes, p.Ingress.IgnoreWithoutClass) {
			is.Upstream = p.UpstreamOf(obj.Annotations)
			is.Address = plan.Addr(p.LB.VIP)
		} else {
			is.Ignored, is.IgnoredReason = true, ignoredReason(class, named, p.Ingress.DefaultClass)
		}
		add := func(host, path, pt string, b *netv1.IngressBackend) {
			if b == nil || b.Service == nil {
				return
			}
			port := b.Service.Port.Name
			if port == "" {
				port = strconv.Itoa(int(b.Service.Port.Number))
			}
			is.Rules = append(is.Rules, IngressRuleState{Host: host, Path: path, PathType: pt, Service: b.Service.Name, Port: port})
		}
		for _, r := range obj.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, hp := range r.HTTP.Paths {
				pt := ""
				if hp.PathType != nil {
					pt = string(*hp.PathType)
				}
				add(r.Host, hp.Path, pt, &hp.Backend)
			}
		}
		add("", "", "", obj.Spec.DefaultBackend)
		out = append(out, is)
	}
	return out
}

// ignoredReason says why an Ingress naming class (or none: !named) is not the lab's;
// defaultClass is the default IngressClass, another controller's ("" in a plan from before
// plans named it).
func ignoredReason(class string, named bool, defaultClass string) string {
	switch {
	case !named && defaultClass != "":
		return "it names no class and the default IngressClass " + strconv.Quote(defaultClass) + " is another controller's"
	case !named:
		return "it names no class and the default IngressClass is another controller's"
	case class == "":
		return "it names the empty class"
	}
	return "class " + strconv.Quote(class) + " is not the lab's"
}
