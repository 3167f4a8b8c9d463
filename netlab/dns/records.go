package dns

import (
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	mdns "github.com/miekg/dns"
)

const (
	// TTL of every other answer, CoreDNS's kubernetes plugin default.
	TTL = 5
	// SchemaVersion is the version of Kubernetes' DNS-Based Service Discovery
	// specification the records follow, served as the TXT record dns-version.<domain>.
	SchemaVersion = "1.1.0"
	// VersionTTL is the TTL of dns-version.<domain>, as CoreDNS serves it (8 hours).
	VersionTTL = 28800
	// DefaultDomain is the cluster domain when the Lab names none.
	DefaultDomain = "cluster.local"
	// ReverseZone is the reverse-lookup zone the table answers besides the cluster domain,
	// as kubeadm's CoreDNS serves in-addr.arpa from its kubernetes plugin.
	ReverseZone = "in-addr.arpa."
)

// Service is what the records need of one Kubernetes Service.
type Service struct {
	Namespace, Name string
	// ClusterIP is the Service's address; "" or "None" makes it headless.
	ClusterIP string
	// ExternalName, when set, makes it an ExternalName Service (a CNAME).
	ExternalName string
	Ports        []Port
	// Endpoints are the selected pods; only a headless Service's are published.
	Endpoints []Endpoint
	// PublishNotReady is spec.publishNotReadyAddresses: every endpoint counts as ready.
	PublishNotReady bool
}

// Port is a Service port, or an endpoint's port (named as the Service port it serves).
type Port struct {
	Name     string
	Port     int32
	Protocol string // TCP | UDP (any case)
}

// Endpoint is one address behind a Service.
type Endpoint struct {
	IP string
	// Hostname is the endpoint's hostname; "" gives it the dashed form of its IP
	// (10-244-1-2), as CoreDNS names endpoints without one.
	Hostname string
	Ready    bool
	// Ports are the endpoint's (target) ports; a Service port missing here is served
	// on its own number.
	Ports []Port
}

// Config is what one answer table is built from.
type Config struct {
	// Domain is the cluster domain (default cluster.local), with or without the final dot.
	Domain string
	// ServerIP is the cluster DNS's own Service address: ns.dns.<domain>.
	ServerIP string
	// Namespaces exist even with no Service in them: <ns>.svc.<domain> and
	// <ns>.pod.<domain> have no data rather than no name; pod records are answered in
	// these namespaces (and those of the Services) only.
	Namespaces []string
	Services   []Service
	// Serial is the SOA serial (0: 1); it changes when the records do (CoreDNS: the time
	// of the last change it saw).
	Serial uint32
}

// Table answers queries for one cluster domain. It is immutable once built; build a new
// one when the Services or their endpoints change.
type Table struct {
	domain   string // lowercase, fully qualified: "cluster.local."
	serverIP netip.Addr
	names    map[string]*rrset       // lowercase FQDN → its records
	exists   map[string]bool         // every name of both zones that exists, empty non-terminals too
	ptr      map[string][]string     // reverse name → its target FQDNs, sorted
	srvA     map[string][]netip.Addr // SRV target → its addresses, for the additional section
	nss      map[string]bool         // namespaces, lowercase
	serial   uint32
	rotation atomic.Uint32 // replies so far: where Reply starts a list of A records
}

type rrset struct {
	a     []netip.Addr
	srv   []srvRec
	cname string
	txt   []string
	// ttl of the record set's TXT record (0: TTL).
	txtTTL uint32
}

type srvRec struct {
	prio, weight, port uint16
	target             string
}

// Fqdn lowercases name and ends it with a dot.
func Fqdn(name string) string { return strings.ToLower(mdns.Fqdn(name)) }

// New builds the table of cfg. Entries it cannot use (a bad address) are skipped.
func New(cfg Config) *Table {
	d := cfg.Domain
	if d == "" {
		d = DefaultDomain
	}
	t := &Table{domain: Fqdn(d), names: map[string]*rrset{}, exists: map[string]bool{},
		ptr: map[string][]string{}, srvA: map[string][]netip.Addr{}, nss: map[string]bool{}, serial: max(cfg.Serial, 1)}
	t.serverIP, _ = netip.ParseAddr(cfg.ServerIP)
	version := t.add("dns-version." + t.domain)
	version.txt, version.txtTTL = []string{SchemaVersion}, VersionTTL
	if t.serverIP.IsValid() {
		t.add("ns.dns." + t.domain).a = []netip.Addr{t.serverIP}
	}
	t.mark("svc." + t.domain)
	t.mark("pod." + t.domain)
	for _, ns := range cfg.Namespaces {
		t.namespace(ns)
	}
	for _, s := range cfg.Services {
		t.service(s)
	}
	t.markIn(ReverseZone, ReverseZone)
	for rev, targets := range t.ptr {
		slices.Sort(targets)
		t.ptr[rev] = slices.Compact(targets)
		t.markIn(rev, ReverseZone)
	}
	return t
}

// namespace makes <ns>.svc.<domain> and <ns>.pod.<domain> exist.
func (t *Table) namespace(ns string) {
	ns = strings.ToLower(ns)
	t.nss[ns] = true
	t.mark(ns + ".svc." + t.domain)
	t.mark(ns + ".pod." + t.domain)
}

// Domain is the table's cluster domain, fully qualified.
func (t *Table) Domain() string { return t.domain }

// ServiceName is <svc>.<ns>.svc.<domain>. for a table's domain.
func (t *Table) ServiceName(ns, svc string) string {
	return strings.ToLower(svc + "." + ns + ".svc." + t.domain)
}

// add returns the record set of name, marking it and its ancestors as existing.
func (t *Table) add(name string) *rrset {
	t.mark(name)
	rs := t.names[name]
	if rs == nil {
		rs = &rrset{}
		t.names[name] = rs
	}
	return rs
}

// mark records name and every ancestor down to the domain as existing names.
func (t *Table) mark(name string) { t.markIn(name, t.domain) }

// markIn records name and every ancestor down to zone as existing names.
func (t *Table) markIn(name, zone string) {
	for n := name; strings.HasSuffix(n, zone); {
		t.exists[n] = true
		i := strings.IndexByte(n, '.')
		if i < 0 || n == zone {
			break
		}
		n = n[i+1:]
	}
}

func (t *Table) service(s Service) {
	name := t.ServiceName(s.Namespace, s.Name)
	t.namespace(s.Namespace)
	switch {
	case s.ExternalName != "":
		t.add(name).cname = Fqdn(s.ExternalName)
	case s.ClusterIP != "" && s.ClusterIP != "None":
		ip, err := netip.ParseAddr(s.ClusterIP)
		if err != nil {
			return
		}
		rs := t.add(name)
		rs.a = []netip.Addr{ip}
		t.srvA[name] = []netip.Addr{ip}
		var all []srvRec
		for _, p := range s.Ports {
			rec := srvRec{prio: 0, port: uint16(p.Port), target: name}
			all = append(all, rec)
			if p.Name == "" {
				continue // an unnamed port has no _port._proto record
			}
			t.add(srvName(p, name)).srv = weighted([]srvRec{rec})
		}
		// The Service name itself holds one SRV record per port, named or not (CoreDNS
		// answers an SRV question without port and protocol so: a way to list them).
		rs.srv = weighted(all)
		t.addPTR(ip, name)
		// Its ready endpoints have names of their own and reverse records, as CoreDNS
		// gives every Service's (the specification asks it for headless ones only).
		for _, r := range t.readyEndpoints(s, name) {
			hrs := t.add(r.host)
			hrs.a = append(hrs.a, r.ip)
			t.addPTR(r.ip, r.host)
		}
	default:
		t.headless(s, name)
	}
}

// endpointName is a ready endpoint of a Service and the name it has under it: its
// hostname, or its address with dashes.
type endpointName struct {
	ip   netip.Addr
	host string
	e    Endpoint
}

// readyEndpoints lists s's ready endpoints (every one with publishNotReadyAddresses), one
// per address, in address order.
func (t *Table) readyEndpoints(s Service, name string) []endpointName {
	var ready []endpointName
	seen := map[netip.Addr]bool{}
	for _, e := range s.Endpoints {
		ip, err := netip.ParseAddr(e.IP)
		if err != nil || !(e.Ready || s.PublishNotReady) || seen[ip] {
			continue
		}
		seen[ip] = true
		host := strings.ToLower(e.Hostname)
		if host == "" {
			host = DashedIP(ip)
		}
		ready = append(ready, endpointName{ip, host + "." + name, e})
	}
	slices.SortFunc(ready, func(a, b endpointName) int { return a.ip.Compare(b.ip) })
	return ready
}

// weighted removes the records that repeat an earlier one's target and port (an RRset
// holds no duplicates: pods sharing a hostname, two protocols on one port number) and
// shares the weight 100 between the rest.
func weighted(recs []srvRec) []srvRec {
	type key struct {
		target string
		port   uint16
	}
	seen := map[key]bool{}
	out := recs[:0:0]
	for _, r := range recs {
		if k := (key{r.target, r.port}); !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	for i := range out {
		out[i].weight = uint16(max(1, 100/len(out)))
	}
	return out
}

// headless publishes a headless Service's ready endpoints: the Service name holds all
// their addresses and one SRV record per endpoint and port, each endpoint's hostname its
// own address, and every named port one SRV record per endpoint. With none ready, the
// Service name does not exist (NXDOMAIN).
func (t *Table) headless(s Service, name string) {
	ready := t.readyEndpoints(s, name)
	if len(ready) == 0 {
		return
	}
	rs := t.add(name)
	for _, r := range ready {
		rs.a = append(rs.a, r.ip)
		hrs := t.add(r.host)
		hrs.a = append(hrs.a, r.ip)
		t.srvA[r.host] = append(t.srvA[r.host], r.ip)
		t.addPTR(r.ip, r.host)
	}
	var all []srvRec
	for _, p := range s.Ports {
		// An endpoint is in the SRV records of the ports it has, on its own (target) port,
		// as Kubernetes lists a pod only under the ports it resolves (CoreDNS and kube-dns
		// answer the endpoint's port, not the Service's); one whose ports are not known
		// serves the Service's number.
		var recs []srvRec
		for _, r := range ready {
			port, has := p.Port, len(r.e.Ports) == 0
			for _, ep := range r.e.Ports {
				if ep.Name == p.Name && strings.EqualFold(ep.Protocol, p.Protocol) {
					port, has = ep.Port, true
				}
			}
			if has {
				recs = append(recs, srvRec{prio: 0, port: uint16(port), target: r.host})
			}
		}
		all = append(all, recs...)
		if p.Name == "" || len(recs) == 0 {
			continue
		}
		srs := t.add(srvName(p, name))
		srs.srv = weighted(append(srs.srv, recs...))
	}
	rs.srv = weighted(all)
}

func srvName(p Port, svc string) string {
	proto := strings.ToLower(p.Protocol)
	if proto == "" {
		proto = "tcp"
	}
	return "_" + strings.ToLower(p.Name) + "._" + proto + "." + svc
}

// addPTR adds a PTR record for ip: an address behind several headless Services (or
// endpoint names) has one for each, as CoreDNS returns them all.
func (t *Table) addPTR(ip netip.Addr, target string) {
	rev, err := mdns.ReverseAddr(ip.String())
	if err != nil {
		return
	}
	t.ptr[rev] = append(t.ptr[rev], target)
}

// DashedIP is an IPv4 address written with dashes, as pod and endpoint names use it.
func DashedIP(ip netip.Addr) string { return DashedIPString(ip.String()) }

// DashedIPString is DashedIP of an address in text.
func DashedIPString(ip string) string { return strings.ReplaceAll(ip, ".", "-") }

// Answer is the outcome of one lookup.
type Answer struct {
	Rcode  int // mdns.RcodeSuccess, RcodeNameError (NXDOMAIN), RcodeRefused
	Answer []mdns.RR
	Extra  []mdns.RR
	// Authoritative is false for names outside the cluster domain and the reverse zone.
	Authoritative bool
	// Negative holds the zone's SOA for NXDOMAIN and empty answers inside the domain and
	// the reverse zone.
	Negative []mdns.RR
}

// Lookup answers qname (any case; the answer's owner names keep it) for qtype.
func (t *Table) Lookup(qname string, qtype uint16) Answer {
	owner := mdns.Fqdn(qname)
	name := strings.ToLower(owner)
	ans := Answer{Rcode: mdns.RcodeSuccess, Authoritative: true}
	zone := t.domain
	switch {
	case mdns.IsSubDomain(t.domain, name):
		t.lookup(&ans, owner, name, qtype, 0)
	case mdns.IsSubDomain(ReverseZone, name):
		zone = ReverseZone
		t.reverse(&ans, owner, name, qtype)
	default:
		return Answer{Rcode: mdns.RcodeRefused}
	}
	if len(ans.Answer) == 0 || ans.Rcode != mdns.RcodeSuccess {
		ans.Negative = []mdns.RR{t.soa(zone)}
	}
	return ans
}

// apex answers the SOA and NS records of a zone's apex.
func (t *Table) apex(ans *Answer, owner, zone string, qtype uint16) {
	switch qtype {
	case mdns.TypeSOA, mdns.TypeANY:
		soa := t.soa(zone)
		soa.Header().Name = owner
		ans.Answer = append(ans.Answer, soa)
	case mdns.TypeNS:
		ans.Answer = append(ans.Answer, &mdns.NS{Hdr: mdns.RR_Header{Name: owner, Rrtype: mdns.TypeNS, Class: mdns.ClassINET, Ttl: TTL},
			Ns: "ns.dns." + t.domain})
		if t.serverIP.IsValid() {
			ans.Extra = append(ans.Extra, aRR("ns.dns."+t.domain, t.serverIP))
		}
	}
}

func (t *Table) lookup(ans *Answer, owner, name string, qtype uint16, depth int) {
	hdr := func(rrtype uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: owner, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: TTL}
	}
	if name == t.domain {
		t.apex(ans, owner, t.domain, qtype)
		return
	}
	if ip, ok := t.podAddr(name); ok {
		if qtype == mdns.TypeA || qtype == mdns.TypeANY {
			ans.Answer = append(ans.Answer, &mdns.A{Hdr: hdr(mdns.TypeA), A: ip.AsSlice()})
		}
		return
	}
	rs := t.names[name]
	if rs == nil {
		if !t.exists[name] {
			ans.Rcode = mdns.RcodeNameError
		}
		return
	}
	if rs.cname != "" {
		ans.Answer = append(ans.Answer, &mdns.CNAME{Hdr: hdr(mdns.TypeCNAME), Target: rs.cname})
		if qtype != mdns.TypeCNAME && depth < 8 && mdns.IsSubDomain(t.domain, rs.cname) {
			t.lookup(ans, rs.cname, rs.cname, qtype, depth+1)
		}
		return
	}
	if qtype == mdns.TypeA || qtype == mdns.TypeANY {
		for _, ip := range rs.a {
			ans.Answer = append(ans.Answer, &mdns.A{Hdr: hdr(mdns.TypeA), A: ip.AsSlice()})
		}
	}
	if qtype == mdns.TypeSRV || qtype == mdns.TypeANY {
		added := map[string]bool{}
		for _, s := range rs.srv {
			ans.Answer = append(ans.Answer, &mdns.SRV{Hdr: hdr(mdns.TypeSRV), Priority: s.prio, Weight: s.weight, Port: s.port, Target: s.target})
			if added[s.target] {
				continue
			}
			added[s.target] = true
			for _, ip := range t.srvA[s.target] {
				ans.Extra = append(ans.Extra, aRR(s.target, ip))
			}
		}
	}
	if qtype == mdns.TypeTXT || qtype == mdns.TypeANY {
		if len(rs.txt) > 0 {
			h := hdr(mdns.TypeTXT)
			if rs.txtTTL != 0 {
				h.Ttl = rs.txtTTL
			}
			ans.Answer = append(ans.Answer, &mdns.TXT{Hdr: h, Txt: rs.txt})
		}
	}
}

// podAddr reads <a-b-c-d>.<ns>.pod.<domain>: the specification's pod A record, given for
// any address (CoreDNS's "pods insecure", what kubeadm configures) in a namespace that
// exists.
func (t *Table) podAddr(name string) (netip.Addr, bool) {
	rel := strings.TrimSuffix(name, ".pod."+t.domain)
	if rel == name {
		return netip.Addr{}, false
	}
	dashed, ns, ok := strings.Cut(rel, ".")
	if !ok || !t.nss[ns] || strings.Count(dashed, "-") != 3 {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(strings.ReplaceAll(dashed, "-", "."))
	if err != nil || !ip.Is4() {
		return netip.Addr{}, false
	}
	return ip, true
}

// reverse answers the reverse zone: PTR records for the ClusterIPs and headless endpoints
// it knows (every name of an address), no data for their ancestors (empty non-terminals),
// and no name for any other address (nothing is asked outside the lab).
func (t *Table) reverse(ans *Answer, owner, name string, qtype uint16) {
	if name == ReverseZone {
		t.apex(ans, owner, ReverseZone, qtype)
		return
	}
	targets, ok := t.ptr[name]
	if !ok {
		if !t.exists[name] {
			ans.Rcode = mdns.RcodeNameError
		}
		return
	}
	if qtype == mdns.TypePTR || qtype == mdns.TypeANY {
		for _, target := range targets {
			ans.Answer = append(ans.Answer, &mdns.PTR{Hdr: mdns.RR_Header{Name: owner, Rrtype: mdns.TypePTR, Class: mdns.ClassINET, Ttl: TTL}, Ptr: target})
		}
	}
}

// soa is the SOA record of zone (the cluster domain or the reverse zone), CoreDNS's fields.
func (t *Table) soa(zone string) mdns.RR {
	return &mdns.SOA{Hdr: mdns.RR_Header{Name: zone, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: TTL},
		Ns: "ns.dns." + t.domain, Mbox: "hostmaster." + t.domain, Serial: t.serial, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: TTL}
}

func aRR(name string, ip netip.Addr) mdns.RR {
	return &mdns.A{Hdr: mdns.RR_Header{Name: name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: TTL}, A: ip.AsSlice()}
}

// Reply answers one request message. Over UDP (udp true) an answer longer than the
// client's buffer (512 bytes, or its EDNS0 size) is truncated with the TC bit set.
func (t *Table) Reply(req *mdns.Msg, udp bool) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Compress = true
	m.RecursionAvailable = false
	opt := req.IsEdns0()
	// A request with EDNS gets an OPT record back, errors too (RFC 6891 7), with its DO
	// bit copied (RFC 3225 3).
	edns := func(m *mdns.Msg) *mdns.Msg {
		if opt != nil {
			m.SetEdns0(1232, opt.Do())
		}
		return m
	}
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		m.SetRcode(req, mdns.RcodeNotImplemented)
		return edns(m)
	case len(req.Question) != 1:
		m.SetRcode(req, mdns.RcodeFormatError)
		return edns(m)
	case opt != nil && opt.Version() != 0:
		// RFC 6891 6.1.3: an EDNS version the server does not implement.
		edns(m).Rcode = mdns.RcodeBadVers
		return m
	}
	q := req.Question[0]
	switch {
	case q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY,
		q.Qtype == mdns.TypeAXFR, q.Qtype == mdns.TypeIXFR: // no zone transfers
		m.SetRcode(req, mdns.RcodeRefused)
		return edns(m)
	}
	a := t.Lookup(q.Name, q.Qtype)
	m.Rcode = a.Rcode
	m.Authoritative = a.Authoritative
	m.Answer, m.Extra, m.Ns = a.Answer, a.Extra, a.Negative
	// Several A records (a headless Service) start at another one in each reply, as
	// kubeadm's Corefile rotates them (loadbalance): clients taking the first address
	// spread over the pods.
	if n := len(m.Answer); n > 1 && !slices.ContainsFunc(m.Answer, func(rr mdns.RR) bool { return rr.Header().Rrtype != mdns.TypeA }) {
		k := int(t.rotation.Add(1) % uint32(n))
		m.Answer = slices.Concat(m.Answer[k:], m.Answer[:k])
	}
	size := mdns.MinMsgSize
	if opt != nil {
		size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		edns(m)
	}
	if udp {
		m.Truncate(size)
	}
	return m
}

// FormErr is the answer to a message that does not parse, from its raw bytes: FORMERR
// with its id and no sections. It is nil when even the header is unreadable or the message
// is a response (answering those could start a loop).
func FormErr(msg []byte) *mdns.Msg {
	req := new(mdns.Msg)
	if err := req.Unpack(msg); err == nil || len(msg) < 12 || req.Response {
		return nil // it parses (Reply answers it), or there is no header to answer
	}
	m := new(mdns.Msg)
	m.SetRcodeFormatError(req) // Unpack reads the header before the sections fail
	m.RecursionDesired = req.RecursionDesired
	return m
}
