package agent

import (
	"context"
	"net"
)

// listenTCP listens on addr over plain TCP. Go (1.24 and later) makes a listener MPTCP
// wherever the kernel has MPTCP on, as it is in every lab namespace; a TCP client (the
// LB's probes, a resolver falling back to TCP) then takes MPTCP's fallback path through
// the subflow listener on each connection. The agents' listeners are plain TCP, as
// kube-proxy's and CoreDNS's are (and the ingress's, ingressagent.bindPort).
func listenTCP(addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	return lc.Listen(context.Background(), "tcp", addr)
}
