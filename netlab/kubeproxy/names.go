package kubeproxy

import (
	"crypto/sha256"
	"encoding/base32"
	"net"
	"strconv"
	"strings"
)

// Chain names and prefixes, kube-proxy's own.
const (
	ChainServices         = "KUBE-SERVICES"
	ChainExternalServices = "KUBE-EXTERNAL-SERVICES"
	ChainNodePorts        = "KUBE-NODEPORTS"
	ChainPostrouting      = "KUBE-POSTROUTING"
	ChainMarkMasq         = "KUBE-MARK-MASQ"
	ChainForward          = "KUBE-FORWARD"
	ChainProxyFirewall    = "KUBE-PROXY-FIREWALL"

	PrefixSVC = "KUBE-SVC-"
	PrefixSVL = "KUBE-SVL-"
	PrefixEXT = "KUBE-EXT-"
	PrefixFW  = "KUBE-FW-"
	PrefixSEP = "KUBE-SEP-"

	// MasqMark is kube-proxy's default masquerade mark (--iptables-masquerade-bit=14).
	MasqMark = "0x4000"
)

// portProtoHash is kube-proxy's chain hash: the first 16 characters of the base32
// (standard alphabet) encoding of sha256(servicePortName + lowercase protocol [+ endpoint]).
func portProtoHash(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "")))
	return base32.StdEncoding.EncodeToString(h[:])[:16]
}

// SVCChain is the KUBE-SVC-<hash> chain of a service port (Cluster traffic policy).
func SVCChain(servicePortName, protocol string) string {
	return PrefixSVC + portProtoHash(servicePortName, strings.ToLower(protocol))
}

// SVLChain is the KUBE-SVL-<hash> chain of a service port (Local traffic policy).
func SVLChain(servicePortName, protocol string) string {
	return PrefixSVL + portProtoHash(servicePortName, strings.ToLower(protocol))
}

// EXTChain is the KUBE-EXT-<hash> chain of a service port (external destinations).
func EXTChain(servicePortName, protocol string) string {
	return PrefixEXT + portProtoHash(servicePortName, strings.ToLower(protocol))
}

// FWChain is the KUBE-FW-<hash> chain of a service port (loadBalancerSourceRanges).
func FWChain(servicePortName, protocol string) string {
	return PrefixFW + portProtoHash(servicePortName, strings.ToLower(protocol))
}

// SEPChain is the KUBE-SEP-<hash> chain of one endpoint ("ip:port") of a service port.
func SEPChain(servicePortName, protocol, endpoint string) string {
	return PrefixSEP + portProtoHash(servicePortName, strings.ToLower(protocol), endpoint)
}

// EndpointString is kube-proxy's endpoint string, "ip:port".
func (e Endpoint) String() string {
	return net.JoinHostPort(e.IP, strconv.Itoa(int(e.Port)))
}

// IsServiceChain reports whether name is a per-service chain kube-proxy owns (and deletes
// when stale).
func IsServiceChain(name string) bool {
	for _, p := range []string{PrefixSVC, PrefixSVL, PrefixSEP, PrefixFW, PrefixEXT} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
