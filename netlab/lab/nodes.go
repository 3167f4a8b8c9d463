package lab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// SetNodeLink sets a node's fabric interface down or up. Taking an interface down drops
// the IPv4 routes through it, so bringing it up adds the node's planned routes again.
func SetNodeLink(name, node string, up bool) error {
	p, err := LoadPlan(name)
	if err != nil {
		return err
	}
	var n *plan.Node
	for i := range p.Nodes {
		if p.Nodes[i].Name == node {
			n = &p.Nodes[i]
		}
	}
	if n == nil {
		return fmt.Errorf("lab %s has no node %q", name, node)
	}
	h := kernel.NewHandles()
	defer h.Close()
	if err := h.SetLink(n.Netns, plan.NodeIface, up); err != nil {
		return err
	}
	if !up {
		return nil
	}
	var errs []error
	for _, r := range p.Routes {
		if r.Netns == n.Netns {
			if err := h.AddRouteOnlink(r.Netns, r.Dst, r.Via, r.Dev, r.Onlink); err != nil {
				errs = append(errs, fmt.Errorf("route %s: %w", r.Dst, err))
			}
		}
	}
	return errors.Join(errs...)
}

// WaitNode waits until the lab has reacted to node going down (up false) or coming back:
// the lb agent's state shows the node's real servers unhealthy (healthy), and the
// endpoints controller has marked the node's endpoints not ready (ready). It returns
// what has not reacted when ctx ends.
func WaitNode(ctx context.Context, name, node string, up bool) error {
	var pending []string
	for {
		pending = pending[:0]
		st, err := rundir.ForLab(name).ReadLBState()
		if err != nil {
			pending = append(pending, "the lb agent's state ("+err.Error()+")")
		} else {
			for _, vs := range st.Services {
				for _, b := range vs.Backends {
					if b.Name == node && b.Healthy != up {
						pending = append(pending, fmt.Sprintf("LB real server %s:%d of %s", b.IP, b.Port, vs.Name))
					}
				}
			}
		}
		ef, err := rundir.ForLab(name).ReadEndpoints()
		if err != nil {
			pending = append(pending, "the endpoints ("+err.Error()+")")
		} else {
			for _, sp := range ef.Ports {
				for _, ep := range sp.Endpoints {
					if ep.Node == node && ep.Ready != up {
						pending = append(pending, fmt.Sprintf("endpoint %s of %s", ep.Pod, sp.ServicePortName()))
					}
				}
			}
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			want := "down"
			if up {
				want = "up"
			}
			return fmt.Errorf("node %s: still not %s: %s", node, want, strings.Join(pending, ", "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
