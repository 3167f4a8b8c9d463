package scenario

import (
	"slices"
	"testing"
)

func ingressClass(name, controller string, isDefault bool) string {
	ann := ""
	if isDefault {
		ann = `  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}` + "\n"
	}
	return "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: " + name + "\n" + ann +
		"spec: {controller: " + controller + "}\n"
}

func namedIngress(name, class string) string {
	cls := ""
	if class != "" {
		cls = "  ingressClassName: " + class + "\n"
	}
	return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: " + name + "}\nspec:\n" + cls +
		"  defaultBackend: {service: {name: web, port: {number: 80}}}\n"
}

// TestIngressClasses: IngressClass objects are read; a class of the lab's controller is
// served, another controller's is not, and the default class decides about Ingresses
// without class.
func TestIngressClasses(t *testing.T) {
	runCases(t, []vcase{
		{name: "classes of both controllers, the lab's the default", docs: []string{labDoc, webDep, webSvc,
			ingressClass("netlab", IngressController, true),
			ingressClass("public", IngressController, false),
			ingressClass("nginx", "k8s.io/ingress-nginx", false),
			namedIngress("a", "public"), namedIngress("b", "nginx"), namedIngress("c", "")},
			warns: []string{`bad.yaml: Ingress default/b: spec.ingressClassName: IngressClass "nginx" belongs to controller "k8s.io/ingress-nginx", not the lab's (netlab.dev/ingress-controller): the lab's ingress ignores this Ingress`}},
		{name: "another controller's default", docs: []string{labDoc, webDep, webSvc,
			ingressClass("nginx", "k8s.io/ingress-nginx", true), namedIngress("c", ""), namedIngress("d", "netlab")},
			warns: []string{`bad.yaml: Ingress default/c: spec.ingressClassName: unset, and the default IngressClass "nginx" is not the lab's controller's: the lab's ingress ignores this Ingress`}},
		{name: "bad classes", docs: []string{labDoc, webDep, webSvc,
			ingressClass("netlab", "k8s.io/ingress-nginx", true),
			"apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: x, namespace: web, annotations: {ingressclass.kubernetes.io/is-default-class: \"yes\"}}\nspec: {parameters: {kind: P, name: p}}\n",
			ingressClass("two", IngressController, true),
			ingressClass("two", IngressController, false),
			namedIngress("c", "")},
			probs: []string{
				`bad.yaml: IngressClass netlab: spec.controller: "k8s.io/ingress-nginx": this is the lab's class (Lab spec.ingress.className "netlab"), whose controller is netlab.dev/ingress-controller`,
				`bad.yaml: IngressClass x: spec.controller: required (the lab's ingress serves the classes of controller netlab.dev/ingress-controller)`,
				`bad.yaml: IngressClass two: metadata.name: IngressClass two is already defined in bad.yaml, document 6`,
				`bad.yaml: Ingress default/c: spec.ingressClassName: required: 2 IngressClasses are marked default (netlab, two), and the API server refuses an Ingress without class then`,
			},
			warns: []string{
				`bad.yaml: IngressClass x: spec.parameters: not modelled by the lab, ignored`,
				`bad.yaml: IngressClass x: metadata.namespace: an IngressClass is cluster-scoped: namespace "web" ignored`,
				`bad.yaml: IngressClass x: metadata.annotations[ingressclass.kubernetes.io/is-default-class]: "yes" is not "true": this class is not the default`,
			}},
	})
}

func TestClassPolicy(t *testing.T) {
	s, err := Parse("t.yaml", []byte(labDoc+"---\n"+ingressClass("public", IngressController, false)+"---\n"+
		ingressClass("netlab", IngressController, false)+"---\n"+ingressClass("nginx", "k8s.io/ingress-nginx", true)))
	if err != nil {
		t.Fatal(err)
	}
	p := s.ClassPolicy()
	if !slices.Equal(p.Classes, []string{"public"}) || !p.IgnoreWithoutClass || p.Default != "nginx" {
		t.Errorf("policy = %+v", p)
	}
	// No IngressClass: the lab's class stands for the default, as before.
	s, _ = Parse("t.yaml", []byte(labDoc))
	if p := s.ClassPolicy(); len(p.Classes) != 0 || p.IgnoreWithoutClass {
		t.Errorf("no classes: policy = %+v", p)
	}
	if _, err := Parse("t.yaml", []byte(ingressClass("x", IngressController, false)+"---\napiVersion: networking.k8s.io/v1beta1\nkind: IngressClass\nmetadata: {name: old}\n")); err == nil ||
		err.Error() != `t.yaml: IngressClass old: apiVersion "networking.k8s.io/v1beta1" is not supported for kind IngressClass (want networking.k8s.io/v1)` {
		t.Errorf("v1beta1: %v", err)
	}
}

// TestBackendsTheLabCannotReach: headless and ExternalName backends are accepted (they are
// valid on a cluster) with a warning saying the lab answers 503 for them.
func TestBackendsTheLabCannotReach(t *testing.T) {
	runCases(t, []vcase{
		{name: "headless and ExternalName", docs: []string{labDoc, webDep, webSvc,
			svc("hl", "  clusterIP: None\n  ports: [{name: http, port: 80, targetPort: http}]\n"),
			"apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: example.org}\n",
			ingress(`  rules:
  - http:
      paths:
      - {path: /h, pathType: Prefix, backend: {service: {name: hl, port: {number: 80}}}}
      - {path: /e, pathType: Prefix, backend: {service: {name: ext, port: {number: 80}}}}
`)},
			warns: []string{
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[0].backend.service.name: Service default/hl is headless (clusterIP: None): the lab's ingress routes only to a ClusterIP or to the endpoints kube-proxy serves, and answers 503 (ingress-nginx would proxy to its pods)`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[1].backend.service.name: Service default/ext is of type ExternalName (example.org): the lab's ingress cannot resolve names outside the lab and answers 503 (ingress-nginx would proxy to the name)`,
			}},
	})
}

// TestIngressPathSequences: Exact and Prefix paths the API server refuses (request paths
// are cleaned before matching, so such rules could never match).
func TestIngressPathSequences(t *testing.T) {
	p := func(path, typ string) string {
		return "      - {path: '" + path + "', pathType: " + typ + ", backend: {service: {name: web, port: {number: 80}}}}\n"
	}
	runCases(t, []vcase{
		{name: "dot segments and encoded slashes", docs: []string{labDoc, webDep, webSvc, ingress("  rules:\n  - http:\n      paths:\n" +
			p("/a//b", "Prefix") + p("/a/./b", "Exact") + p("/a/../b", "Prefix") + p("/a%2Fb", "Exact") + p("/a/..", "Prefix") +
			p("/a/.", "Exact") + p("/a//b", "ImplementationSpecific") + p("/a.b/..c", "Prefix"))},
			probs: []string{
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[0].path: must not contain "//", got "/a//b"`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[1].path: must not contain "/./", got "/a/./b"`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[2].path: must not contain "/../", got "/a/../b"`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[3].path: must not contain "%2F", got "/a%2Fb"`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[4].path: must not end with "/..", got "/a/.."`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[5].path: must not end with "/.", got "/a/."`,
			}},
	})
}
