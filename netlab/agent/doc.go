// Package agent holds the mains of the node and cluster agents a lab runs, one file per
// role: the per-node kube-proxy, the endpoints controller, the LB health checker and the
// cluster DNS, and Main, their command line (and the ingress's, whose main is package
// ingressagent's), which is the whole of the netlab-agent binary
// (cmd/netlab-agent) and what `netlab agent <role>` runs for them. `up` starts each one
// inside its namespace as `netlab-agent agent <role> ...`; an agent signals readiness by
// writing "READY\n" to the file descriptor named by NETLAB_READY_FD (when set) and closing
// it. The pod echo is package podagent (netlab-pod).
package agent
