// Command netlab-agent runs a lab's node and cluster agents: kube-proxy, the ingress, the
// endpoints controller, the LB, the cluster DNS pods and the supervisor (agent.Roles). `netlab up`
// starts it, with the same command line as `netlab agent <role>` (by which down, status
// and the supervisor recognise a lab's agents); it is installed beside the netlab binary,
// which finds it there. It imports no Kubernetes types, no Prometheus and no cobra, so
// that an agent does not pay for the CLI's package initialisation at every start.
package main

import (
	"os"

	"github.com/netlabdev/netlab/netlab/agent"
)

func main() { os.Exit(agent.Main(os.Args[1:], os.Stderr)) }
