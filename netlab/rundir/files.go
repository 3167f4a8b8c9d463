package rundir

import (
	"fmt"
	"os"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/lb"
	"github.com/netlabdev/netlab/netlab/plan"
)

// WritePlan writes the lab's plan (mode 0600), creating the directory and its logs
// directory (0700).
func (d Dir) WritePlan(p *plan.Plan) error {
	return writeJSON(d.Plan(), p, 0o600, false)
}

// ReadPlan reads the plan in the directory.
func (d Dir) ReadPlan() (*plan.Plan, error) { return ReadPlanFile(d.Plan()) }

// ReadPlanFile reads the whole plan file at path (the CLI's commands; an agent reads its
// view, ReadPlanView). It is decoded with github.com/goccy/go-json, which reads the same
// JSON into the same values as encoding/json (a test holds them equal on every scenario
// fixture) in about 40 % of its time at 1000 pods (1.9 MB).
func ReadPlanFile(path string) (*plan.Plan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var p plan.Plan
	if err := gojson.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return &p, nil
}

// WriteEndpoints publishes the controller's endpoints (mode 0600).
func (d Dir) WriteEndpoints(f kubeproxy.EndpointsFile) error {
	return writeJSON(d.Endpoints(), f, 0o600, false)
}

// ReadEndpoints reads the endpoints the controller published.
func (d Dir) ReadEndpoints() (*kubeproxy.EndpointsFile, error) {
	var f kubeproxy.EndpointsFile
	if err := readJSON("endpoints", d.Endpoints(), &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// WriteSyncStatus publishes a node's last kube-proxy sync (mode 0600).
func (d Dir) WriteSyncStatus(st kubeproxy.SyncStatus) error {
	return writeJSON(d.SyncStatus(st.Node), st, 0o600, false)
}

// ReadSyncStatus reads node's last kube-proxy sync.
func (d Dir) ReadSyncStatus(node string) (*kubeproxy.SyncStatus, error) {
	var st kubeproxy.SyncStatus
	if err := readJSON("sync status", d.SyncStatus(node), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// IngressLoaded is what a node's ingress agent last loaded: the version (Stamp.String) of
// the plan file it read, so that a change (apply, scale) can wait until every ingress
// routes by the plan it just wrote. Error, when set, says that the ingress read that
// version and could not load it (it keeps routing by the one before): the change fails at
// once with it instead of waiting.
type IngressLoaded struct {
	Node   string    `json:"node"`
	Plan   string    `json:"plan"`
	Routes int       `json:"routes"`
	Error  string    `json:"error,omitempty"`
	At     time.Time `json:"at"`
}

// WriteIngressLoaded publishes what a node's ingress serves (mode 0600).
func (d Dir) WriteIngressLoaded(st IngressLoaded) error {
	return writeJSON(d.IngressLoaded(st.Node), st, 0o600, false)
}

// ReadIngressLoaded reads what node's ingress last loaded.
func (d Dir) ReadIngressLoaded(node string) (*IngressLoaded, error) {
	var st IngressLoaded
	if err := readJSON("ingress status", d.IngressLoaded(node), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// DNSLoaded is what a cluster DNS pod's agent last loaded: the version (Stamp.String) of
// the plan file and the endpoints generation its records come from, so that a change
// (apply, scale) can wait until every ready DNS pod answers by the plan it just wrote.
type DNSLoaded struct {
	Pod        string    `json:"pod"`
	Plan       string    `json:"plan"`
	Generation int64     `json:"generation"`
	At         time.Time `json:"at"`
}

// WriteDNSLoaded publishes what a DNS pod answers from (mode 0600).
func (d Dir) WriteDNSLoaded(st DNSLoaded) error {
	return writeJSON(d.DNSLoaded(st.Pod), st, 0o600, false)
}

// ReadDNSLoaded reads what DNS pod pod last loaded.
func (d Dir) ReadDNSLoaded(pod string) (*DNSLoaded, error) {
	var st DNSLoaded
	if err := readJSON("dns status", d.DNSLoaded(pod), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// WriteLBState publishes the lb agent's state (mode 0644: `netlab lb` reads it).
func (d Dir) WriteLBState(st lb.State) error { return WriteLBStateFile(d.LBState(), st) }

// WriteLBStateFile writes an lb state file anywhere (the agent's --state).
func WriteLBStateFile(path string, st lb.State) error {
	return writeJSON(path, st, 0o644, true)
}

// ReadLBState reads the lb agent's state.
func (d Dir) ReadLBState() (*lb.State, error) { return ReadLBStateFile(d.LBState()) }

// ReadLBStateFile reads an lb state file anywhere.
func ReadLBStateFile(path string) (*lb.State, error) {
	var st lb.State
	if err := readJSON("lb state", path, &st); err != nil {
		return nil, err
	}
	return &st, nil
}
