// Package dns holds the cluster DNS's records: from the lab's Services, their endpoints'
// readiness and the cluster domain, the answers Kubernetes' DNS-Based Service Discovery
// specification asks for (as CoreDNS's kubernetes plugin gives them), and the answer to
// one DNS message. The DNS agent serves them; `netlab trace` may show them.
//
// The package is pure: it never imports netlink, netns, go-iptables or the kernel package
// and opens no socket. It builds on github.com/miekg/dns for the wire format.
package dns
