package nftrace

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// A trace message as the kernel writes it: the rule event of a SYN that a jump took.
func TestParseEvent(t *testing.T) {
	ip := make([]byte, 20)
	ip[0], ip[9] = 0x45, unix.IPPROTO_TCP
	copy(ip[12:], []byte{203, 0, 113, 2})
	copy(ip[16:], []byte{10, 96, 0, 11})
	th := make([]byte, 20)
	binary.BigEndian.PutUint16(th, 40000)
	binary.BigEndian.PutUint16(th[2:], 80)
	th[13] = 0x02
	var b []byte
	for _, a := range []attr{
		strAttr(unix.NFTA_TRACE_TABLE, "nat"),
		strAttr(unix.NFTA_TRACE_CHAIN, "KUBE-SERVICES"),
		{typ: unix.NFTA_TRACE_RULE_HANDLE, data: binary.BigEndian.AppendUint64(nil, 42)},
		u32Attr(unix.NFTA_TRACE_TYPE, unix.NFT_TRACETYPE_RULE),
		nested(unix.NFTA_TRACE_VERDICT, u32Attr(unix.NFTA_VERDICT_CODE, jumpCode()), strAttr(unix.NFTA_VERDICT_CHAIN, "KUBE-SVC-X")),
		u32Attr(unix.NFTA_TRACE_ID, 7),
		{typ: unix.NFTA_TRACE_NETWORK_HEADER, data: ip},
		{typ: unix.NFTA_TRACE_TRANSPORT_HEADER, data: th},
		u32Attr(unix.NFTA_TRACE_IIF, 3),
	} {
		b = a.encode(b)
	}
	e, ok := parseEvent(b)
	want := Event{ID: 7, Table: "nat", Chain: "KUBE-SERVICES", Handle: 42, Type: "rule", Verdict: "jump", Target: "KUBE-SVC-X",
		Src: netip.MustParseAddrPort("203.0.113.2:40000"), Dst: netip.MustParseAddrPort("10.96.0.11:80"), Proto: unix.IPPROTO_TCP, TCPFlags: 0x02, Iif: 3}
	if !ok || e != want {
		t.Errorf("parseEvent:\n got %+v\nwant %+v", e, want)
	}
}

func TestRuleTexts(t *testing.T) {
	nft := `table ip kube-proxy { # handle 3
	chain services { # handle 9
		ip daddr . meta l4proto . th dport vmap @service-ips # handle 20
		fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports comment "kubernetes service nodeports" # handle 21
	}
}`
	got := nftTexts(nft)
	if got[20] != "ip daddr . meta l4proto . th dport vmap @service-ips" || got[21] != `fib daddr type local ip daddr != 127.0.0.0/8 jump nodeports comment "kubernetes service nodeports"` || len(got) != 2 {
		t.Errorf("nftTexts: %v", got)
	}
	save := "*nat\n:KUBE-SVC-X - [0:0]\n-A KUBE-SVC-X -m statistic --mode random --probability 0.5 -j KUBE-SEP-A\n-A KUBE-SVC-X -j KUBE-SEP-B\nCOMMIT\n"
	ipt := iptablesTexts([]byte(save))
	if r := ipt["nat"]["KUBE-SVC-X"]; len(r) != 2 || r[0] != "-m statistic --mode random --probability 0.5 -j KUBE-SEP-A" || r[1] != "-j KUBE-SEP-B" {
		t.Errorf("iptablesTexts: %v", ipt)
	}
}

func jumpCode() uint32 {
	v := int32(unix.NFT_JUMP)
	return uint32(v)
}
