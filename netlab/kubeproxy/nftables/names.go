package nftables

import (
	"crypto/sha256"
	"encoding/base32"
	"net"
	"strings"
)

// The table, its family, and kube-proxy's names for its base chains, top-level chains,
// sets and maps.
const (
	Family = "ip"
	Table  = "kube-proxy"

	ChainFilterPreroutingPreDNAT = "filter-prerouting-pre-dnat"
	ChainFilterOutputPreDNAT     = "filter-output-pre-dnat"
	ChainFilterInput             = "filter-input"
	ChainFilterForward           = "filter-forward"
	ChainFilterOutput            = "filter-output"
	ChainNATPrerouting           = "nat-prerouting"
	ChainNATOutput               = "nat-output"
	ChainNATPostrouting          = "nat-postrouting"

	ChainServices               = "services"
	ChainServiceEndpointsCheck  = "service-endpoints-check"
	ChainNodePortEndpointsCheck = "nodeport-endpoints-check"
	ChainReject                 = "reject-chain"
	ChainClusterIPsCheck        = "cluster-ips-check"
	ChainFirewallCheck          = "firewall-check"
	ChainMarkMasq               = "mark-for-masquerade"
	ChainMasquerading           = "masquerading"

	MapServiceIPs          = "service-ips"
	MapServiceNodePorts    = "service-nodeports"
	MapNoEndpointServices  = "no-endpoint-services"
	MapNoEndpointNodePorts = "no-endpoint-nodeports"
	MapFirewallIPs         = "firewall-ips"
	SetClusterIPs          = "cluster-ips"
	SetNodePortIPs         = "nodeport-ips"

	PrefixService  = "service-"
	PrefixLocal    = "local-"
	PrefixExternal = "external-"
	PrefixEndpoint = "endpoint-"
	PrefixAffinity = "affinity-"
	PrefixFirewall = "firewall-"

	// MasqMark is kube-proxy's default masquerade mark (--masquerade-bit=14).
	MasqMark = "0x4000"

	// nameMax is nftables' longest object name; kube-proxy keeps 16 for the prefix.
	nameMax     = 256
	baseNameMax = nameMax - 16
)

// hashAndTruncate is kube-proxy's name base: the first 8 characters of the base32
// (standard alphabet) sha256 of name, a dash, then name, cut to fit with "...".
func hashAndTruncate(name string) string {
	sum := sha256.Sum256([]byte(name))
	out := base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + name
	if len(out) > baseNameMax {
		out = out[:baseNameMax-3] + "..."
	}
	return out
}

// portBase is "HASH-ns/name/proto/portname" for a service port.
func portBase(namespace, name, protocol, portName string) string {
	return hashAndTruncate(namespace + "/" + name + "/" + strings.ToLower(protocol) + "/" + portName)
}

// endpointBase is "HASH-ns/name/proto/portname__ip/port" for one endpoint ("ip:port").
func endpointBase(namespace, name, protocol, portName, endpoint string) string {
	ip, port, err := net.SplitHostPort(endpoint)
	if err != nil {
		ip, port = endpoint, ""
	}
	ip = strings.ReplaceAll(ip, ":", ".")
	return hashAndTruncate(namespace + "/" + name + "/" + strings.ToLower(protocol) + "/" + portName + "__" + ip + "/" + port)
}

// ServiceChain, LocalChain, ExternalChain and FirewallChain name a service port's chains;
// portName is the Service port's name ("" when unnamed).
func ServiceChain(namespace, name, protocol, portName string) string {
	return PrefixService + portBase(namespace, name, protocol, portName)
}

// LocalChain: see ServiceChain.
func LocalChain(namespace, name, protocol, portName string) string {
	return PrefixLocal + portBase(namespace, name, protocol, portName)
}

// ExternalChain: see ServiceChain.
func ExternalChain(namespace, name, protocol, portName string) string {
	return PrefixExternal + portBase(namespace, name, protocol, portName)
}

// FirewallChain: see ServiceChain.
func FirewallChain(namespace, name, protocol, portName string) string {
	return PrefixFirewall + portBase(namespace, name, protocol, portName)
}

// EndpointChain names the chain of one endpoint ("ip:port") of a service port.
func EndpointChain(namespace, name, protocol, portName, endpoint string) string {
	return PrefixEndpoint + endpointBase(namespace, name, protocol, portName, endpoint)
}

// AffinitySet names the ClientIP affinity set of one endpoint of a service port.
func AffinitySet(namespace, name, protocol, portName, endpoint string) string {
	return PrefixAffinity + endpointBase(namespace, name, protocol, portName, endpoint)
}

// IsServiceChain reports whether a chain is one of the per-service chains kube-proxy
// creates and deletes when stale: only those hold a "/".
func IsServiceChain(name string) bool { return strings.Contains(name, "/") }

// IsAffinitySet reports whether a set is a per-endpoint affinity set.
func IsAffinitySet(name string) bool { return strings.HasPrefix(name, PrefixAffinity) }
