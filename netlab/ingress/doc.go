// Package ingress is the lab's L7 ingress controller as a library: it turns
// networking.k8s.io/v1 Ingress objects into a routing table with the matching rules of
// the Kubernetes Ingress API, and serves an HTTP/HTTPS reverse proxy (an http.Handler)
// that forwards each request to the matched Service's ClusterIP:port.
//
// It owns:
//   - routing (table.go, host.go): hosts exact or "*." wildcard covering one DNS label,
//     matched case-insensitively without the port; Exact and Prefix paths (Prefix is
//     element-wise on "/"); ImplementationSpecific is treated as Prefix; longest path
//     wins, Exact beats Prefix at equal length; rules without a host; defaultBackend;
//     several Ingress objects merged per host; other ingress classes ignored with a warning;
//   - the proxy (proxy.go): forwarding headers, request ids, 404/502/503/504, atomic
//     reload of the routing table;
//   - TLS (tls.go): the lab CA (ECDSA P-256), certificate issuance, kubernetes.io/tls
//     Secrets, SNI selection;
//   - server hardening (server.go), the plain-HTTP/1 connection loop (plain.go: the
//     client side of port 80 without net/http's server), JSON access log (accesslog.go)
//     and Prometheus metrics
//     (metrics.go).
//
// It is PURE: it never imports netlink, netns or go-iptables, never execs a process and
// never needs root. Its only side effects are the network sockets its servers are given
// and the CA directory it is told to read or create.
package ingress
