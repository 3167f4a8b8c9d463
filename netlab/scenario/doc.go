// Package scenario reads a lab description: one optional netlab.dev/v1alpha1 Lab object
// plus plain Kubernetes manifests (apps/v1 Deployment, v1 Service, v1 Secret,
// networking.k8s.io/v1 Ingress) decoded with the real k8s.io/api types.
//
// It owns parsing (Load, Parse), defaults (ApplyDefaults) and validation (Validate): every
// problem of a scenario is reported at once, as Problems naming file, object and field,
// before anything is built. Fields of Kubernetes objects that the lab reads but does not
// model, and unknown fields, become Scenario.Warnings: never dropped silently.
//
// It is pure: it never imports netlink, netns, go-iptables or anything else that touches
// the kernel, it never execs a process, and it never needs root.
package scenario
