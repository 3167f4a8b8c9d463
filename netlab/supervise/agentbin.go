package supervise

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/netlabdev/netlab/netlab/plan"
)

// PodBinaryName is the pod agent's executable (cmd/netlab-pod), installed beside netlab:
// a pod's process runs it instead of netlab itself, so that it does not initialise the
// CLI's packages (Kubernetes types, Prometheus) a thousand times over.
const PodBinaryName = "netlab-pod"

// PodBinaryEnv, when set, names the pod agent's executable instead (tests, packagers).
const PodBinaryEnv = "NETLAB_POD_BINARY"

// AgentBinary is the executable that runs pr: netlab-pod for the pod echo agents, found
// beside the netlab binary (or at $NETLAB_POD_BINARY), netlab itself for every other role.
// Both take the same arguments (`agent <role> ...`).
func AgentBinary(netlab string, pr plan.Process) (string, error) {
	if pr.Role != "pod" || len(pr.Args) < 2 || pr.Args[1] != "pod" {
		return netlab, nil // the cluster DNS pods run `netlab agent dns`
	}
	return PodBinary(netlab)
}

// PodBinary finds netlab-pod: $NETLAB_POD_BINARY, else beside the netlab binary.
func PodBinary(netlab string) (string, error) {
	path, from := os.Getenv(PodBinaryEnv), "$"+PodBinaryEnv
	if path == "" {
		path, from = filepath.Join(filepath.Dir(netlab), PodBinaryName), "beside "+netlab
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("the pod agent %s is missing (looked %s: %s): `make build` builds bin/netlab-pod beside bin/netlab and `make install` installs both; or set %s",
			PodBinaryName, from, path, PodBinaryEnv)
	case err != nil:
		return "", fmt.Errorf("the pod agent %s: %w", PodBinaryName, err)
	case st.IsDir() || st.Mode()&0o111 == 0:
		return "", fmt.Errorf("the pod agent %s is not an executable file", path)
	}
	return path, nil
}
