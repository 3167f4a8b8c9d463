package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
)

// Rule is one iptables rule in a chain of a table.
type Rule struct {
	Table, Chain string
	Args         []string
}

// RulesExist reports, rule by rule, whether each is in the named namespace: `iptables -t
// TABLE -C CHAIN ARGS... --wait 5` run inside it, whose exit status 1 says the rule is not
// there (any other failure is an error). It runs the command itself rather than through
// a library, so that the agents, which import this package, do not initialise one (a
// regular expression compiled in every agent process).
func RulesExist(ns string, rules []Rule) ([]bool, error) {
	out := make([]bool, len(rules))
	for i, r := range rules {
		args := append([]string{"-t", r.Table, "-C", r.Chain}, r.Args...)
		cmd := exec.Command("iptables", append(args, "--wait", "5")...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := Start(ns, cmd); err != nil {
			return nil, fmt.Errorf("iptables in %s: %w", ns, err)
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		switch {
		case err == nil:
			out[i] = true
		case errors.As(err, &exit) && exit.ExitCode() == 1:
		default:
			return nil, fmt.Errorf("check %s/%s in %s: %w: %s", r.Table, r.Chain, ns, err, bytes.TrimSpace(stderr.Bytes()))
		}
	}
	return out, nil
}
