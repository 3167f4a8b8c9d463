package kubeproxy

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// largeClusterEndpointsThreshold is kube-proxy's: above this many endpoints in total,
// per-endpoint comments are left out to keep the rule set small.
const largeClusterEndpointsThreshold = 1000

// Options tunes one rendering.
type Options struct {
	// ExistingNATChains are the chain names of the nat table as they are now (from
	// iptables-save: iptables.Dump.ChainNames("nat")). Per-service chains among them that the new rule
	// set no longer uses are flushed and deleted.
	ExistingNATChains []string
	// Changed, when not nil, makes a partial sync as kube-proxy does: only the
	// per-service chains (KUBE-SVC/SVL/EXT/SEP) of the Services named in it ("ns/name")
	// are written; those of other Services are left as they are in the kernel. The
	// top-level chains are always rewritten whole. Nil means a full sync.
	Changed map[string]bool
}

// Render returns the full iptables-restore --noflush input (filter then nat table) that
// kube-proxy's iptables mode writes on node for ports. existing are the nat table's
// current chain names, used to remove stale per-service chains.
func Render(node Node, ports []ServicePort, existing []string) []byte {
	return RenderWith(node, ports, Options{ExistingNATChains: existing})
}

// lineBuf collects iptables-restore lines; words are joined by single spaces.
type lineBuf struct {
	b       bytes.Buffer
	discard bool
}

func (l *lineBuf) write(words ...string) {
	if l.discard {
		return
	}
	for i, w := range words {
		if i > 0 {
			l.b.WriteByte(' ')
		}
		l.b.WriteString(w)
	}
	l.b.WriteByte('\n')
}

func chainLine(name string) string { return ":" + name + " - [0:0]" }

// quote wraps a comment in double quotes, as kube-proxy writes comments holding spaces.
func quote(s string) string { return `"` + s + `"` }

// probability is kube-proxy's computeProbability: 1/n with ten decimals.
func probability(n int) string { return fmt.Sprintf("%0.10f", 1.0/float64(n)) }

// SortPorts orders service ports the way Render does: by service port name, then protocol.
func SortPorts(ports []ServicePort) {
	slices.SortStableFunc(ports, func(a, b ServicePort) int {
		return cmp.Or(strings.Compare(a.ServicePortName(), b.ServicePortName()),
			strings.Compare(strings.ToLower(a.Protocol), strings.ToLower(b.Protocol)))
	})
}

// SortEndpoints orders endpoints as kube-proxy does: by their "ip:port" string, so
// 10.0.0.10 comes before 10.0.0.3.
func SortEndpoints(eps []Endpoint) {
	slices.SortStableFunc(eps, func(a, b Endpoint) int { return strings.Compare(a.String(), b.String()) })
}

func sortEndpoints(eps []Endpoint) { SortEndpoints(eps) }

// Categorize mirrors kube-proxy's CategorizeEndpoints (see categorize): the endpoints of
// the Cluster and Local policy chains, those reachable from the node, and whether the
// port has any usable endpoint in the cluster.
func Categorize(sp *ServicePort, nodeName string) (cluster, local, reachable []Endpoint, hasAny bool) {
	return categorize(sp, nodeName)
}

// categorize mirrors kube-proxy's CategorizeEndpoints (no topology hints): ready
// endpoints, or, when a Service has none, its serving terminating ones (KEP-1669), so a
// Service whose every pod is leaving keeps answering until they are gone.
func categorize(sp *ServicePort, nodeName string) (cluster, local, reachable []Endpoint, hasAny bool) {
	if sp.usesClusterEndpoints() {
		for _, ep := range sp.Endpoints {
			if ep.Ready {
				cluster = append(cluster, ep)
			}
		}
		if len(cluster) == 0 {
			for _, ep := range sp.Endpoints {
				if ep.ServingTerminating() {
					cluster = append(cluster, ep)
				}
			}
		}
		hasAny = len(cluster) > 0
	}
	if !sp.usesLocalEndpoints() {
		return cluster, nil, cluster, hasAny
	}
	localReady, localTerminating := false, false
	for _, ep := range sp.Endpoints {
		switch {
		case ep.Ready:
			hasAny = true
			localReady = localReady || ep.Node == nodeName
		case ep.ServingTerminating():
			hasAny = true
			localTerminating = localTerminating || ep.Node == nodeName
		}
	}
	for _, ep := range sp.Endpoints {
		if ep.Node != nodeName {
			continue
		}
		if (localReady && ep.Ready) || (!localReady && localTerminating && ep.ServingTerminating()) {
			local = append(local, ep)
		}
	}
	if !sp.usesClusterEndpoints() {
		return nil, local, local, hasAny
	}
	// cluster holds every endpoint in use; local ones are among them unless the cluster
	// set is the ready one and the local set the terminating one.
	reachable = cluster
	for _, ep := range local {
		if !slices.ContainsFunc(reachable, func(x Endpoint) bool { return x == ep }) {
			reachable = append(slices.Clone(reachable), ep)
		}
	}
	return cluster, local, reachable, hasAny
}

// RenderWith is Render with options.
func RenderWith(node Node, in []ServicePort, opts Options) []byte {
	ports := make([]ServicePort, len(in))
	copy(ports, in)
	totalEndpoints := 0
	for i := range ports {
		ports[i].Endpoints = slices.Clone(ports[i].Endpoints)
		sortEndpoints(ports[i].Endpoints)
		totalEndpoints += len(ports[i].Endpoints)
	}
	SortPorts(ports)
	largeCluster := totalEndpoints > largeClusterEndpointsThreshold

	var filterChains, filterRules, natChains, natRules lineBuf
	skipped := &lineBuf{discard: true}
	// Rough sizes (a service port with two endpoints is ~1.6 kB of nat rules) save the
	// buffers from growing step by step.
	natChains.b.Grow(64 * (len(ports)*4 + 8))
	natRules.b.Grow(1024*len(ports) + 300*totalEndpoints + 1024)

	for _, c := range []string{ChainServices, ChainExternalServices, ChainForward, ChainNodePorts, ChainProxyFirewall} {
		filterChains.write(chainLine(c))
	}
	for _, c := range []string{ChainServices, ChainNodePorts, ChainPostrouting, ChainMarkMasq} {
		natChains.write(chainLine(c))
	}
	masqMatch := MasqMark + "/" + MasqMark
	natRules.write("-A", ChainPostrouting, "-m", "mark", "!", "--mark", masqMatch, "-j", "RETURN")
	natRules.write("-A", ChainPostrouting, "-j", "MARK", "--xor-mark", MasqMark)
	natRules.write("-A", ChainPostrouting, "-m", "comment", "--comment", quote("kubernetes service traffic requiring SNAT"), "-j", "MASQUERADE", "--random-fully")
	natRules.write("-A", ChainMarkMasq, "-j", "MARK", "--or-mark", MasqMark)

	// localhost NodePorts are on, as in kube-proxy's default; this is the rule that
	// closes the route_localnet hole (kubelet writes the same one).
	filterChains.write(chainLine(chainKubeletFirewall))
	filterRules.write("-A", chainKubeletFirewall, "-m", "comment", "--comment", quote("block incoming localnet connections"),
		"-d", "127.0.0.0/8", "!", "-s", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP")

	active := map[string]bool{}
	svcComment := func(args []string, comment string) []string {
		if largeCluster {
			return args
		}
		return append(args, "-m", "comment", "--comment", comment)
	}

	for i := range ports {
		sp := &ports[i]
		proto := strings.ToLower(sp.Protocol)
		name := sp.ServicePortName()
		port := strconv.Itoa(int(sp.Port))
		svcChain := SVCChain(name, proto)
		svlChain := SVLChain(name, proto)
		extChain := EXTChain(name, proto)

		cluster, local, reachable, hasEndpoints := categorize(sp, node.Name)
		usesClusterPolicyChain := len(cluster) > 0 && sp.usesClusterEndpoints()
		usesLocalPolicyChain := len(local) > 0 && sp.usesLocalEndpoints()

		internalChain, hasInternal := svcChain, hasEndpoints
		if sp.InternalLocal {
			internalChain = svlChain
			if len(local) == 0 {
				hasInternal = false
			}
		}
		externalPolicyChain, hasExternal := svcChain, hasEndpoints
		if sp.externalPolicyLocal() {
			externalPolicyChain = svlChain
			if len(local) == 0 {
				hasExternal = false
			}
		}
		usesExtChain := hasEndpoints && sp.externallyAccessible()

		var intTarget, intComment, extTarget, extComment string
		if !hasEndpoints {
			intTarget, intComment = "REJECT", quote(name+" has no endpoints")
			extTarget, extComment = intTarget, intComment
		} else {
			if !hasInternal {
				intTarget, intComment = "DROP", quote(name+" has no local endpoints")
			}
			if !hasExternal {
				extTarget, extComment = "DROP", quote(name+" has no local endpoints")
			}
		}

		clusterIPMatch := []string{"-m", "comment", "--comment", quote(name + " cluster IP"),
			"-m", proto, "-p", proto, "-d", sp.ClusterIP, "--dport", port}
		if hasInternal {
			natRules.write(append([]string{"-A", ChainServices}, append(slices.Clone(clusterIPMatch), "-j", internalChain)...)...)
		} else {
			filterRules.write("-A", ChainServices, "-m", "comment", "--comment", intComment,
				"-m", proto, "-p", proto, "-d", sp.ClusterIP, "--dport", port, "-j", intTarget)
		}

		for _, ip := range sp.ExternalIPs {
			if hasEndpoints {
				natRules.write("-A", ChainServices, "-m", "comment", "--comment", quote(name+" external IP"),
					"-m", proto, "-p", proto, "-d", ip, "--dport", port, "-j", extChain)
			}
			if !hasExternal {
				filterRules.write("-A", ChainExternalServices, "-m", "comment", "--comment", extComment,
					"-m", proto, "-p", proto, "-d", ip, "--dport", port, "-j", extTarget)
			}
		}
		// loadBalancerSourceRanges: the LB IPs go through KUBE-FW-<hash>, which sends
		// allowed sources on to KUBE-EXT; what falls off its end is not DNATed and meets
		// the DROP in KUBE-PROXY-FIREWALL.
		fwChain := FWChain(name, proto)
		ranges := sourceRanges(sp.LoadBalancerSourceRanges)
		usesFWChain := hasEndpoints && len(sp.LoadBalancerIPs) > 0 && len(ranges) > 0
		lbTarget := extChain
		if usesFWChain {
			lbTarget = fwChain
		}
		for _, ip := range sp.LoadBalancerIPs {
			if hasEndpoints {
				natRules.write("-A", ChainServices, "-m", "comment", "--comment", quote(name+" loadbalancer IP"),
					"-m", proto, "-p", proto, "-d", ip, "--dport", port, "-j", lbTarget)
			}
			if usesFWChain {
				filterRules.write("-A", ChainProxyFirewall, "-m", "comment", "--comment", quote(name+" traffic not accepted by "+fwChain),
					"-m", proto, "-p", proto, "-d", ip, "--dport", port, "-j", "DROP")
			}
		}
		if !hasExternal {
			for _, ip := range sp.LoadBalancerIPs {
				filterRules.write("-A", ChainExternalServices, "-m", "comment", "--comment", extComment,
					"-m", proto, "-p", proto, "-d", ip, "--dport", port, "-j", extTarget)
			}
		}
		if sp.NodePort != 0 {
			nodePort := strconv.Itoa(int(sp.NodePort))
			if hasEndpoints {
				if node.NFAcct {
					// NodePorts on the node's loopback addresses (route_localnet),
					// counted apart.
					natRules.write("-A", ChainNodePorts, "-m", "comment", "--comment", name,
						"-m", proto, "-p", proto, "-d", "127.0.0.0/8", "--dport", nodePort,
						"-m", "nfacct", "--nfacct-name", NFAcctLocalhostNodePorts, "-j", extChain)
				}
				natRules.write("-A", ChainNodePorts, "-m", "comment", "--comment", name,
					"-m", proto, "-p", proto, "--dport", nodePort, "-j", extChain)
			}
			if !hasExternal {
				filterRules.write("-A", ChainExternalServices, "-m", "comment", "--comment", extComment,
					"-m", "addrtype", "--dst-type", "LOCAL", "-m", proto, "-p", proto, "--dport", nodePort, "-j", extTarget)
			}
		}
		if sp.HealthCheckNodePort != 0 {
			filterRules.write("-A", ChainNodePorts, "-m", "comment", "--comment", quote(name+" health check node port"),
				"-m", "tcp", "-p", "tcp", "--dport", strconv.Itoa(int(sp.HealthCheckNodePort)), "-j", "ACCEPT")
		}

		chains, rules := &natChains, &natRules
		if opts.Changed != nil && !opts.Changed[sp.ServiceName()] {
			chains, rules = skipped, skipped
		}

		if hasInternal && node.ClusterCIDR != "" {
			// Masquerade off-cluster traffic to the ClusterIP: it may bounce to another node.
			rules.write(append([]string{"-A", internalChain}, append(slices.Clone(clusterIPMatch), "!", "-s", node.ClusterCIDR, "-j", ChainMarkMasq)...)...)
		}

		if usesExtChain {
			chains.write(chainLine(extChain))
			active[extChain] = true
			if !sp.externalPolicyLocal() {
				rules.write("-A", extChain, "-m", "comment", "--comment", quote("masquerade traffic for "+name+" external destinations"), "-j", ChainMarkMasq)
			} else {
				if node.ClusterCIDR != "" {
					rules.write("-A", extChain, "-m", "comment", "--comment", quote("pod traffic for "+name+" external destinations"),
						"-s", node.ClusterCIDR, "-j", svcChain)
				}
				rules.write("-A", extChain, "-m", "comment", "--comment", quote("masquerade LOCAL traffic for "+name+" external destinations"),
					"-m", "addrtype", "--src-type", "LOCAL", "-j", ChainMarkMasq)
				rules.write("-A", extChain, "-m", "comment", "--comment", quote("route LOCAL traffic for "+name+" external destinations"),
					"-m", "addrtype", "--src-type", "LOCAL", "-j", svcChain)
			}
			if hasExternal {
				rules.write("-A", extChain, "-j", externalPolicyChain)
			}
		}

		if usesFWChain {
			chains.write(chainLine(fwChain))
			active[fwChain] = true
			allowFromNode := false
			for _, r := range ranges {
				rules.write("-A", fwChain, "-m", "comment", "--comment", quote(name+" loadbalancer IP"), "-s", r, "-j", extChain)
				if p, err := netip.ParsePrefix(r); err == nil && node.IP != "" && p.Contains(netip.MustParseAddr(node.IP)) {
					allowFromNode = true
				}
			}
			if allowFromNode {
				// The node's own requests to a VIP it holds come from the VIP.
				for _, ip := range sp.LoadBalancerIPs {
					rules.write("-A", fwChain, "-m", "comment", "--comment", quote(name+" loadbalancer IP"), "-s", ip, "-j", extChain)
				}
			}
			rules.write("-A", fwChain, "-m", "comment", "--comment", quote("other traffic to "+name+" will be dropped by KUBE-PROXY-FIREWALL"))
		}
		if usesClusterPolicyChain {
			chains.write(chainLine(svcChain))
			active[svcChain] = true
			writeServiceToEndpoints(rules, sp, name, proto, svcChain, cluster, svcComment)
		}
		if usesLocalPolicyChain {
			chains.write(chainLine(svlChain))
			active[svlChain] = true
			writeServiceToEndpoints(rules, sp, name, proto, svlChain, local, svcComment)
		}
		for _, ep := range reachable {
			sep := SEPChain(name, proto, ep.String())
			chains.write(chainLine(sep))
			active[sep] = true
			args := svcComment([]string{"-A", sep}, name)
			rules.write(append(slices.Clone(args), "-s", ep.IP, "-j", ChainMarkMasq)...)
			if sp.AffinityClientIP {
				args = append(args, "-m", "recent", "--name", sep, "--set")
			}
			rules.write(append(args, "-m", proto, "-p", proto, "-j", "DNAT", "--to-destination", ep.String())...)
		}
	}

	var stale []string
	for _, c := range opts.ExistingNATChains {
		if IsServiceChain(c) && !active[c] {
			stale = append(stale, c)
		}
	}
	slices.Sort(stale)
	stale = slices.Compact(stale)
	for _, c := range stale {
		natChains.write(chainLine(c))
		natRules.write("-X", c)
	}

	natRules.write("-A", ChainServices, "-m", "comment", "--comment", quote("kubernetes service nodeports; NOTE: this must be the last rule in this chain"),
		"-m", "addrtype", "--dst-type", "LOCAL", "-j", ChainNodePorts)

	if node.NFAcct {
		filterRules.write("-A", ChainForward, "-m", "conntrack", "--ctstate", "INVALID",
			"-m", "nfacct", "--nfacct-name", NFAcctInvalidDropped, "-j", "DROP")
	} else {
		filterRules.write("-A", ChainForward, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
	}
	filterRules.write("-A", ChainForward, "-m", "comment", "--comment", quote("kubernetes forwarding rules"),
		"-m", "mark", "--mark", masqMatch, "-j", "ACCEPT")
	filterRules.write("-A", ChainForward, "-m", "comment", "--comment", quote("kubernetes forwarding conntrack rule"),
		"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")

	var out bytes.Buffer
	out.Grow(filterChains.b.Len() + filterRules.b.Len() + natChains.b.Len() + natRules.b.Len() + 32)
	out.WriteString("*filter\n")
	out.Write(filterChains.b.Bytes())
	out.Write(filterRules.b.Bytes())
	out.WriteString("COMMIT\n*nat\n")
	out.Write(natChains.b.Bytes())
	out.Write(natRules.b.Bytes())
	out.WriteString("COMMIT\n")
	return out.Bytes()
}

// writeServiceToEndpoints writes a KUBE-SVC/KUBE-SVL chain: affinity checks first, then
// the random choice among endpoints with probability 1/(n-i).
func writeServiceToEndpoints(rules *lineBuf, sp *ServicePort, name, proto, chain string, eps []Endpoint, svcComment func([]string, string) []string) {
	if sp.AffinityClientIP {
		for _, ep := range eps {
			sep := SEPChain(name, proto, ep.String())
			args := svcComment([]string{"-A", chain}, quote(name+" -> "+ep.String()))
			rules.write(append(args, "-m", "recent", "--name", sep, "--rcheck", "--seconds", strconv.Itoa(int(sp.AffinitySeconds)), "--reap", "-j", sep)...)
		}
	}
	n := len(eps)
	for i, ep := range eps {
		args := svcComment([]string{"-A", chain}, quote(name+" -> "+ep.String()))
		if i < n-1 {
			args = append(args, "-m", "statistic", "--mode", "random", "--probability", probability(n-i))
		}
		rules.write(append(args, "-j", SEPChain(name, proto, ep.String()))...)
	}
}

// sourceRanges parses loadBalancerSourceRanges as kube-proxy does (spaces trimmed,
// invalid entries skipped) into canonical IPv4 CIDRs.
func sourceRanges(in []string) []string {
	var out []string
	for _, s := range in {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil || !p.Addr().Is4() {
			continue
		}
		out = append(out, p.Masked().String())
	}
	return out
}
