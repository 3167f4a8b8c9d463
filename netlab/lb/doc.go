// Package lb is netlab's external L4 load balancer, modelled on IPVS in NAT mode with
// keepalived-style health checks, expressed as iptables rules in the LB namespace.
//
// It owns:
//   - the virtual service model (VirtualService, Backend) and its validation;
//   - Render: the iptables-restore --noflush text for the LB namespace (nat, mangle and
//     filter), with only netlab-owned chains (NETLAB-LB-*, NETLAB-VS-*, NETLAB-RS-*,
//     NETLAB-ST-*), plus JumpRules, the small data table of jumps from built-in chains;
//   - the schedulers: rr and wrr (statistic nth over IPVS's interleaved weighted
//     sequence), sh (HMARK source hash over a fixed bucket table), random (statistic
//     probability, weighted) and persistence (-m recent, like ipvsadm -p). lc is rejected:
//     iptables has no per-connection view of a real server's active connections;
//   - the health state machine (rise/fall, like keepalived) and the Checker that runs TCP
//     or HTTP(S) checks on an interval with a timeout.
//
// It is pure: it never imports netlink, netns or go-iptables, never execs a process and
// never needs root. The lb agent (netlab/agent) applies what Render prints.
package lb
