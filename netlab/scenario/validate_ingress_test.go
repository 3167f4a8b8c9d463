package scenario

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"
)

// tlsSecret returns a kubernetes.io/tls Secret holding a fresh self-signed certificate.
func tlsSecret(t *testing.T, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app.example"},
		DNSNames: []string{"app.example"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kpem := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata: {name: %s}
type: kubernetes.io/tls
data:
  tls.crt: %s
  tls.key: %s
`, name, base64.StdEncoding.EncodeToString(crt), base64.StdEncoding.EncodeToString(kpem))
}

func TestValidateIngress(t *testing.T) {
	udpSvc := `apiVersion: v1
kind: Service
metadata: {name: dns}
spec:
  selector: {app: dns}
  ports: [{name: dns, port: 53, protocol: UDP}]
`
	dnsDep := dep("dns", 1, "      containers: [{name: c, ports: [{containerPort: 53, protocol: UDP}]}]\n")
	runCases(t, []vcase{
		{name: "good with a tls secret", docs: []string{labDoc, webDep, webSvc, tlsSecret(t, "app-tls"), ingress(`  tls: [{hosts: [app.example], secretName: app-tls}]
  rules: [{host: app.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
`)}},
		{name: "backends", docs: []string{labDoc, webDep, webSvc, dnsDep, udpSvc, ingress(`  defaultBackend: {service: {name: nope, port: {number: 80}}}
  rules:
  - http:
      paths:
      - {path: /a, pathType: Prefix, backend: {service: {name: web, port: {number: 8080}}}}
      - {path: /b, pathType: Prefix, backend: {service: {name: web, port: {name: https}}}}
      - {path: /c, pathType: Prefix, backend: {service: {name: web, port: {name: http, number: 80}}}}
      - {path: /d, pathType: Prefix, backend: {service: {name: web, port: {}}}}
      - {path: /e, pathType: Prefix, backend: {service: {name: dns, port: {number: 53}}}}
      - {path: /f, pathType: Prefix, backend: {resource: {kind: Bucket, name: b}}}
      - {path: /g, pathType: Prefix, backend: {service: {port: {number: 80}}}}
      - {path: /h, pathType: Prefix, backend: {}}
`)},
			probs: []string{
				`bad.yaml: Ingress default/app: spec.defaultBackend.service.name: no Service "nope" in namespace default`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[0].backend.service.port.number: Service default/web has no port 8080`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[1].backend.service.port.name: Service default/web has no port named "https"`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[2].backend.service.port: set a number or a name, not both`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[3].backend.service.port: a port number or name is required`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[4].backend.service.port: port 53 of Service default/dns is UDP, an Ingress backend needs TCP`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[5].backend.resource: resource backends are not supported by the lab`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[6].backend.service.name: required`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[7].backend.service: required`,
			}},
		{name: "upstream annotation", docs: []string{labDoc, webDep, webSvc,
			"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a, annotations: {netlab.dev/upstream: endpoints}}\nspec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n",
			"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: b, annotations: {netlab.dev/upstream: pod, netlab.dev/upstreams: service}}\nspec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n"},
			probs: []string{
				`bad.yaml: Ingress default/b: metadata.annotations[netlab.dev/upstream]: must be "service" or "endpoints", got "pod"`,
				`bad.yaml: Ingress default/b: metadata.annotations[netlab.dev/upstreams]: unknown netlab annotation (known: netlab.dev/upstream)`,
			}},
		{name: "paths and hosts", docs: []string{labDoc, webDep, webSvc, ingress(`  tls: [{hosts: ["*.*.example"]}]
  rules:
  - host: 203.0.113.100
    http:
      paths:
      - {path: /a, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /b, pathType: Regex, backend: {service: {name: web, port: {number: 80}}}}
      - {path: c, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}
  - host: App.Example
    http: {paths: []}
  - host: "*.example"
`)},
			probs: []string{
				`bad.yaml: Ingress default/app: spec.tls[0].hosts[0]: must be a DNS name such as app.example or a wildcard such as *.example, got "*.*.example"`,
				`bad.yaml: Ingress default/app: spec.rules[0].host: must be a DNS name, not an IP address, got "203.0.113.100"`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[0].pathType: required (Exact, Prefix or ImplementationSpecific)`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[1].pathType: must be Exact, Prefix or ImplementationSpecific, got "Regex"`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[2].path: must start with "/", got "c"`,
				`bad.yaml: Ingress default/app: spec.rules[0].http.paths[3].path: required for pathType Exact`,
				`bad.yaml: Ingress default/app: spec.rules[1].host: must be a DNS name such as app.example or a wildcard such as *.example, got "App.Example"`,
				`bad.yaml: Ingress default/app: spec.rules[1].http.paths: at least one path is required`,
			},
			warns: []string{`bad.yaml: Ingress default/app: spec.rules[2].http: missing: this rule routes nothing`}},
		{name: "empty", docs: []string{labDoc, ingress("  ingressClassName: nginx\n"),
			"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: app}\nspec: {defaultBackend: {service: {name: x, port: {number: 1}}}}\n"},
			probs: []string{
				`bad.yaml: Ingress default/app: spec: either defaultBackend or rules must be set`,
				`bad.yaml: Ingress default/app: metadata.name: Ingress default/app is already defined in bad.yaml, document 2`,
				`bad.yaml: Ingress default/app: spec.defaultBackend.service.name: no Service "x" in namespace default`,
			},
			warns: []string{`bad.yaml: Ingress default/app: spec.ingressClassName: "nginx" is not the lab's class "netlab": the lab's ingress ignores this Ingress`}},
		{name: "secrets", docs: []string{labDoc, webDep, webSvc,
			"apiVersion: v1\nkind: Secret\nmetadata: {name: opaque}\nstringData: {password: x}\n",
			"apiVersion: v1\nkind: Secret\nmetadata: {name: nokey}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n",
			"apiVersion: v1\nkind: Secret\nmetadata: {name: garbage}\ntype: kubernetes.io/tls\nstringData: {tls.crt: xx, tls.key: yy}\n",
			ingress(`  tls: [{hosts: [app.example], secretName: opaque}, {secretName: not-in-the-scenario}]
  rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
`)},
			probs: []string{
				`bad.yaml: Secret default/nokey: data[tls.key]: required for a kubernetes.io/tls Secret`,
				`bad.yaml: Secret default/garbage: data: tls.crt and tls.key are not a usable certificate and key: tls: failed to find any PEM data in certificate input`,
				`bad.yaml: Ingress default/app: spec.tls[0].secretName: Secret default/opaque has type "Opaque", want kubernetes.io/tls`,
			},
			warns: []string{`bad.yaml: Secret default/opaque: type: "Opaque" is not used: the lab reads only kubernetes.io/tls Secrets, ignored`}},
	})
}
