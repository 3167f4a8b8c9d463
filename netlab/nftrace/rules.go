package nftrace

import (
	"encoding/binary"
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/netlabdev/netlab/netlab/iptables"
	"github.com/netlabdev/netlab/netlab/kernel"
	"golang.org/x/sys/unix"
)

// Rule is a rule a trace event names: its place in its chain and its text.
type Rule struct {
	Table, Chain string
	Position     int    // 1 for a chain's first rule
	Text         string // as iptables-save writes it (iptables-nft's tables) or as nft lists it
}

// iptablesTables are the tables iptables-nft makes; their rules read best in iptables'
// own terms (`-m statistic --mode random --probability 0.5 -j KUBE-SEP-…`).
var iptablesTables = map[string]bool{"filter": true, "nat": true, "mangle": true, "raw": true, "security": true}

// Rules finds, for the handles of some ip-family tables in a namespace, each rule's
// position in its chain (from the kernel's own listing, in rule order) and its text: table →
// handle → rule.
func Rules(ns string, tables ...string) (map[string]map[uint64]Rule, error) {
	out := map[string]map[uint64]Rule{}
	err := kernel.Do(ns, func() error {
		fd, err := socket()
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var errs []error
		for _, table := range tables {
			msgs, err := dump(fd, message(nftType(unix.NFT_MSG_GETRULE), unix.NLM_F_REQUEST|unix.NLM_F_DUMP, unix.NFPROTO_IPV4, 0,
				strAttr(unix.NFTA_RULE_TABLE, table)))
			errs = append(errs, err)
			pos := map[string]int{}
			out[table] = map[uint64]Rule{}
			for _, m := range msgs {
				if m.typ != nftType(unix.NFT_MSG_NEWRULE) || len(m.data) < 4 {
					continue
				}
				a := parseAttrs(m.data[4:])
				if cstr(a[unix.NFTA_RULE_TABLE]) != table || len(a[unix.NFTA_RULE_HANDLE]) != 8 {
					continue
				}
				chain := cstr(a[unix.NFTA_RULE_CHAIN])
				pos[chain]++
				out[table][binary.BigEndian.Uint64(a[unix.NFTA_RULE_HANDLE])] = Rule{Table: table, Chain: chain, Position: pos[chain]}
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return out, err
	}
	var saved map[string]map[string][]string // table → chain → rule texts in order
	for _, table := range tables {
		if iptablesTables[table] && saved == nil {
			saved = map[string]map[string][]string{}
			if b, err := kernel.Save(ns, false, ""); err == nil {
				saved = iptablesTexts(b)
			}
		}
		var byHandle map[uint64]string
		for h, r := range out[table] {
			if t := saved[table][r.Chain]; r.Position <= len(t) {
				r.Text = t[r.Position-1]
			} else {
				if byHandle == nil {
					byHandle = map[uint64]string{}
					if b, err := kernel.Run(ns, nil, "nft", "-a", "list", "table", "ip", table); err == nil {
						byHandle = nftTexts(string(b))
					}
				}
				r.Text = byHandle[h]
			}
			out[table][h] = r
		}
	}
	return out, nil
}

// iptablesTexts is each table's chains' rules from iptables-save output, without `-A CHAIN`.
func iptablesTexts(save []byte) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	d, err := iptables.Parse(save)
	if err != nil {
		return out
	}
	for _, t := range d.Tables {
		if out[t.Name] == nil {
			out[t.Name] = map[string][]string{}
		}
		for _, r := range t.Rules {
			if r.Op == "-A" {
				out[t.Name][r.Chain] = append(out[t.Name][r.Chain], strings.TrimPrefix(r.Text, "-A "+r.Chain+" "))
			}
		}
	}
	return out
}

var handleRE = regexp.MustCompile(`\s+# handle (\d+)$`)

// nftTexts maps rule handles to their text in `nft -a list table` output.
func nftTexts(list string) map[uint64]string {
	out := map[uint64]string{}
	for _, line := range strings.Split(list, "\n") {
		line = strings.TrimSpace(line)
		m := handleRE.FindStringSubmatchIndex(line)
		if m == nil || strings.HasPrefix(line, "chain ") || strings.HasPrefix(line, "table ") {
			continue
		}
		h, err := strconv.ParseUint(line[m[2]:m[3]], 10, 64)
		if err != nil {
			continue
		}
		out[h] = strings.TrimSpace(line[:m[0]])
	}
	return out
}
