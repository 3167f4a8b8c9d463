package agent

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/netlabdev/netlab/netlab/iptables"
	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/kubeproxy"
	kpnft "github.com/netlabdev/netlab/netlab/kubeproxy/nftables"
)

// ruleCheck tells whether the node's built-in chains still jump to kube-proxy's chains:
// what a `iptables -t nat -F`, a firewall reload or a hand-deleted rule takes away. It is
// run every second, so it must be cheap: on the nf_tables backend it reads the built-in
// chains over netlink (no process is started); on the legacy backend it reads
// iptables-save. kube-proxy itself watches canary chains for the same purpose; those
// survive a flush of the rules (`-F` keeps chains), the jumps do not.
//
// In kube-proxy's nftables mode it looks for the jumps from the base chains of table ip
// kube-proxy to kube-proxy's top-level chains instead, over netlink: a deleted table or a
// flushed base chain takes them away.
type ruleCheck struct {
	nft     *nftables.Conn // nil: legacy backend
	nftMode bool
	// opened: the backend was asked (at the first check, not at the agent's start: in
	// iptables mode that is an `iptables -V` process, which up's end need not wait beside).
	opened bool
}

func newRuleCheck(nftMode bool) *ruleCheck { return &ruleCheck{nftMode: nftMode} }

// open finds the backend and opens the netlink connection the checks read through.
func (rc *ruleCheck) open() {
	rc.opened = true
	if !rc.nftMode {
		out, err := exec.Command("iptables", "-V").Output()
		if err != nil || !strings.Contains(string(out), "nf_tables") {
			return
		}
	}
	if c, err := nftables.New(); err == nil { // this process's namespace: the node's
		rc.nft = c
	}
}

// missing returns the jumps kube-proxy ensures that the kernel lacks, as
// "table chain -> target" (empty: all there).
func (rc *ruleCheck) missing() ([]string, error) {
	if !rc.opened {
		rc.open()
	}
	if rc.nftMode {
		return rc.missingNFT()
	}
	var out []string
	if rc.nft == nil {
		save, err := kernel.SaveHere(context.Background(), false, "")
		if err != nil {
			return nil, err
		}
		dump, err := iptables.Parse(save)
		if err != nil {
			return nil, err
		}
		for _, j := range kubeproxy.MissingJumps(dump) {
			out = append(out, j.Table+" "+j.Chain+" -> "+j.Target)
		}
		return out, nil
	}
	targets := map[string]map[string]bool{} // "table chain" -> jump targets present
	for _, j := range kubeproxy.JumpRules() {
		key := j.Table + " " + j.Chain
		if _, done := targets[key]; !done {
			targets[key] = map[string]bool{}
			rules, err := rc.nft.GetRules(&nftables.Table{Name: j.Table, Family: nftables.TableFamilyIPv4},
				&nftables.Chain{Name: j.Chain})
			if err != nil && !isNotFound(err) {
				return nil, fmt.Errorf("read %s %s: %w", j.Table, j.Chain, err)
			}
			for _, r := range rules {
				for _, e := range r.Exprs {
					if v, ok := e.(*expr.Verdict); ok && (v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) {
						targets[key][v.Chain] = true
					}
				}
			}
		}
		if !targets[key][j.Target] {
			out = append(out, key+" -> "+j.Target)
		}
	}
	return out, nil
}

// missingNFT returns the jumps of kube-proxy's nftables mode the kernel lacks, as
// "chain -> target".
func (rc *ruleCheck) missingNFT() ([]string, error) {
	if rc.nft == nil {
		return nil, errors.New("no netlink connection to nftables")
	}
	var out []string
	targets := map[string]map[string]bool{} // base chain -> jump targets present
	table := &nftables.Table{Name: kpnft.Table, Family: nftables.TableFamilyIPv4}
	for _, j := range kpnft.Jumps() {
		if _, done := targets[j.Chain]; !done {
			targets[j.Chain] = map[string]bool{}
			rules, err := rc.nft.GetRules(table, &nftables.Chain{Name: j.Chain})
			if err != nil && !isNotFound(err) {
				return nil, fmt.Errorf("read %s %s: %w", kpnft.Table, j.Chain, err)
			}
			for _, r := range rules {
				for _, e := range r.Exprs {
					if v, ok := e.(*expr.Verdict); ok && (v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) {
						targets[j.Chain][v.Chain] = true
					}
				}
			}
		}
		if !targets[j.Chain][j.Target] {
			out = append(out, j.Chain+" -> "+j.Target)
		}
	}
	return out, nil
}

// isNotFound says whether a netlink error means the table or chain is not there (a
// flushed ruleset): then every jump in it is missing.
func isNotFound(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "no such file or directory") ||
		errors.Is(err, syscall.ENOENT))
}
