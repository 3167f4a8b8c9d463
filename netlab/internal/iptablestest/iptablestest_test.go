package iptablestest

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustLoad(t *testing.T, text string) *Kernel {
	t.Helper()
	k, err := Load([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRestoreNoflush(t *testing.T) {
	k := mustLoad(t, "*nat\n:X - [0:0]\n:Y - [0:0]\n-A X -j Y\n-A PREROUTING -j X\nCOMMIT\n")
	// Declaring again flushes a user chain; a built-in chain keeps its rules.
	if err := k.Restore([]byte("*nat\n:PREROUTING ACCEPT [0:0]\n:X - [0:0]\n-I X -j DNAT --to-destination 10.0.0.1:80\n-I X 1 -d 10.0.0.9 -j RETURN\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	if len(k.Rules("nat", "PREROUTING")) != 1 {
		t.Error("declaring a built-in chain flushed it")
	}
	if got := k.Rules("nat", "X"); len(got) != 2 || got[0].Target() != "RETURN" || got[1].TargetOption("--to-destination") != "10.0.0.1:80" {
		t.Errorf("X after flush and inserts: %+v", got)
	}
	if err := k.Restore([]byte("*nat\n-X Y\nCOMMIT\n")); err != nil {
		t.Errorf("deleting an empty, unreferenced chain: %v", err)
	}
	if !slices.Equal(k.UserChains(), []string{"X"}) {
		t.Errorf("user chains %v", k.UserChains())
	}
	for _, bad := range []string{
		"*nat\n-X X\nCOMMIT\n",                        // missing
		"*nat\n-A NOPE -j ACCEPT\nCOMMIT\n",           // missing chain
		"*nat\n:Z - [0:0]\n-A Z -j MISSING\nCOMMIT\n", // jump nowhere
		"*nat\n:Z - [0:0]\n-A Z -m set --match-set s src -j ACCEPT\nCOMMIT\n",
		"*nat\n:Z - [0:0]\n-A Z -m tcp --dport x -j ACCEPT\nCOMMIT\n",
		"*nat\n:Z - [0:0]\n-A Z -j DNAT\nCOMMIT\n",
		"*nat\n:Z - [0:0]\n-A Z -j Z --foo 1\nCOMMIT\n",
		"*nat\n:" + strings.Repeat("C", 29) + " - [0:0]\nCOMMIT\n",
		"*bogus\nCOMMIT\n",
	} {
		if err := NewKernel().Restore([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if err := k.Restore([]byte("*nat\n-X X\nCOMMIT\n")); err == nil {
		t.Error("deleted a chain that has rules and is referenced")
	}
}

const svc = `*nat
:SVC - [0:0]
:SEP-A - [0:0]
:SEP-B - [0:0]
-A PREROUTING -d 10.96.0.1/32 -p tcp -m tcp --dport 80 -j SVC
-A SVC -m recent --name SEP-A --mask 255.255.255.255 --rsource --rcheck --seconds 10 --reap -j SEP-A
-A SVC -m statistic --mode random --probability 0.25 -j SEP-A
-A SVC -j SEP-B
-A SEP-A -m recent --name SEP-A --mask 255.255.255.255 --rsource --set -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A SEP-B -p tcp -m tcp -j DNAT --to-destination 10.244.2.2:8080
-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
COMMIT
*filter
:REJ - [0:0]
-A FORWARD -d 10.244.2.2/32 -j REJ
-A REJ -p tcp -j REJECT --reject-with tcp-reset
COMMIT
`

func TestTraceBranchesAndState(t *testing.T) {
	k := mustLoad(t, svc)
	tr, err := NewTracer(k, "172.18.0.11")
	if err != nil {
		t.Fatal(err)
	}
	outs, err := tr.Trace(Packet{Src: "10.244.1.50", Dst: "10.96.0.1", DPort: 80, Proto: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 {
		t.Fatalf("outcomes %+v", outs)
	}
	sum := 0.0
	for _, o := range outs {
		sum += o.Probability
		switch o.DNAT {
		case "10.244.1.2:8080":
			if o.Verdict != "ACCEPT" || o.Probability != 0.25 || !slices.Equal(o.RecentSet, []string{"SEP-A"}) || o.DNATChain != "SEP-A" {
				t.Errorf("to A: %+v", o)
			}
		case "10.244.2.2:8080":
			if o.Verdict != "REJECT" || o.RejectWith != "tcp-reset" || o.Probability != 0.75 {
				t.Errorf("to B: %+v", o)
			}
		default:
			t.Errorf("unexpected %+v", o)
		}
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("probabilities sum to %v", sum)
	}
	// The A branch set the source in SEP-A's list: the next connection sticks to A, until
	// the entry is older than --seconds and reaped.
	outs, _ = tr.Trace(Packet{Src: "10.244.1.50", Dst: "10.96.0.1", DPort: 80, Proto: "tcp"})
	if len(outs) != 1 || outs[0].Affinity != "SEP-A" || outs[0].AffinitySeconds != 10 {
		t.Errorf("affinity: %+v", outs)
	}
	tr.Now = tr.Now.Add(11 * time.Second)
	if outs, _ = tr.Trace(Packet{Src: "10.244.1.50", Dst: "10.96.0.1", DPort: 80, Proto: "tcp"}); len(outs) != 2 {
		t.Errorf("after expiry: %+v", outs)
	}
	if _, ok := tr.Recent["SEP-A"]; !ok {
		t.Error("recent list gone")
	}
	// With a random source the match is decided, not explored.
	tr.Rand = func() uint32 { return 0 }
	tr.Recent = nil
	if outs, _ = tr.Trace(Packet{Src: "10.244.1.51", Dst: "10.96.0.1", DPort: 80, Proto: "tcp"}); len(outs) != 1 || outs[0].DNAT != "10.244.1.2:8080" {
		t.Errorf("rand 0: %+v", outs)
	}
}

func TestTraceNthMarkAndLocal(t *testing.T) {
	k := mustLoad(t, `*nat
:RR - [0:0]
-A PREROUTING -d 203.0.113.100/32 -j RR
-A RR -m statistic --mode nth --every 2 --packet 0 -j DNAT --to-destination 172.18.0.11:80
-A RR -j DNAT --to-destination 172.18.0.12:80
-A OUTPUT -m addrtype --dst-type LOCAL -j MARK --or-mark 0x4000
-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
COMMIT
`)
	tr, err := NewTracer(k)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 4 {
		outs, err := tr.Trace(Packet{Src: "203.0.113.2", Dst: "203.0.113.100", DPort: 80, Proto: "tcp"})
		if err != nil || len(outs) != 1 {
			t.Fatalf("%+v %v", outs, err)
		}
		got = append(got, outs[0].DNAT)
	}
	if !slices.Equal(got, []string{"172.18.0.11:80", "172.18.0.12:80", "172.18.0.11:80", "172.18.0.12:80"}) {
		t.Errorf("nth every 2: %v", got)
	}
	// From a local process to a local address: marked, filter INPUT, no POSTROUTING.
	outs, err := tr.Trace(Packet{Src: "127.0.0.1", Dst: "127.0.0.1", DPort: 80, Proto: "tcp", FromLocalProcess: true})
	if err != nil || len(outs) != 1 || outs[0].Mark != 0x4000 || outs[0].Masquerade || outs[0].Path[len(outs[0].Path)-1] != "filter/INPUT" {
		t.Errorf("local: %+v %v", outs, err)
	}
}
