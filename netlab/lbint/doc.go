// Package lbint holds the root integration tests of the external load balancer:
// schedulers, health checks, failover and rule application on real labs. It has no
// non-test code; the load balancer itself is netlab/lb (pure) and netlab/agent (lb.go).
package lbint
