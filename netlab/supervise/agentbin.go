package supervise

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/netlabdev/netlab/netlab/plan"
)

// PodBinaryName is the pod agent's executable (cmd/netlab-pod), installed beside netlab:
// a pod's process runs it instead of netlab itself, so that it does not initialise the
// CLI's packages (Kubernetes types, Prometheus) a thousand times over.
const PodBinaryName = "netlab-pod"

// PodBinaryEnv, when set, names the pod agent's executable instead (tests, packagers).
const PodBinaryEnv = "NETLAB_POD_BINARY"

// AgentBinaryName is the node and cluster agents' executable (cmd/netlab-agent), installed
// beside netlab: it runs AgentRoles without the CLI's packages.
const AgentBinaryName = "netlab-agent"

// AgentBinaryEnv, when set, names the agents' executable instead (tests, packagers).
const AgentBinaryEnv = "NETLAB_AGENT_BINARY"

// NetlabBinaryEnv names the netlab binary in every agent's environment: an agent that
// starts others (the supervisor, the controller's guard) runs from netlab-agent, and
// finds netlab, and the binaries beside it, there.
const NetlabBinaryEnv = "NETLAB_BINARY"

// AgentRoles are the agents netlab-agent runs (the words after "agent" on their command
// line; agent.Roles, which a test holds equal). The pod echo runs netlab-pod.
var AgentRoles = []string{"kube-proxy", "controller", "lb", "dns", "supervisor", "ingress"}

// AgentBinary is the executable that runs pr: netlab-pod for the pod echo agents, found
// beside the netlab binary (or at $NETLAB_POD_BINARY), netlab-agent for AgentRoles (or
// $NETLAB_AGENT_BINARY), netlab itself for any other. All take the same arguments
// (`agent <role> ...`).
func AgentBinary(netlab string, pr plan.Process) (string, error) {
	if len(pr.Args) < 2 || pr.Args[0] != "agent" {
		return netlab, nil
	}
	switch {
	case pr.Args[1] == "pod":
		return PodBinary(netlab)
	case slices.Contains(AgentRoles, pr.Args[1]):
		return findBinary(netlab, AgentBinaryName, AgentBinaryEnv, "the agents")
	}
	return netlab, nil
}

// PodBinary finds netlab-pod: $NETLAB_POD_BINARY, else beside the netlab binary.
func PodBinary(netlab string) (string, error) {
	return findBinary(netlab, PodBinaryName, PodBinaryEnv, "the pod agent")
}

// NetlabBinary is the netlab binary agents are started from: $NETLAB_BINARY when this
// process is an agent that netlab started, else this executable.
func NetlabBinary() (string, error) {
	if b := os.Getenv(NetlabBinaryEnv); b != "" {
		return b, nil
	}
	b, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the netlab binary: %w", err)
	}
	return b, nil
}

// findBinary finds name: $env, else beside the netlab binary.
func findBinary(netlab, name, env, what string) (string, error) {
	path, from := os.Getenv(env), "$"+env
	if path == "" {
		path, from = filepath.Join(filepath.Dir(netlab), name), "beside "+netlab
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("%s %s is missing (looked %s: %s): `make build` builds bin/%s beside bin/netlab and `make install` installs them; or set %s",
			what, name, from, path, name, env)
	case err != nil:
		return "", fmt.Errorf("%s %s: %w", what, name, err)
	case st.IsDir() || st.Mode()&0o111 == 0:
		return "", fmt.Errorf("%s %s is not an executable file", what, path)
	}
	return path, nil
}
