// Package agent holds the mains of the processes a lab runs, one file per role: the pod
// echo server, the ingress proxy, the per-node kube-proxy, the LB health checker and the
// endpoints controller. `up` starts each one inside its namespace as
// `netlab agent <role> ...`; an agent signals readiness by writing "READY\n" to the file
// descriptor named by NETLAB_READY_FD (when set) and closing it.
package agent
