package kubeproxy

// Address plan of these tests (the lab's defaults):
//
//	node network  172.18.0.0/24   node-1 .11, node-2 .12
//	pod network   10.244.0.0/16   node-1 10.244.1.0/24, node-2 10.244.2.0/24
//	services      10.96.0.0/12
//	wan           203.0.113.0/24  client 203.0.113.2, LB VIP 203.0.113.101
//	external IPs  198.51.100.0/24

const (
	podCIDR                = "10.244.0.0/16"
	node1IP                = "172.18.0.11"
	node2IP                = "172.18.0.12"
	clientIP               = "203.0.113.2"
	lbVIP                  = "203.0.113.101"
	externIP               = "198.51.100.10"
	webIP                  = "10.96.0.10"
	apiIP                  = "10.96.0.20"
	emptyIP                = "10.96.0.30"
	itpIP                  = "10.96.0.40"
	localIP                = "10.96.0.50"
	dnsIP                  = "10.96.0.53"
	extSvcIP               = "10.96.0.60"
	web1, web2, web3, web4 = "10.244.1.2", "10.244.2.2", "10.244.2.3", "10.244.1.4"
)

var (
	node1 = Node{Name: "node-1", IP: node1IP, ClusterCIDR: podCIDR}
	node2 = Node{Name: "node-2", IP: node2IP, ClusterCIDR: podCIDR}
)

func webEndpoints(port int32) []Endpoint {
	return []Endpoint{
		// deliberately unsorted: Render orders endpoints itself
		{Pod: "web-3", Node: "node-2", IP: web3, Port: port, Ready: true},
		{Pod: "web-1", Node: "node-1", IP: web1, Port: port, Ready: true},
		{Pod: "web-2", Node: "node-2", IP: web2, Port: port, Ready: true},
		{Pod: "web-4", Node: "node-1", IP: web4, Port: port, Ready: false},
	}
}

// fixturePorts covers every feature Render handles.
func fixturePorts() []ServicePort {
	return []ServicePort{
		{Namespace: "default", Name: "web", PortName: "http", Protocol: "TCP", ClusterIP: webIP, Port: 80, NodePort: 30080,
			Endpoints: webEndpoints(8080)},
		{Namespace: "default", Name: "web", PortName: "https", Protocol: "TCP", ClusterIP: webIP, Port: 443, NodePort: 30443,
			Endpoints: webEndpoints(8443)},
		{Namespace: "default", Name: "api", Protocol: "TCP", ClusterIP: apiIP, Port: 8080,
			AffinityClientIP: true, AffinitySeconds: 10800,
			Endpoints: []Endpoint{
				{Pod: "api-1", Node: "node-1", IP: "10.244.1.3", Port: 8080, Ready: true},
				{Pod: "api-2", Node: "node-2", IP: "10.244.2.4", Port: 8080, Ready: true},
			}},
		{Namespace: "kube-system", Name: "dns", PortName: "dns", Protocol: "UDP", ClusterIP: dnsIP, Port: 53,
			Endpoints: []Endpoint{
				{Pod: "dns-1", Node: "node-1", IP: "10.244.1.10", Port: 5353, Ready: true},
				{Pod: "dns-2", Node: "node-2", IP: "10.244.2.10", Port: 5353, Ready: true},
			}},
		{Namespace: "default", Name: "empty", Protocol: "TCP", ClusterIP: emptyIP, Port: 80, NodePort: 30030,
			ExternalIPs: []string{"198.51.100.30"},
			Endpoints:   []Endpoint{{Pod: "empty-1", Node: "node-1", IP: "10.244.1.30", Port: 80, Ready: false}}},
		{Namespace: "default", Name: "local", PortName: "http", Protocol: "TCP", ClusterIP: localIP, Port: 80, NodePort: 30090,
			LoadBalancerIPs: []string{lbVIP}, ExternalLocal: true, HealthCheckNodePort: 32000,
			Endpoints: []Endpoint{{Pod: "local-1", Node: "node-2", IP: "10.244.2.5", Port: 8080, Ready: true}}},
		{Namespace: "default", Name: "itp", Protocol: "TCP", ClusterIP: itpIP, Port: 80, InternalLocal: true,
			Endpoints: []Endpoint{{Pod: "itp-1", Node: "node-1", IP: "10.244.1.40", Port: 80, Ready: true}}},
		{Namespace: "default", Name: "ext", Protocol: "TCP", ClusterIP: extSvcIP, Port: 80, ExternalIPs: []string{externIP},
			Endpoints: []Endpoint{{Pod: "ext-1", Node: "node-2", IP: "10.244.2.60", Port: 80, Ready: true}}},
	}
}

// existingChains is a nat table as iptables-save would list it before the sync.
var existingChains = []string{
	"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "CNI-HOSTPORT-DNAT",
	"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ",
	"KUBE-SVC-STALE0000000000A", "KUBE-SEP-STALE0000000000B",
	SVCChain("default/web:http", "tcp"), // still in use: must not be deleted
}
