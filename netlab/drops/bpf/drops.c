// SPDX-License-Identifier: (MIT OR GPL-2.0)
// netlab drops: every packet the kernel frees as dropped (the skb:kfree_skb tracepoint,
// attached as a BTF-enabled raw tracepoint, so no tracefs and no kprobes), kept only when
// it happened in one of the lab's network namespaces (their inode numbers are the keys of
// netns_filter), sent to user space with the kernel's drop reason and the packet's IPv4
// addresses and ports. CO-RE: field offsets come from the running kernel's BTF.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800

struct drop_event {
	__u64 ts;       // bpf_ktime_get_ns
	__u64 location; // kernel address that dropped it
	__u32 netns;    // namespace inode
	__u32 ifindex;  // device it was on (0: none)
	__u32 reason;   // enum skb_drop_reason
	__u32 saddr;    // network byte order
	__u32 daddr;
	__u16 sport;    // host byte order
	__u16 dport;
	__u8 proto;     // IP protocol, 0 when not IPv4
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} netns_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
} events SEC(".maps");


// Keeps the event type in the object's BTF, for bpf2go's Go type.
const struct drop_event *unused_drop_event __attribute__((unused));

static __always_inline __u32 skb_netns(struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (dev)
		return BPF_CORE_READ(dev, nd_net.net, ns.inum);
	struct sock *sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(netlab_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	__u32 ns = skb_netns(skb);
	if (!ns || !bpf_map_lookup_elem(&netns_filter, &ns))
		return 0;

	struct drop_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts = bpf_ktime_get_ns();
	e->location = (__u64)location;
	e->netns = ns;
	e->reason = (__u32)reason;
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (dev)
		e->ifindex = BPF_CORE_READ(dev, ifindex);
	else
		e->ifindex = BPF_CORE_READ(skb, skb_iif);

	if (BPF_CORE_READ(skb, protocol) == bpf_htons(ETH_P_IP)) {
		unsigned char *head = BPF_CORE_READ(skb, head);
		__u16 nh = BPF_CORE_READ(skb, network_header);
		__u16 th = BPF_CORE_READ(skb, transport_header);
		struct iphdr ip;
		if (nh != (__u16)~0U && bpf_probe_read_kernel(&ip, sizeof(ip), head + nh) == 0 && ip.version == 4) {
			e->proto = ip.protocol;
			e->saddr = ip.saddr;
			e->daddr = ip.daddr;
			// The transport header may not be set yet (dropped before L4): use the IP header length.
			__u32 l4 = nh + ip.ihl * 4;
			if (th != (__u16)~0U && th > nh)
				l4 = th;
			if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) {
				__u16 ports[2];
				if (bpf_probe_read_kernel(ports, sizeof(ports), head + l4) == 0) {
					e->sport = bpf_ntohs(ports[0]);
					e->dport = bpf_ntohs(ports[1]);
				}
			} else if (ip.protocol == IPPROTO_ICMP) {
				__u8 tc[2];
				if (bpf_probe_read_kernel(tc, sizeof(tc), head + l4) == 0) {
					e->icmp_type = tc[0];
					e->icmp_code = tc[1];
				}
			}
		}
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
