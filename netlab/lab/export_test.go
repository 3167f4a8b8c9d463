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

// OnAgentStarted has fn told the pid of every agent up starts, for a test; the returned
// func undoes it.
func OnAgentStarted(fn func(pid int)) (restore func()) {
	old := startedHook
	startedHook = fn
	return func() { startedHook = old }
}
