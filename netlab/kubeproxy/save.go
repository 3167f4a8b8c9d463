package kubeproxy

import "bytes"

// ChainsFromSave returns the chain names declared in iptables-save output for one table
// (lines ":NAME POLICY [p:b]"), in order. Give it the output of `iptables-save -t nat`.
func ChainsFromSave(data []byte) []string {
	var out []string
	for line := range bytes.Lines(data) {
		if len(line) < 2 || line[0] != ':' {
			continue
		}
		line = line[1:]
		if i := bytes.IndexAny(line, " \t\n"); i >= 0 {
			line = line[:i]
		}
		out = append(out, string(line))
	}
	return out
}
