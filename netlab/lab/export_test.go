package lab

import (
	"context"

	"github.com/netlabdev/netlab/netlab/plan"
)

// SetPodsInFlight sets the bound on pods started and not yet ready, for a test; the
// returned func restores it.
func SetPodsInFlight(n int) (restore func()) {
	old := podsInFlight
	podsInFlight = n
	return func() { podsInFlight = old }
}

// WriteHosts is up's writer of the namespaces' hosts and resolv.conf files, for a test.
func WriteHosts(p *plan.Plan) error { return writeHosts(context.Background(), p, Options{}) }

// OnAgentStarted has fn told the pid and process of every agent up starts, for a test;
// the returned func undoes it.
func OnAgentStarted(fn func(pid int, pr plan.Process)) (restore func()) {
	old := startedHook
	startedHook = fn
	return func() { startedHook = old }
}

// SetPodsBeforeFabric sets how many pods start beside the links, for a test; the returned
// func restores it.
func SetPodsBeforeFabric(n int) (restore func()) {
	old := podsBeforeFabric
	podsBeforeFabric = n
	return func() { podsBeforeFabric = old }
}

// CreatePodLogs and RemoveEmpty are up's early pod logs and a rollback's removal of them,
// for a test.
var (
	CreatePodLogs = createPodLogs
	RemoveEmpty   = removeEmpty
)

// IngressStatusOf is status's view of a plan's Ingresses, for a test.
var IngressStatusOf = ingressStatus
