// Package ingressint holds the tests of the ingress agent: the agent run
// in-process against a plan file on 127.0.0.1 (no root), and root integration tests on
// real labs, from the client namespace through a node's ingress and through the VIP. It
// has no non-test code; the proxy is netlab/ingress (pure) and netlab/agent (ingress.go).
package ingressint
