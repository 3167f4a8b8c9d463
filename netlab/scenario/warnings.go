package scenario

import (
	"encoding/json"
	"slices"
)

// MsgNotModelled is the warning for a field the lab reads but does not model.
const MsgNotModelled = "not modelled by the lab, ignored"

// What the lab models of each Kubernetes object: every other field that is set gets a
// MsgNotModelled warning (unknown fields get one from Parse). Fields checked elsewhere
// with a more specific message are listed here too.
var (
	// metadata: name and namespace are used, labels are harmless; annotations are
	// checked per kind (Deployment: harmless; Service: netlab.dev/*; Ingress: warned).
	modelledMeta = []string{"name", "namespace", "labels", "annotations", "creationTimestamp"}
	// A Deployment is its replicas of a pod template.
	modelledDeploymentSpec = []string{"replicas", "selector", "template"}
	modelledTemplateMeta   = []string{"labels", "creationTimestamp"}
	// A pod is placed (nodeName, nodeSelector) and runs its containers as echo agents;
	// hostname and subdomain name its endpoint of a headless Service in the cluster DNS.
	modelledPodSpec = []string{"containers", "nodeName", "nodeSelector", "terminationGracePeriodSeconds", "restartPolicy",
		"hostname", "subdomain"}
	// Every container runs the netlab echo agent, whatever its image: image and
	// imagePullPolicy are expected and accepted without a warning.
	modelledContainer = []string{"name", "image", "imagePullPolicy", "ports", "readinessProbe", "lifecycle"}
	modelledPort      = []string{"name", "containerPort", "protocol"}
	// readinessProbe: httpGet and tcpSocket against the agent, with their timings.
	modelledProbe = []string{"httpGet", "tcpSocket", "initialDelaySeconds", "periodSeconds",
		"timeoutSeconds", "successThreshold", "failureThreshold"}
	modelledHTTPGet   = []string{"path", "port", "scheme"}
	modelledTCPSocket = []string{"port"}
	// Services: ipFamilies [IPv4] and ipFamilyPolicy SingleStack are what the lab is.
	modelledServiceSpec = []string{"type", "selector", "ports", "clusterIP", "clusterIPs",
		"externalTrafficPolicy", "internalTrafficPolicy", "healthCheckNodePort",
		"sessionAffinity", "sessionAffinityConfig", "loadBalancerIP", "ipFamilies", "ipFamilyPolicy", "externalName",
		"publishNotReadyAddresses", "externalIPs", "loadBalancerSourceRanges", "allocateLoadBalancerNodePorts"}
	modelledServicePort = []string{"name", "protocol", "port", "targetPort", "nodePort"}
	modelledIngressSpec = []string{"ingressClassName", "defaultBackend", "tls", "rules"}
	// An IngressClass is its controller; annotations are checked in ingressClass.
	modelledIngressClassSpec = []string{"controller"}
	modelledClassMeta        = []string{"name", "namespace", "annotations", "labels", "creationTimestamp"}
	modelledSecret           = []string{"apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"}
	modelledObject           = []string{"apiVersion", "kind", "metadata", "spec"}
)

// unmodelled warns about every field of obj (marshalled to JSON) that is set and not in
// modelled; prefix is obj's JSON path ("" or ending in ".").
func (v *validator) unmodelled(w where, prefix string, obj any, modelled []string) {
	b, err := json.Marshal(obj)
	if err != nil {
		return
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return
	}
	for _, k := range sortedKeys(m) {
		if slices.Contains(modelled, k) || isEmptyJSON(m[k]) {
			continue
		}
		v.warnf(w, prefix+k, MsgNotModelled)
	}
}

// isEmptyJSON reports whether a JSON value holds nothing: null, "", false, 0, or objects
// and arrays of such.
func isEmptyJSON(raw json.RawMessage) bool {
	var x any
	if json.Unmarshal(raw, &x) != nil {
		return false
	}
	return isEmpty(x)
}

func isEmpty(x any) bool {
	switch t := x.(type) {
	case nil:
		return true
	case string:
		return t == ""
	case bool:
		return !t
	case float64:
		return t == 0
	case []any:
		for _, e := range t {
			if !isEmpty(e) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range t {
			if !isEmpty(e) {
				return false
			}
		}
		return true
	}
	return false
}
