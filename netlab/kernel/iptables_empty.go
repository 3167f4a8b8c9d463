package kernel

import (
	"bytes"
	"errors"
	"os"

	"github.com/google/nftables"
)

// IPTablesEmptyHere says whether this process's network namespace has no IPv4 iptables
// table at all: none of the legacy backend's (/proc/net/ip_tables_names lists none) and
// no nf_tables table of family ip, where the nf_tables backend keeps its tables. Then
// iptables-save would print nothing: a namespace no one has written a rule in yet (an
// agent's, right after up made it). It reads a file and makes one netlink request, where
// iptables-save is a process start; false whenever it cannot tell.
func IPTablesEmptyHere() bool {
	b, err := os.ReadFile("/proc/net/ip_tables_names")
	if err != nil && !errors.Is(err, os.ErrNotExist) || len(bytes.TrimSpace(b)) > 0 {
		return false
	}
	c, err := nftables.New() // this thread's namespace: the process's, for an agent
	if err != nil {
		return false
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	return err == nil && len(tables) == 0
}
