package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"
)

// NodePort range, as the apiserver's default --service-node-port-range.
const (
	NodePortMin = 30000
	NodePortMax = 32767
	// Interface names of the lab objects.
	BridgeCNI   = "cni0"
	NodeIface   = "eth0"
	PodIface    = "eth0"
	ClientIface = "eth0"
	LBWanIface  = "eth0"
	LBFabIface  = "eth1"
	// DefaultProbePeriod is how often the lab probes every pod's readiness, whatever the
	// manifest's periodSeconds (whose minimum, 1 s, and default, 10 s, would hide a dead
	// pod for seconds): drills show the endpoints react within a fraction of a second.
	DefaultProbePeriod = 250 * time.Millisecond
	// MaxLabName keeps nl-<lab>-<object> readable (scenario.MaxLabName: a test holds
	// them equal; this package does not import the scenario's, which needs Kubernetes).
	MaxLabName = 24
)

// CheckLabName says whether name can be a lab name. Lab names have no '-' so that
// nl-<lab>-<object> parses back to its lab unambiguously (down finds objects by name).
// It is the rule of scenario.IsLabName (a test holds them equal).
func CheckLabName(name string) error {
	ok := name != "" && len(name) <= MaxLabName
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("lab name %q must be 1-%d lowercase letters and digits, starting with a letter", name, MaxLabName)
	}
	return nil
}

// HostVethName is the node-side name of a pod's veth, hashed like CNI plugins do so that it
// fits IFNAMSIZ whatever the pod's name.
func HostVethName(lab, pod string) string {
	h := sha256.Sum256([]byte(lab + "/" + pod))
	return "veth" + hex.EncodeToString(h[:4])
}

// MACOf is a stable, locally administered unicast MAC for a lab object.
func MACOf(lab, object string) string {
	h := sha256.Sum256([]byte(lab + "/" + object))
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3], h[4])
}

// Address helpers (IPv4), shared with the builder (package planbuild).

// NthAddr is the n-th address of prefix p (0: its network address).
func NthAddr(p netip.Prefix, n int) netip.Addr { return nth(p, n) }

// AddOffset is a + n.
func AddOffset(a netip.Addr, n uint64) netip.Addr { return addOffset(a, n) }

// HostCount is the number of usable host addresses of p (network and broadcast excluded).
func HostCount(p netip.Prefix) int { return hostCount(p) }

// LastAddr is p's last address (its broadcast address).
func LastAddr(p netip.Prefix) netip.Addr {
	return addOffset(p.Masked().Addr(), (uint64(1)<<(32-p.Bits()))-1)
}

// CIDR is a in CIDR form with p's length ("10.244.1.2/24").
func CIDR(a netip.Addr, p netip.Prefix) string { return cidr(a, p) }

// Addr strips the prefix length of a CIDR-form address ("10.244.1.2/24" → "10.244.1.2").
func Addr(c string) string { return addrOf(c) }

func nth(p netip.Prefix, n int) netip.Addr { return addOffset(p.Masked().Addr(), uint64(n)) }

func addOffset(a netip.Addr, n uint64) netip.Addr {
	b := a.As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	v += n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func hostCount(p netip.Prefix) int {
	bits := 32 - p.Bits()
	if bits >= 31 {
		return 1 << 30
	}
	return (1 << bits) - 2
}

func cidr(a netip.Addr, p netip.Prefix) string { return netip.PrefixFrom(a, p.Bits()).String() }

// addrOf strips the prefix length of a CIDR-form address.
func addrOf(c string) string {
	if pr, err := netip.ParsePrefix(c); err == nil {
		return pr.Addr().String()
	}
	return c
}
