// Package nftnl applies kube-proxy's nftables transactions through netlink, without nft.
//
// The renderer (package nftables) stays the model of truth: its Full and Diff write the
// transaction as nft -f text, and Apply compiles that text — only the commands and the
// rule syntax kube-proxy's rules use; anything else is refused, line by line — into the
// netlink messages nft itself would send (checked by listing the kernel's table after
// each), and sends them as one nfnetlink batch: the kernel applies all of it or none.
// google/nftables marshals the messages; this package sends them (see batch).
package nftnl
