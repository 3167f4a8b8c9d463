package dns

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
)

// Address plan of the table under test: cluster domain cluster.local, kube-dns at
// 10.96.0.10, Services at 10.96.0.11+, pods in 10.244.1.0/24 and 10.244.2.0/24; pod
// 10.244.1.3 is behind two headless Services (db, as "primary", and db-replica).
func testTable() *Table {
	return New(Config{
		Domain: "cluster.local", ServerIP: "10.96.0.10",
		Namespaces: []string{"default", "kube-system", "shop", "empty"},
		Services: []Service{
			{Namespace: "kube-system", Name: "kube-dns", ClusterIP: "10.96.0.10",
				Ports: []Port{{Name: "dns", Port: 53, Protocol: "UDP"}, {Name: "dns-tcp", Port: 53, Protocol: "TCP"}}},
			{Namespace: "default", Name: "api", ClusterIP: "10.96.0.11",
				Ports:     []Port{{Name: "http", Port: 80, Protocol: "TCP"}},
				Endpoints: []Endpoint{{IP: "10.244.1.7", Ready: true}, {IP: "10.244.2.7", Ready: false}}},
			{Namespace: "default", Name: "plain", ClusterIP: "10.96.0.12",
				Ports: []Port{{Port: 8080, Protocol: "TCP"}}},
			{Namespace: "shop", Name: "db", ClusterIP: "None",
				Ports: []Port{{Name: "pg", Port: 5432, Protocol: "TCP"}, {Name: "stats", Port: 9000, Protocol: "UDP"}},
				Endpoints: []Endpoint{
					{IP: "10.244.2.3", Ready: true, Ports: []Port{{Name: "pg", Port: 15432, Protocol: "TCP"}}},
					{IP: "10.244.1.3", Hostname: "Primary", Ready: true},
					{IP: "10.244.1.4", Ready: false},
				}},
			{Namespace: "shop", Name: "db-replica", ClusterIP: "None",
				Endpoints: []Endpoint{{IP: "10.244.1.3", Ready: true}}},
			{Namespace: "shop", Name: "gone", ClusterIP: "None",
				Ports:     []Port{{Name: "http", Port: 80, Protocol: "TCP"}},
				Endpoints: []Endpoint{{IP: "10.244.1.9", Ready: false}}},
			{Namespace: "shop", Name: "peers", ClusterIP: "None", PublishNotReady: true,
				Ports:     []Port{{Name: "gossip", Port: 7946, Protocol: "UDP"}},
				Endpoints: []Endpoint{{IP: "10.244.1.5", Ready: false}, {IP: "10.244.2.5", Ready: true}}},
			{Namespace: "shop", Name: "shared", ClusterIP: "None",
				Ports: []Port{{Name: "pg", Port: 5432, Protocol: "TCP"}},
				Endpoints: []Endpoint{{IP: "10.244.1.8", Hostname: "db0", Ready: true},
					{IP: "10.244.2.8", Hostname: "db0", Ready: true}}},
			{Namespace: "default", Name: "search", ExternalName: "search.example.com"},
			{Namespace: "default", Name: "alias", ExternalName: "API.default.svc.cluster.local"},
		},
	})
}

// text renders records as dig prints them, one per line.
func text(rrs []mdns.RR) string {
	var lines []string
	for _, rr := range rrs {
		lines = append(lines, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return strings.Join(lines, "\n")
}

func TestLookup(t *testing.T) {
	tab := testTable()
	rc := mdns.RcodeToString
	for _, tc := range []struct {
		name  string
		q     string
		qtype uint16
		rcode int
		ans   string
		extra string
	}{
		{"service A", "api.default.svc.cluster.local.", mdns.TypeA, 0,
			"api.default.svc.cluster.local. 5 IN A 10.96.0.11", ""},
		{"case-insensitive, owner as asked", "API.Default.SVC.Cluster.Local", mdns.TypeA, 0,
			"API.Default.SVC.Cluster.Local. 5 IN A 10.96.0.11", ""},
		{"kube-dns itself", "kube-dns.kube-system.svc.cluster.local.", mdns.TypeA, 0,
			"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10", ""},
		{"no AAAA: no data", "api.default.svc.cluster.local.", mdns.TypeAAAA, 0, "", ""},
		{"SRV of a named port", "_http._tcp.api.default.svc.cluster.local.", mdns.TypeSRV, 0,
			"_http._tcp.api.default.svc.cluster.local. 5 IN SRV 0 100 80 api.default.svc.cluster.local.",
			"api.default.svc.cluster.local. 5 IN A 10.96.0.11"},
		{"SRV of the Service name: one per port, unnamed too", "plain.default.svc.cluster.local.", mdns.TypeSRV, 0,
			"plain.default.svc.cluster.local. 5 IN SRV 0 100 8080 plain.default.svc.cluster.local.",
			"plain.default.svc.cluster.local. 5 IN A 10.96.0.12"},
		{"SRV of the Service name: one port number over two protocols is one record", "kube-dns.kube-system.svc.cluster.local.", mdns.TypeSRV, 0,
			"kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.",
			"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"},
		{"SRV of a headless Service's name: every ready endpoint and port", "db.shop.svc.cluster.local.", mdns.TypeSRV, 0,
			"db.shop.svc.cluster.local. 5 IN SRV 0 33 5432 primary.db.shop.svc.cluster.local.\n" +
				"db.shop.svc.cluster.local. 5 IN SRV 0 33 15432 10-244-2-3.db.shop.svc.cluster.local.\n" +
				"db.shop.svc.cluster.local. 5 IN SRV 0 33 9000 primary.db.shop.svc.cluster.local.",
			"primary.db.shop.svc.cluster.local. 5 IN A 10.244.1.3\n10-244-2-3.db.shop.svc.cluster.local. 5 IN A 10.244.2.3"},
		{"pods sharing a hostname: one SRV record", "_pg._tcp.shared.shop.svc.cluster.local.", mdns.TypeSRV, 0,
			"_pg._tcp.shared.shop.svc.cluster.local. 5 IN SRV 0 100 5432 db0.shared.shop.svc.cluster.local.",
			"db0.shared.shop.svc.cluster.local. 5 IN A 10.244.1.8\ndb0.shared.shop.svc.cluster.local. 5 IN A 10.244.2.8"},
		{"a ClusterIP Service's ready endpoint has a name", "10-244-1-7.api.default.svc.cluster.local.", mdns.TypeA, 0,
			"10-244-1-7.api.default.svc.cluster.local. 5 IN A 10.244.1.7", ""},
		{"a ClusterIP Service's endpoint that is not ready has none", "10-244-2-7.api.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"a ClusterIP Service's ready endpoint has a PTR", "7.1.244.10.in-addr.arpa.", mdns.TypePTR, 0,
			"7.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-7.api.default.svc.cluster.local.", ""},
		{"SRV over UDP", "_dns._udp.kube-dns.kube-system.svc.cluster.local.", mdns.TypeSRV, 0,
			"_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.",
			"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"},
		{"SRV wrong protocol", "_http._udp.api.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeNameError, "", ""},
		{"unnamed port: no SRV", "_8080._tcp.plain.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeNameError, "", ""},
		{"SRV empty non-terminal", "_tcp.api.default.svc.cluster.local.", mdns.TypeSRV, 0, "", ""},
		{"headless: ready endpoints only", "db.shop.svc.cluster.local.", mdns.TypeA, 0,
			"db.shop.svc.cluster.local. 5 IN A 10.244.1.3\ndb.shop.svc.cluster.local. 5 IN A 10.244.2.3", ""},
		{"headless: endpoint hostname", "primary.db.shop.svc.cluster.local.", mdns.TypeA, 0,
			"primary.db.shop.svc.cluster.local. 5 IN A 10.244.1.3", ""},
		{"headless: dashed-IP hostname", "10-244-2-3.db.shop.svc.cluster.local.", mdns.TypeA, 0,
			"10-244-2-3.db.shop.svc.cluster.local. 5 IN A 10.244.2.3", ""},
		{"headless: unready endpoint has no name", "10-244-1-4.db.shop.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"headless SRV: one per ready endpoint, its target port", "_pg._tcp.db.shop.svc.cluster.local.", mdns.TypeSRV, 0,
			"_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 50 5432 primary.db.shop.svc.cluster.local.\n" +
				"_pg._tcp.db.shop.svc.cluster.local. 5 IN SRV 0 50 15432 10-244-2-3.db.shop.svc.cluster.local.",
			"primary.db.shop.svc.cluster.local. 5 IN A 10.244.1.3\n10-244-2-3.db.shop.svc.cluster.local. 5 IN A 10.244.2.3"},
		{"headless SRV over UDP, without the endpoint that lacks the port", "_stats._udp.db.shop.svc.cluster.local.", mdns.TypeSRV, 0,
			"_stats._udp.db.shop.svc.cluster.local. 5 IN SRV 0 100 9000 primary.db.shop.svc.cluster.local.",
			"primary.db.shop.svc.cluster.local. 5 IN A 10.244.1.3"},
		{"headless without ready endpoints: NXDOMAIN", "gone.shop.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"publishNotReadyAddresses: all", "peers.shop.svc.cluster.local.", mdns.TypeA, 0,
			"peers.shop.svc.cluster.local. 5 IN A 10.244.1.5\npeers.shop.svc.cluster.local. 5 IN A 10.244.2.5", ""},
		{"ExternalName: CNAME", "search.default.svc.cluster.local.", mdns.TypeA, 0,
			"search.default.svc.cluster.local. 5 IN CNAME search.example.com.", ""},
		{"ExternalName inside the domain: followed", "alias.default.svc.cluster.local.", mdns.TypeA, 0,
			"alias.default.svc.cluster.local. 5 IN CNAME api.default.svc.cluster.local.\napi.default.svc.cluster.local. 5 IN A 10.96.0.11", ""},
		{"pod A", "10-244-1-7.default.pod.cluster.local.", mdns.TypeA, 0,
			"10-244-1-7.default.pod.cluster.local. 5 IN A 10.244.1.7", ""},
		{"pod A, any address in an existing namespace", "10-244-2-2.Shop.pod.cluster.local.", mdns.TypeA, 0,
			"10-244-2-2.Shop.pod.cluster.local. 5 IN A 10.244.2.2", ""},
		{"pod A in a namespace without Services", "10-244-2-2.empty.pod.cluster.local.", mdns.TypeA, 0,
			"10-244-2-2.empty.pod.cluster.local. 5 IN A 10.244.2.2", ""},
		{"pod: no such namespace", "10-244-1-2.nosuchns.pod.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"pod namespace: empty non-terminal", "default.pod.cluster.local.", mdns.TypeA, 0, "", ""},
		{"pod namespace without Services: empty non-terminal", "empty.pod.cluster.local.", mdns.TypeA, 0, "", ""},
		{"pod: unknown namespace name", "nosuchns.pod.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"pod: not an address", "10-244-1-300.default.pod.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"pod: too many labels", "x.10-244-1-7.default.pod.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"unknown Service", "nope.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"unknown namespace", "api.nope.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"search-list miss", "api.default.svc.cluster.local.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"rest of the domain", "www.cluster.local.", mdns.TypeA, mdns.RcodeNameError, "", ""},
		{"a namespace without Services exists", "empty.svc.cluster.local.", mdns.TypeA, 0, "", ""},
		{"svc exists", "svc.cluster.local.", mdns.TypeA, 0, "", ""},
		{"outside the domain: refused", "example.com.", mdns.TypeA, mdns.RcodeRefused, "", ""},
		{"a Service name outside the domain", "api.default.svc.cluster.example.", mdns.TypeA, mdns.RcodeRefused, "", ""},
		{"schema version", "dns-version.cluster.local.", mdns.TypeTXT, 0,
			`dns-version.cluster.local. 28800 IN TXT "1.1.0"`, ""},
		{"schema version, other type", "dns-version.cluster.local.", mdns.TypeA, 0, "", ""},
		{"apex SOA", "Cluster.Local.", mdns.TypeSOA, 0,
			"Cluster.Local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5", ""},
		{"apex NS", "cluster.local.", mdns.TypeNS, 0,
			"cluster.local. 5 IN NS ns.dns.cluster.local.", "ns.dns.cluster.local. 5 IN A 10.96.0.10"},
		{"ClusterIP PTR", "11.0.96.10.in-addr.arpa.", mdns.TypePTR, 0,
			"11.0.96.10.in-addr.arpa. 5 IN PTR api.default.svc.cluster.local.", ""},
		{"headless endpoint behind two Services: a PTR for each name", "3.1.244.10.in-addr.arpa.", mdns.TypePTR, 0,
			"3.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-3.db-replica.shop.svc.cluster.local.\n" +
				"3.1.244.10.in-addr.arpa. 5 IN PTR primary.db.shop.svc.cluster.local.", ""},
		{"headless endpoint PTR", "3.2.244.10.in-addr.arpa.", mdns.TypePTR, 0,
			"3.2.244.10.in-addr.arpa. 5 IN PTR 10-244-2-3.db.shop.svc.cluster.local.", ""},
		{"unready endpoint: no PTR", "4.1.244.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeNameError, "", ""},
		{"unknown PTR", "99.0.96.10.in-addr.arpa.", mdns.TypePTR, mdns.RcodeNameError, "", ""},
		{"PTR name, other type: no data", "11.0.96.10.in-addr.arpa.", mdns.TypeA, 0, "", ""},
		{"reverse empty non-terminal", "0.96.10.in-addr.arpa.", mdns.TypePTR, 0, "", ""},
		{"reverse empty non-terminal /8", "10.in-addr.arpa.", mdns.TypeSOA, 0, "", ""},
		{"reverse address outside the lab", "8.8.8.8.in-addr.arpa.", mdns.TypePTR, mdns.RcodeNameError, "", ""},
		{"reverse zone SOA", "in-addr.arpa.", mdns.TypeSOA, 0,
			"in-addr.arpa. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5", ""},
		{"reverse zone NS", "in-addr.arpa.", mdns.TypeNS, 0,
			"in-addr.arpa. 5 IN NS ns.dns.cluster.local.", "ns.dns.cluster.local. 5 IN A 10.96.0.10"},
		{"ip6.arpa: refused", "1.0.0.0.ip6.arpa.", mdns.TypePTR, mdns.RcodeRefused, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tab.Lookup(tc.q, tc.qtype)
			if a.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", rc[a.Rcode], rc[tc.rcode])
			}
			if d := cmp.Diff(tc.ans, text(a.Answer)); d != "" {
				t.Errorf("answer (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.extra, text(a.Extra)); d != "" {
				t.Errorf("additional (-want +got):\n%s", d)
			}
			// Both zones answer with authority, and an SOA (the zone's) on a negative answer.
			q := strings.ToLower(mdns.Fqdn(tc.q))
			zone := ""
			for _, z := range []string{"cluster.local.", "in-addr.arpa."} {
				if mdns.IsSubDomain(z, q) {
					zone = z
				}
			}
			if a.Authoritative != (zone != "") {
				t.Errorf("authoritative %v, want %v", a.Authoritative, zone != "")
			}
			wantSOA := zone != "" && (len(tc.ans) == 0 || tc.rcode != 0)
			if wantSOA != (len(a.Negative) == 1) || wantSOA && a.Negative[0].Header().Name != zone {
				t.Errorf("negative answer SOA %v, want one of %q: %v", a.Negative, zone, wantSOA)
			}
		})
	}
}

func TestOtherDomain(t *testing.T) {
	tab := New(Config{Domain: "Lab.Example.", Services: []Service{{Namespace: "default", Name: "api", ClusterIP: "10.96.0.11"}}})
	if a := tab.Lookup("api.default.svc.lab.example.", mdns.TypeA); text(a.Answer) != "api.default.svc.lab.example. 5 IN A 10.96.0.11" {
		t.Errorf("got %q", text(a.Answer))
	}
	if a := tab.Lookup("api.default.svc.cluster.local.", mdns.TypeA); a.Rcode != mdns.RcodeRefused {
		t.Errorf("cluster.local in a lab.example lab: %s, want REFUSED", mdns.RcodeToString[a.Rcode])
	}
}

func TestReply(t *testing.T) {
	// Many ready endpoints make a headless answer longer than a plain UDP message.
	var eps []Endpoint
	for i := 2; i < 80; i++ {
		eps = append(eps, Endpoint{IP: fmt.Sprintf("10.244.1.%d", i), Ready: true})
	}
	tab := New(Config{Services: []Service{{Namespace: "default", Name: "many", ClusterIP: "None", Endpoints: eps}}})
	q := new(mdns.Msg)
	q.SetQuestion("many.default.svc.cluster.local.", mdns.TypeA)
	q.Id = 4242

	udp := tab.Reply(q, true)
	if udp.Id != 4242 || !udp.Response || !udp.Authoritative || !udp.Truncated {
		t.Errorf("udp reply: id %d response %v aa %v tc %v, want 4242 true true true", udp.Id, udp.Response, udp.Authoritative, udp.Truncated)
	}
	if b, _ := udp.Pack(); len(b) > mdns.MinMsgSize {
		t.Errorf("udp reply is %d bytes, over %d", len(b), mdns.MinMsgSize)
	}
	tcp := tab.Reply(q, false)
	if tcp.Truncated || len(tcp.Answer) != len(eps) {
		t.Errorf("tcp reply: tc %v, %d answers, want false and %d", tcp.Truncated, len(tcp.Answer), len(eps))
	}
	q.SetEdns0(4096, false)
	if e := tab.Reply(q, true); e.Truncated || len(e.Answer) != len(eps) || e.IsEdns0() == nil {
		t.Errorf("edns0 reply: tc %v, %d answers, opt %v", e.Truncated, len(e.Answer), e.IsEdns0())
	}

	two := new(mdns.Msg)
	two.SetQuestion("a.cluster.local.", mdns.TypeA)
	two.Question = append(two.Question, two.Question[0])
	if r := tab.Reply(two, true); r.Rcode != mdns.RcodeFormatError {
		t.Errorf("two questions: %s, want FORMERR", mdns.RcodeToString[r.Rcode])
	}
	up := new(mdns.Msg)
	up.SetUpdate("cluster.local.")
	if r := tab.Reply(up, true); r.Rcode != mdns.RcodeNotImplemented {
		t.Errorf("update: %s, want NOTIMP", mdns.RcodeToString[r.Rcode])
	}
}

// The PTR records of an address do not depend on the order of the Services.
func TestPTROrder(t *testing.T) {
	svcs := []Service{
		{Namespace: "a", Name: "zeta", ClusterIP: "None", Endpoints: []Endpoint{{IP: "10.244.1.2", Ready: true}}},
		{Namespace: "a", Name: "alpha", ClusterIP: "None", Endpoints: []Endpoint{{IP: "10.244.1.2", Hostname: "h", Ready: true}}},
		{Namespace: "b", Name: "mid", ClusterIP: "None", Endpoints: []Endpoint{{IP: "10.244.1.2", Ready: true}}},
	}
	want := "2.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-2.mid.b.svc.cluster.local.\n" +
		"2.1.244.10.in-addr.arpa. 5 IN PTR 10-244-1-2.zeta.a.svc.cluster.local.\n" +
		"2.1.244.10.in-addr.arpa. 5 IN PTR h.alpha.a.svc.cluster.local."
	for i := range svcs {
		rotated := append(slices.Clone(svcs[i:]), svcs[:i]...)
		a := New(Config{Services: rotated}).Lookup("2.1.244.10.in-addr.arpa.", mdns.TypePTR)
		if d := cmp.Diff(want, text(a.Answer)); d != "" {
			t.Errorf("services from %s (-want +got):\n%s", rotated[0].Name, d)
		}
	}
}

// The SOA serial is the configuration's (1 when it has none), in both zones.
func TestSerial(t *testing.T) {
	for _, tc := range []struct{ serial, want uint32 }{{0, 1}, {1764579600, 1764579600}} {
		tab := New(Config{Serial: tc.serial})
		for _, q := range []string{"cluster.local.", "in-addr.arpa."} {
			a := tab.Lookup(q, mdns.TypeSOA)
			if len(a.Answer) != 1 || a.Answer[0].(*mdns.SOA).Serial != tc.want {
				t.Errorf("%s SOA with serial %d: %v, want serial %d", q, tc.serial, a.Answer, tc.want)
			}
		}
		if a := tab.Lookup("nope.cluster.local.", mdns.TypeA); len(a.Negative) != 1 || a.Negative[0].(*mdns.SOA).Serial != tc.want {
			t.Errorf("negative answer with serial %d: %v", tc.serial, a.Negative)
		}
	}
}

// Protocol corner cases: an EDNS version other than 0, zone transfers, a query that does
// not parse.
func TestReplyProtocol(t *testing.T) {
	tab := testTable()
	q := new(mdns.Msg)
	q.SetQuestion("api.default.svc.cluster.local.", mdns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().SetVersion(1)
	// Through the wire, as a client sees it: the extended rcode is in the OPT record.
	wire := func(m *mdns.Msg) *mdns.Msg {
		t.Helper()
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		r := new(mdns.Msg)
		if err := r.Unpack(b); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := wire(tab.Reply(q, true)); r.Rcode != mdns.RcodeBadVers || len(r.Answer) != 0 || r.IsEdns0() == nil || r.IsEdns0().Version() != 0 {
		t.Errorf("EDNS version 1: %s, %d answers, opt %v; want BADVERS, none, version 0", mdns.RcodeToString[r.Rcode], len(r.Answer), r.IsEdns0())
	}
	q.IsEdns0().SetVersion(0)
	if r := wire(tab.Reply(q, true)); r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 || r.IsEdns0() == nil || r.IsEdns0().Do() {
		t.Errorf("EDNS version 0: %s, %d answers, opt %v", mdns.RcodeToString[r.Rcode], len(r.Answer), r.IsEdns0())
	}
	// The DO bit is copied (RFC 3225 3), and errors keep the OPT record (RFC 6891 7).
	q.IsEdns0().SetDo()
	if r := wire(tab.Reply(q, true)); r.IsEdns0() == nil || !r.IsEdns0().Do() {
		t.Errorf("DO set: opt %v, want it set in the reply", r.IsEdns0())
	}
	for _, qt := range []uint16{mdns.TypeAXFR, mdns.TypeA} {
		x := new(mdns.Msg)
		x.SetQuestion("cluster.local.", qt)
		x.SetEdns0(4096, true)
		if qt == mdns.TypeA {
			x.Opcode = mdns.OpcodeStatus
		}
		if r := wire(tab.Reply(x, true)); r.Rcode == mdns.RcodeSuccess || r.IsEdns0() == nil || !r.IsEdns0().Do() {
			t.Errorf("%s, opcode %d: %s, opt %v; want an error with OPT and DO", mdns.TypeToString[qt], x.Opcode, mdns.RcodeToString[r.Rcode], r.IsEdns0())
		}
	}
	for _, qt := range []uint16{mdns.TypeAXFR, mdns.TypeIXFR} {
		x := new(mdns.Msg)
		x.SetQuestion("cluster.local.", qt)
		if r := wire(tab.Reply(x, false)); r.Rcode != mdns.RcodeRefused || len(r.Answer)+len(r.Ns) != 0 {
			t.Errorf("%s: %s %v %v, want REFUSED and nothing else", mdns.TypeToString[qt], mdns.RcodeToString[r.Rcode], r.Answer, r.Ns)
		}
	}

	// A question cut short: FORMERR with the query's id; a response or a bare fragment: nothing.
	good := new(mdns.Msg)
	good.SetQuestion("api.default.svc.cluster.local.", mdns.TypeA)
	good.Id = 777
	b, _ := good.Pack()
	r := FormErr(b[:len(b)-3])
	if r == nil || r.Id != 777 || r.Rcode != mdns.RcodeFormatError || !r.Response || !r.RecursionDesired || len(r.Question) != 0 {
		t.Errorf("truncated query: %v, want FORMERR with id 777", r)
	} else if _, err := r.Pack(); err != nil {
		t.Error(err)
	}
	if r := FormErr(b); r != nil {
		t.Errorf("a query that parses: %v, want nil (Reply answers it)", r)
	}
	if r := FormErr(b[:11]); r != nil {
		t.Errorf("11 bytes: %v, want nil", r)
	}
	resp, _ := new(mdns.Msg).SetReply(good).Pack()
	if r := FormErr(resp[:len(resp)-3]); r != nil {
		t.Errorf("a broken response: %v, want nil", r)
	}
}

// Reply rotates a list of A records, one place per reply; Lookup keeps address order.
func TestReplyRotatesA(t *testing.T) {
	tab := testTable()
	q := new(mdns.Msg)
	q.SetQuestion("db.shop.svc.cluster.local.", mdns.TypeA)
	firsts := map[string]int{}
	for range 4 {
		r := tab.Reply(q, true)
		if len(r.Answer) != 2 {
			t.Fatalf("answer %v, want two A records", r.Answer)
		}
		firsts[r.Answer[0].(*mdns.A).A.String()]++
		slices.SortFunc(r.Answer, func(a, b mdns.RR) int { return strings.Compare(a.String(), b.String()) })
		if d := cmp.Diff(text(tab.Lookup(q.Question[0].Name, mdns.TypeA).Answer), text(r.Answer)); d != "" {
			t.Errorf("rotated answer holds other records (-lookup +reply):\n%s", d)
		}
	}
	if d := cmp.Diff(map[string]int{"10.244.1.3": 2, "10.244.2.3": 2}, firsts); d != "" {
		t.Errorf("first addresses of 4 replies (-want +got):\n%s", d)
	}
	// One record, or not only A records (a CNAME and its target): as looked up.
	q.SetQuestion("alias.default.svc.cluster.local.", mdns.TypeA)
	for range 2 {
		if r := tab.Reply(q, true); len(r.Answer) != 2 || r.Answer[0].Header().Rrtype != mdns.TypeCNAME {
			t.Errorf("CNAME chain reordered: %v", r.Answer)
		}
	}
}

// BenchmarkReply is one query answered and packed, as the agent does per packet.
func BenchmarkReply(b *testing.B) {
	tab := testTable()
	q := new(mdns.Msg)
	q.SetQuestion("api.default.svc.cluster.local.", mdns.TypeA)
	b.ReportAllocs()
	for b.Loop() {
		r := tab.Reply(q, true)
		if _, err := r.Pack(); err != nil {
			b.Fatal(err)
		}
	}
}
