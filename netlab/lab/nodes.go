package lab

import (
	"errors"
	"fmt"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
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
