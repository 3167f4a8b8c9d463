// Package integration holds the root integration tests of kube-proxy in a real lab: the
// node agents, the endpoints controller and the rules they program, tested with real
// packets. It has no code of its own; unlike its parent package it is not pure (its
// tests start labs).
package integration
