package agent

import "github.com/netlabdev/netlab/netlab/podagent"

// The pod echo agent lives in package podagent, which imports only the standard library:
// `up` runs it as the small netlab-pod binary (cmd/netlab-pod), so a pod's process does
// not pay for the CLI's package initialisation. These names keep `netlab agent pod`.

// PodConfig is what a pod agent serves.
type PodConfig = podagent.Config

// PortSpec is a container port: number and protocol.
type PortSpec = podagent.PortSpec

// ParsePortSpec reads "8080/TCP" (protocol defaults to TCP).
func ParsePortSpec(s string) (PortSpec, error) { return podagent.ParsePortSpec(s) }

// RunPod serves the echo on every port until ctx ends.
var RunPod = podagent.Run
