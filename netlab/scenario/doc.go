// Package scenario reads a lab description: one optional netlab.dev/v1alpha1 Lab object
// plus plain Kubernetes manifests (apps/v1 Deployment, v1 Service, v1 Secret,
// networking.k8s.io/v1 Ingress) decoded with the real k8s.io/api types.
//
// It owns parsing, defaults and validation. It is pure: it never imports netlink, netns,
// go-iptables or anything else that touches the kernel, and it never needs root.
package scenario
