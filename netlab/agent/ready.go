package agent

import "github.com/netlabdev/netlab/netlab/ready"

// ReadyFDEnv names the environment variable holding the readiness pipe's descriptor.
const ReadyFDEnv = ready.FDEnv

// NotifyReady tells whoever started this agent that it serves. It is a no-op when the
// agent was started by hand.
func NotifyReady() { ready.Notify() }
