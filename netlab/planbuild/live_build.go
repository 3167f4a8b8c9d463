package planbuild

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// BuildFrom builds the plan of edited scenario files for a running lab whose plan is prev:
// Services keep their ClusterIP, NodePorts, healthCheckNodePort and load-balancer address
// unless the files set others, and no new Service takes one a Service of prev holds; pods
// of prev are kept where their Deployment's template did not change (Rebase).
func BuildFrom(s *scenario.Scenario, name string, prev *plan.Plan) (*plan.Plan, error) {
	b := &builder{s: s, prev: prev}
	fresh, err := b.build(name)
	if err != nil {
		return nil, err
	}
	return fresh, fresh.RebaseOn(prev) // fresh is ours: no copy
}

// previous returns the Service of the same name in the running lab, with any address or
// port that another Service of the new files now asks for explicitly dropped.
func (b *builder) previous(s scenario.Service) (plan.Service, bool) {
	if b.prev == nil {
		return plan.Service{}, false
	}
	for _, ps := range b.prev.Services {
		if ps.Namespace != s.Namespace || ps.Name != s.Name {
			continue
		}
		for _, o := range b.svcs {
			if o.Namespace == s.Namespace && o.Name == s.Name {
				continue
			}
			if o.Spec.ClusterIP == ps.ClusterIP {
				ps.ClusterIP = ""
			}
			if o.Spec.LoadBalancerIP == ps.LoadBalancerIP {
				ps.LoadBalancerIP = ""
			}
			for _, op := range o.Spec.Ports {
				for i := range ps.Ports {
					if op.NodePort != 0 && op.NodePort == ps.Ports[i].NodePort {
						ps.Ports[i].NodePort = 0
					}
				}
				if op.NodePort != 0 && op.NodePort == ps.HealthCheckNodePort {
					ps.HealthCheckNodePort = 0
				}
			}
		}
		return ps, true
	}
	return plan.Service{}, false
}

// nodePortOf is the NodePort s gave port/protocol, 0 when none.
func nodePortOf(s plan.Service, port int32, protocol string) int32 {
	for _, sp := range s.Ports {
		if sp.Port == port && strings.EqualFold(sp.Protocol, protocol) {
			return sp.NodePort
		}
	}
	return 0
}

// holdPrevious marks every address and port the running lab's Services hold as taken, so
// that no Service of the change is given one a Service still holds (a deleted Service's
// included: conntrack may still point at it).
func (b *builder) holdPrevious(ips map[netip.Addr]bool, nodePorts map[int32]bool, wan map[netip.Addr]bool) {
	if b.prev == nil {
		return
	}
	for _, s := range b.prev.Services {
		if a, err := netip.ParseAddr(s.ClusterIP); err == nil {
			ips[a] = true
		}
		if a, err := netip.ParseAddr(s.LoadBalancerIP); err == nil {
			wan[a] = true
		}
		for _, sp := range s.Ports {
			if sp.NodePort != 0 {
				nodePorts[sp.NodePort] = true
			}
		}
		if s.HealthCheckNodePort != 0 {
			nodePorts[s.HealthCheckNodePort] = true
		}
	}
}

// deploymentRecord is what the plan keeps of a Deployment.
func deploymentRecord(d appsv1.Deployment) plan.Deployment {
	tmpl := d.Spec.Template.Spec
	rec := plan.Deployment{Namespace: d.Namespace, Name: d.Name, Template: hashJSON(d.Spec.Template),
		NodeName: tmpl.NodeName, NodeSelector: tmpl.NodeSelector}
	if d.Spec.Replicas != nil {
		rec.Replicas = *d.Spec.Replicas
	}
	pod := plan.Pod{Namespace: d.Namespace, Deployment: d.Name, Labels: d.Spec.Template.Labels,
		Ports: containerPorts(d), Probe: readiness(d), Template: rec.Template, GraceSeconds: plan.DefaultTerminationGrace,
		Hostname: tmpl.Hostname, Subdomain: tmpl.Subdomain}
	if g := tmpl.TerminationGracePeriodSeconds; g != nil {
		pod.GraceSeconds = *g
	}
	for _, c := range tmpl.Containers {
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			if n, ok := PreStopSleep(c.Lifecycle.PreStop.Exec, c.Lifecycle.PreStop.Sleep); ok {
				pod.PreStopSleep = n
			}
		}
	}
	rec.Pod = pod
	return rec
}

// PreStopSleep reads the preStop hooks the lab honours: `exec: {command: [sleep, N]}`
// (also through `sh -c "sleep N"`) and the `sleep: {seconds: N}` action.
func PreStopSleep(exec *corev1.ExecAction, sleep *corev1.SleepAction) (int64, bool) {
	if sleep != nil {
		return sleep.Seconds, sleep.Seconds >= 0
	}
	if exec == nil {
		return 0, false
	}
	cmd := exec.Command
	if len(cmd) == 3 && (cmd[0] == "sh" || cmd[0] == "/bin/sh") && cmd[1] == "-c" {
		cmd = strings.Fields(cmd[2])
	}
	if len(cmd) == 2 && (cmd[0] == "sleep" || cmd[0] == "/bin/sleep") {
		if n, err := strconv.ParseInt(cmd[1], 10, 64); err == nil && n >= 0 {
			return n, true
		}
	}
	return 0, false
}
