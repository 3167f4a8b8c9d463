package scenario

import (
	"testing"
)

func TestWarnings(t *testing.T) {
	runCases(t, []vcase{
		{name: "deployment", docs: []string{labDoc, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, annotations: {team: a}}
spec:
  replicas: 1
  strategy: {type: Recreate}
  minReadySeconds: 5
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, annotations: {prometheus.io/scrape: "true"}}
    spec:
      hostNetwork: false
      hostname: web0
      subdomain: web-hl
      serviceAccountName: web
      tolerations: [{key: k, operator: Exists}]
      volumes: [{name: v, emptyDir: {}}]
      containers:
      - name: web
        image: nginx:1.27
        imagePullPolicy: IfNotPresent
        command: [nginx]
        args: [-g, daemon off;]
        env: [{name: A, value: b}]
        resources: {limits: {cpu: 100m}}
        livenessProbe: {httpGet: {path: /, port: 80}}
        ports: [{name: http, containerPort: 80, hostPort: 8080}]
        readinessProbe:
          httpGet: {path: /, port: http, scheme: HTTPS, httpHeaders: [{name: X, value: v1}]}
          periodSeconds: 3
        volumeMounts: [{name: v, mountPath: /v}]
        colour: blue
      - name: sidecar
        readinessProbe: {exec: {command: [cat]}}
status: {replicas: 1}
`},
			warns: []string{
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].colour: unknown field, ignored`,
				`bad.yaml: Deployment default/web: status: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.minReadySeconds: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.strategy: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.metadata.annotations: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.serviceAccountName: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.tolerations: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.volumes: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].args: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].command: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].env: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].livenessProbe: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].resources: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].volumeMounts: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].ports[0].hostPort: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].readinessProbe.httpGet.httpHeaders: not modelled by the lab, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[0].readinessProbe.httpGet.scheme: HTTPS is not modelled: the pod's agent answers plain HTTP, ignored`,
				`bad.yaml: Deployment default/web: spec.template.spec.containers[1].readinessProbe.exec: not modelled by the lab, ignored`,
			}},
		{name: "service and ingress", docs: []string{labDoc, webDep, `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  externalIPs: [192.0.2.10]
  ipFamilies: [IPv6]
  ipFamilyPolicy: RequireDualStack
  loadBalancerSourceRanges: [10.0.0.0/8]
  publishNotReadyAddresses: true
  externalName: web.example
  ports: [{name: http, port: 80, targetPort: http, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: plain}
spec:
  selector: {app: web}
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  ports: [{port: 80, targetPort: http}]
`, `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  annotations: {nginx.ingress.kubernetes.io/rewrite-target: /, kubernetes.io/ingress.class: nginx}
spec:
  rules: [{http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]
`},
			warns: []string{
				`bad.yaml: Service default/web: spec.externalName: ignored: only ExternalName Services use it`,
				`bad.yaml: Service default/web: spec.externalIPs: kube-proxy's rules for them are written on every node, but nothing routes them to a node: only pods and nodes reach them`,
				`bad.yaml: Service default/web: spec.ipFamilies: ignored: the lab is IPv4 single-stack`,
				`bad.yaml: Service default/web: spec.ipFamilyPolicy: ignored: the lab is IPv4 single-stack`,
				`bad.yaml: Service default/web: spec.ports[0].appProtocol: not modelled by the lab, ignored`,
				`bad.yaml: Ingress default/app: metadata.annotations[nginx.ingress.kubernetes.io/rewrite-target]: not modelled by the lab, ignored`,
				`bad.yaml: Ingress default/app: metadata.annotations[kubernetes.io/ingress.class]: "nginx" is not the lab's class "netlab": the lab's ingress ignores this Ingress`,
			}},
	})
}
