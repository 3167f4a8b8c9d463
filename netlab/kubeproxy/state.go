package kubeproxy

import "time"

// EndpointsFile is what the endpoints controller writes (atomically) for the node agents:
// every service port of the lab with all its endpoints and their current readiness.
type EndpointsFile struct {
	// Generation grows by one with every change the controller writes.
	Generation int64         `json:"generation"`
	Updated    time.Time     `json:"updated"`
	Ports      []ServicePort `json:"servicePorts"`
	// PodReady is every pod's readiness (its node's too), for what has no ClusterIP:
	// the cluster DNS publishes headless Services' ready pods.
	PodReady map[string]bool `json:"podReady,omitempty"`
}

// SyncStatus is what a node's kube-proxy agent reports after each sync attempt.
type SyncStatus struct {
	Node string `json:"node"`
	// Generation is the EndpointsFile generation the node's rules now reflect.
	Generation int64     `json:"generation"`
	Full       bool      `json:"full"`
	Ms         float64   `json:"ms"`
	At         time.Time `json:"at"`
	Error      string    `json:"error,omitempty"`
}

// LocalReadyEndpoints counts the distinct ready endpoint addresses of Service svc
// ("ns/name") on node, as kube-proxy's health check server reports them.
func LocalReadyEndpoints(ports []ServicePort, svc, node string) int {
	seen := map[string]bool{}
	for _, p := range ports {
		if p.ServiceName() != svc {
			continue
		}
		for _, ep := range p.Endpoints {
			if ep.Ready && ep.Node == node {
				seen[ep.IP] = true
			}
		}
	}
	return len(seen)
}
