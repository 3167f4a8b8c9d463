// Package kernel holds every side effect netlab has on the machine: named network
// namespaces, links, addresses and routes through netlink, sysctls, iptables-restore and
// processes started inside namespaces.
//
// Do is the only place that calls setns; everything else either uses a netlink handle
// bound to a namespace or goes through Do. Nothing here ever changes the root namespace:
// every function takes the name of a lab namespace.
package kernel
