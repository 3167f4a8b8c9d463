package agent

import (
	"errors"
	"fmt"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
)

// repairNode gives a node back the routes, neighbour and forwarding entries the plan has
// for its namespace and the kernel lost, as flannel's route check does: taking eth0 down
// by hand (and up again) drops every route through it, and the node would blackhole the
// traffic to other nodes' pods. It returns what it added back.
func repairNode(h *kernel.Handles, p *plan.Plan, n plan.Node) ([]string, error) {
	live, err := h.Routes(n.Netns)
	if err != nil {
		return nil, err
	}
	var added []string
	var errs []error
	missing := false
	for _, r := range p.Routes {
		if r.Netns != n.Netns || live.Has(r.Dst, r.Via) {
			continue
		}
		missing = true
		if err := h.AddRouteOnlink(r.Netns, r.Dst, r.Via, r.Dev, r.Onlink); err != nil {
			errs = append(errs, err)
			continue
		}
		added = append(added, fmt.Sprintf("route %s via %s", r.Dst, r.Via))
	}
	if !missing {
		return nil, nil
	}
	// Routes were lost with the link: so were its neighbour and forwarding entries.
	// Both writes replace, so entries still there stay as they are.
	for _, nb := range p.Neighbors {
		if nb.Netns == n.Netns {
			if err := h.AddNeighbor(nb.Netns, nb.Dev, nb.IP, nb.MAC); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, f := range p.FDB {
		if f.Netns == n.Netns {
			if err := h.AddFDB(f.Netns, f.Dev, f.MAC, f.Dst); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return added, errors.Join(errs...)
}
