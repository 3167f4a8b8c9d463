package kubeproxy

import (
	"fmt"
	"strings"

	"github.com/netlabdev/netlab/netlab/iptables"
)

// AnnotatedRule is one live rule as `netlab rules` shows it: its counters, and the
// Service port and endpoint its chain (or its jump target) belongs to.
type AnnotatedRule struct {
	Table   string `json:"table"`
	Chain   string `json:"chain"`
	Rule    string `json:"rule"` // as iptables-save prints it, from "-A"
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	Service string `json:"service,omitempty"` // "ns/name" of the chain's or target's Service
	Note    string `json:"note,omitempty"`    // e.g. "default/web:http: endpoint web-1 10.244.1.2:8080 on node-1 (ready)"
}

// RuleFilter picks which rules Annotate keeps.
type RuleFilter struct {
	Service string // only this Service's rules: NAME or NAMESPACE/NAME ("" = all)
	All     bool   // also rules that are not kube-proxy's
}

// ruleOwner says what a chain belongs to.
type ruleOwner struct {
	service string // "ns/name"
	port    string // service port name "ns/name:port"
	what    string
}

func ruleOwners(ports []ServicePort) map[string]ruleOwner {
	idx := map[string]ruleOwner{}
	for _, sp := range ports {
		name, proto := sp.ServicePortName(), sp.Protocol
		idx[SVCChain(name, proto)] = ruleOwner{sp.ServiceName(), name, "cluster traffic policy"}
		idx[SVLChain(name, proto)] = ruleOwner{sp.ServiceName(), name, "local traffic policy"}
		idx[EXTChain(name, proto)] = ruleOwner{sp.ServiceName(), name, "external destinations"}
		for _, ep := range sp.Endpoints {
			state := "ready"
			if !ep.Ready {
				state = "not ready"
			}
			idx[SEPChain(name, proto, ep.String())] = ruleOwner{sp.ServiceName(), name,
				fmt.Sprintf("endpoint %s %s on %s (%s)", ep.Pod, ep.String(), ep.Node, state)}
		}
	}
	return idx
}

// ServiceMatches says whether svc ("ns/name") is the Service want names (NAME or
// NAMESPACE/NAME; "" matches every Service).
func ServiceMatches(svc, want string) bool {
	if want == "" {
		return true
	}
	if strings.Contains(want, "/") {
		return svc == want
	}
	_, name, _ := strings.Cut(svc, "/")
	return name == want
}

// Annotate reads one table of `iptables-save -c` output and returns its kube-proxy rules
// (every rule with All), each with its counters and what it belongs to among ports.
func Annotate(table string, save []byte, ports []ServicePort, f RuleFilter) ([]AnnotatedRule, error) {
	dump, err := iptables.Parse(save)
	if err != nil {
		return nil, fmt.Errorf("iptables-save output: %w", err)
	}
	idx := ruleOwners(ports)
	var out []AnnotatedRule
	for _, t := range dump.Tables {
		if t.Name != table {
			continue
		}
		for _, r := range t.Rules {
			if !r.HasCounters || r.Op != "-A" {
				continue
			}
			chain, target, rule := r.Chain, r.Target(), r.Text
			o, mine := idx[chain]
			if !mine {
				o, mine = idx[target]
			}
			ours := strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(target, "KUBE-")
			if !ours && !f.All {
				continue
			}
			if f.Service != "" && (!mine || !ServiceMatches(o.service, f.Service)) && !commentNames(rule, f.Service) {
				continue
			}
			ar := AnnotatedRule{Table: table, Chain: chain, Rule: rule, Packets: r.Counters.Packets, Bytes: r.Counters.Bytes}
			if mine {
				ar.Service = o.service
			}
			var notes []string
			if o, ok := idx[chain]; ok {
				notes = append(notes, o.port+": "+o.what)
			}
			if o, ok := idx[target]; ok {
				notes = append(notes, "-> "+o.port+" "+o.what)
			}
			ar.Note = strings.Join(notes, " ")
			out = append(out, ar)
		}
	}
	return out, nil
}

// commentNames says whether a rule's comment names the Service (filter REJECT/DROP rules
// and health check ports have no per-service chain).
func commentNames(rule, service string) bool {
	i := strings.Index(rule, "--comment ")
	if i < 0 {
		return false
	}
	f := strings.Fields(strings.TrimLeft(rule[i+len("--comment "):], `"`))
	if len(f) == 0 {
		return false
	}
	svc, _, _ := strings.Cut(strings.Trim(f[0], `"`), ":")
	return ServiceMatches(svc, service)
}
