// Command netlab-pod is a lab pod's process: the HTTP (and UDP) echo on each container
// port. `netlab up` starts it inside the pod's namespace; it is installed beside the netlab
// binary, which finds it there. It imports only the standard library, so that a pod starts
// in about a millisecond instead of paying for the CLI's package initialisation
// (Kubernetes types, Prometheus) in each of a big lab's thousand processes.
package main

import (
	"os"

	"github.com/netlabdev/netlab/netlab/podagent"
)

func main() { os.Exit(podagent.Main(os.Args[1:], os.Stderr)) }
