// Package kubeproxy turns Services and their endpoints into the iptables rules that
// kube-proxy's iptables mode writes, as one iptables-restore --noflush input for the
// filter and nat tables, with kube-proxy's own chain names (KUBE-SERVICES,
// KUBE-SVC-<hash>, KUBE-SVL-<hash>, KUBE-EXT-<hash>, KUBE-SEP-<hash>, KUBE-NODEPORTS,
// KUBE-MARK-MASQ, KUBE-POSTROUTING, KUBE-FORWARD, ...).
//
// It owns: the rule renderer (Render, and the incremental sync's partial renderings), the
// small data table of jump rules from built-in chains (JumpRules, MissingJumps) and the
// chain-name hash. It reads a node's iptables-save output through package iptables; its
// tests trace the rendered rules with the test model in internal/iptablestest, so
// Service behaviour is tested without a kernel.
//
// It is pure: it never imports netlink, netns, go-iptables or anything that touches the
// kernel, and it never executes processes. Applying the rules is the agent's job.
package kubeproxy
