package planbuild

import (
	"net/netip"

	"github.com/netlabdev/netlab/netlab/plan"
)

// The plan's address helpers, under the names the builder uses.

func nth(p netip.Prefix, n int) netip.Addr        { return plan.NthAddr(p, n) }
func addOffset(a netip.Addr, n uint64) netip.Addr { return plan.AddOffset(a, n) }
func hostCount(p netip.Prefix) int                { return plan.HostCount(p) }
func lastAddr(p netip.Prefix) netip.Addr          { return plan.LastAddr(p) }
func cidr(a netip.Addr, p netip.Prefix) string    { return plan.CIDR(a, p) }
func addrOf(c string) string                      { return plan.Addr(c) }
