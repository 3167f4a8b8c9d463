package agent

import (
	"context"

	"github.com/netlabdev/netlab/netlab/ready"
)

// ReadyFDEnv names the environment variable holding the readiness pipe's descriptor.
const ReadyFDEnv = ready.FDEnv

// NotifyReady tells whoever started this agent that it serves. It is a no-op when the
// agent was started by hand.
func NotifyReady() { ready.Notify() }

// waitRelease waits until whoever started this agent held lets it go on (at once when
// it was not started held): see ready.WaitRelease.
func waitRelease(ctx context.Context) error { return ready.WaitRelease(ctx) }
