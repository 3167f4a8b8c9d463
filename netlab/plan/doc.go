// Package plan turns a validated scenario into a Plan: every namespace, link, address,
// route, sysctl, Service allocation and process the lab will have, as plain data.
//
// A Plan is deterministic for a given scenario and can be printed (`netlab plan`) without
// root. The package is pure: it never imports netlink, netns or go-iptables and never
// touches the kernel.
package plan
