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
		switch {
		case scenario.Serves(&obj, p.Ingress.ClassName, p.Ingress.Classes, p.Ingress.IgnoreWithoutClass):
			is.Upstream = p.UpstreamOf(obj.Annotations)
			is.Address = plan.Addr(p.LB.VIP)
		case !named:
			is.Ignored = true
			is.IgnoredReason = "it names no class and the default IngressClass is another controller's"
			if d := p.Ingress.DefaultClass; d != "" { // a lab brought up before plans named it has none
				is.IgnoredReason = "it names no class and the default IngressClass " + strconv.Quote(d) + " is another controller's"
			}
		case class == "":
			is.Ignored = true
			is.IgnoredReason = "it names the empty class"
		default:
			is.Ignored = true
			is.IgnoredReason = "class " + strconv.Quote(class) + " is not the lab's"
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
