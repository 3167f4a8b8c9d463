// Package nftables turns Services and their endpoints into what kube-proxy's nftables
// mode writes: one table "ip kube-proxy" with its base chains, its dispatch maps
// (service-ips, service-nodeports, no-endpoint-services, no-endpoint-nodeports,
// firewall-ips), its sets (cluster-ips, nodeport-ips, affinity-*), and per service port
// the service-, local-, external-, firewall- and endpoint- chains named as kube-proxy
// names them (sha256 → base32, 8 characters: "service-ULMVA6XW-ns1/svc1/tcp/p80").
//
// It shares the Service and endpoint model (kubeproxy.ServicePort, kubeproxy.Node,
// kubeproxy.Categorize) with the iptables renderer, not its text. It owns the renderer
// (Render → *Ruleset), the nft -f transactions that apply a Ruleset whole (Full) or as the
// difference from the previous one (Diff: only changed chains and map elements, stale
// chains and affinity sets removed), the kube-proxy-style dump (Dump), a parser of that
// text (Parse) and a pure packet tracer (Trace) that walks a new connection through the
// rules and names every chain and verdict-map element it meets.
//
// It is pure: no netlink, no processes. Applying a transaction is the agent's job.
package nftables
