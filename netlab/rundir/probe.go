package rundir

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
)

// ProbeTimeout is the kubelet's default readiness probe timeout.
const ProbeTimeout = time.Second

// ErrNotRunning is a probe's verdict on a pod with no process.
var ErrNotRunning = errors.New("no process in the pod")

// ProbeStatusError is an HTTP readiness probe's answer outside 200–399.
type ProbeStatusError struct {
	Path string
	Code int
}

func (e *ProbeStatusError) Error() string {
	return fmt.Sprintf("readiness: %s answered %d", e.Path, e.Code)
}

// Probe checks a pod's readiness as the kubelet would, from the pod's node.
func Probe(ctx context.Context, p *plan.Plan, pod plan.Pod) error {
	for _, n := range p.Nodes {
		if n.Name == pod.Node {
			return ProbeFrom(ctx, n.Netns, pod, ProbeTimeout)
		}
	}
	return fmt.Errorf("pod %s: no node %q in the plan", pod.Name, pod.Node)
}

// ProbeFrom runs a pod's readiness probe from inside nodeNetns: its httpGet path, else a
// TCP connect to its port, else (a UDP-only pod) whether its process runs. Errors wrap
// what happened (errors.Is works with syscall.ECONNREFUSED, ErrNotRunning and
// *ProbeStatusError), so a caller can tell a dead pod from a slow one.
func ProbeFrom(ctx context.Context, nodeNetns string, pod plan.Pod, timeout time.Duration) error {
	if pod.Probe.Type == "exec" || pod.Probe.Port == 0 {
		if len(kernel.PIDsIn([]string{pod.Netns})[pod.Netns]) == 0 {
			return ErrNotRunning
		}
		return nil
	}
	addr := net.JoinHostPort(plan.Addr(pod.IP), strconv.Itoa(int(pod.Probe.Port)))
	conn, err := kernel.DialIn(nodeNetns, "tcp", addr, timeout)
	if err != nil {
		return fmt.Errorf("readiness: %w", err)
	}
	defer conn.Close()
	if pod.Probe.Type != "http" {
		return nil
	}
	path := pod.Probe.Path
	if path == "" {
		path = "/"
	}
	c := http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext:       func(context.Context, string, string) (net.Conn, error) { return conn, nil },
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/netlab")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("readiness: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return &ProbeStatusError{Path: path, Code: resp.StatusCode}
	}
	return nil
}
