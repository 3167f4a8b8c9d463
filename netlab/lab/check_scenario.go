package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/netlabdev/netlab/netlab/kubeproxy"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// drillTimeout bounds each wait of a check's drills: a pod leaving its Services, a node
// leaving the LB, every node's rules following.
const drillTimeout = 30 * time.Second

// RunChecks is netlab check: the lab's own health checks (CheckLab), then the checks its
// scenario carries (Lab.spec.checks, stored in the lab's plan), in order.
func RunChecks(ctx context.Context, labName string) ([]Check, error) {
	out, err := CheckLab(ctx, labName)
	if err != nil {
		return nil, err
	}
	sc, err := ScenarioChecks(ctx, labName)
	return append(out, sc...), err
}

// ScenarioChecks runs the scenario's checks. Each check runs its drills (Before), sends
// its requests through trace's machinery, compares what came back with what it expects,
// and undoes its drills. A request that fails unexpectedly is traced once more with its
// packets and the kernel's drops, so the check says where it died.
func ScenarioChecks(ctx context.Context, labName string) ([]Check, error) {
	p, err := LoadPlan(labName)
	if err != nil {
		return nil, err
	}
	var out []Check
	for i, raw := range p.Checks {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var c scenario.Check
		if err := json.Unmarshal(raw, &c); err != nil {
			out = append(out, Check{Name: fmt.Sprintf("check %d", i+1), Scenario: true, Detail: "the plan's check: " + err.Error()})
			continue
		}
		out = append(out, runCheck(ctx, labName, c))
	}
	return out, nil
}

func firstClient(p *plan.Plan) string {
	if len(p.Clients) > 0 {
		return p.Clients[0].Name
	}
	return ""
}

// runCheck runs one scenario check.
func runCheck(ctx context.Context, labName string, c scenario.Check) (res Check) {
	p, err := LoadPlan(labName)
	if err != nil {
		return Check{Name: c.CheckName(""), Scenario: true, Detail: err.Error()}
	}
	res = Check{Name: c.CheckName(firstClient(p)), Scenario: true}

	// Drills first; what they changed is undone whatever happens.
	var undo []func() error
	var drilled []string
	defer func() {
		var errs []string
		for i := len(undo) - 1; i >= 0; i-- {
			if err := undo[i](); err != nil {
				errs = append(errs, err.Error())
			}
		}
		if len(errs) > 0 {
			res.OK = false
			res.Detail += "; undoing the drills: " + strings.Join(errs, "; ")
		}
	}()
	for _, b := range c.Before {
		d, err := scenario.ParseDrill(b)
		if err == nil {
			var u func() error
			u, err = runDrill(ctx, labName, d)
			if u != nil {
				undo = append(undo, u)
			}
		}
		if err != nil {
			res.Detail = fmt.Sprintf("drill %q: %v", b, err)
			return res
		}
		drilled = append(drilled, d.String())
	}
	after := ""
	if len(drilled) > 0 {
		after = "after " + strings.Join(drilled, ", ") + ": "
		if p, err = LoadPlan(labName); err != nil {
			res.Detail = err.Error()
			return res
		}
	}

	from := c.From
	if from == "" {
		from = firstClient(p)
	}
	h := http.Header{}
	if c.Host != "" {
		h.Set("Host", c.Host)
	}
	e := c.Expect
	n := c.RequestCount()
	wantStatus := e.Status
	if wantStatus == 0 && strings.HasPrefix(c.URL, "http") {
		wantStatus = http.StatusOK
	}
	wantClient := e.ClientIP
	if wantClient == "client" {
		wantClient = objectIP(p, from).String()
	}
	served := map[string]int{}
	var seenClients []string
	fail := func(format string, args ...any) Check {
		res.OK = false
		res.Detail = after + fmt.Sprintf(format, args...)
		return res
	}
	o := TraceOptions{From: from, URL: c.URL, Headers: h, Packets: e.Fail, ExpectFailure: e.Fail}
	var sender *checkSender
	for i := range n {
		// A request that must fail is traced with its packets at once, so the check can
		// say where it died; the others only when they fail.
		var tr *Trace
		var err error
		switch {
		case e.Fail:
			tr, err = TraceWith(ctx, labName, o)
		case sender == nil:
			if sender, err = newCheckSender(labName, o); err != nil {
				return fail("%v", err)
			}
			defer sender.close()
			fallthrough
		default:
			tr, err = sender.send(ctx)
		}
		var failed *RequestFailedError
		if err != nil && (tr == nil || !errors.As(err, &failed)) {
			return fail("%v", err)
		}
		if e.Fail {
			if err == nil {
				res.Seen = seen(tr)
				return fail("expected the request to fail; got %s", res.Seen)
			}
			res.Drop = tr.Drop
			if i == n-1 {
				res.OK = true
				res.Detail = after + plural(n, "request", "requests") + " failed as expected: " + tr.Error + dropText(tr.Drop)
			}
			continue
		}
		if err != nil {
			// Unexpected: once more with the packets and the kernel's drops loaded.
			o.Packets = true
			if tr2, err2 := TraceWith(ctx, labName, o); tr2 != nil && err2 != nil {
				tr = tr2
			}
			res.Drop = tr.Drop
			res.Seen = "no answer: " + tr.Error
			return fail("request %d of %d failed: %s%s", i+1, n, tr.Error, dropText(tr.Drop))
		}
		s := seen(tr)
		switch {
		case wantStatus != 0 && tr.Status != wantStatus:
			res.Seen = s
			return fail("request %d of %d: expected status %d, got %s", i+1, n, wantStatus, s)
		case (len(e.ServedBy) > 0 || e.SameBackend || wantClient != "") && tr.Answer == nil:
			res.Seen = s
			return fail("request %d of %d: expected an answer from a pod, got %s", i+1, n, s)
		case len(e.ServedBy) > 0 && !servedByOne(p, tr.Answer.Pod, e.ServedBy):
			res.Seen = s
			return fail("request %d of %d: expected an answer from %s, got %s", i+1, n, strings.Join(e.ServedBy, " or "), s)
		case wantClient != "" && tr.Answer.ClientIP != wantClient:
			res.Seen = s
			return fail("request %d of %d: expected the pod to see client %s, got %s", i+1, n, wantClient, s)
		}
		if tr.Answer != nil {
			served[tr.Answer.Pod]++
			if !slices.Contains(seenClients, tr.Answer.ClientIP) {
				seenClients = append(seenClients, tr.Answer.ClientIP)
			}
		}
	}
	if e.Fail {
		return res
	}
	pods := make([]string, 0, len(served))
	for pod, k := range served {
		pods = append(pods, fmt.Sprintf("%s (%d)", pod, k))
	}
	slices.Sort(pods)
	if e.SameBackend && len(served) > 1 {
		res.Seen = "answers from " + strings.Join(pods, ", ")
		return fail("expected every answer from one and the same pod, got %s", strings.Join(pods, ", "))
	}
	res.OK = true
	what := "answered"
	if wantStatus != 0 {
		what = fmt.Sprint(wantStatus)
	}
	res.Detail = after + fmt.Sprintf("%s: %s", plural(n, "request", "requests"), what)
	if len(pods) > 6 {
		pods = append(pods[:5], fmt.Sprintf("and %d more pods", len(pods)-5))
	}
	if len(pods) > 0 {
		res.Detail += " from " + strings.Join(pods, ", ")
	}
	if len(seenClients) > 6 {
		seenClients = append(seenClients[:5], fmt.Sprintf("and %d more", len(seenClients)-5))
	}
	if len(seenClients) > 0 {
		res.Detail += "; the pod saw " + strings.Join(seenClients, ", ")
	}
	return res
}

// servedByOne says whether pod is one of names, or of one of the Deployments named.
func servedByOne(p *plan.Plan, pod string, names []string) bool {
	if slices.Contains(names, pod) {
		return true
	}
	if po, ok := p.PodByName(pod); ok {
		return slices.Contains(names, po.Deployment)
	}
	// A pod the plan no longer has (it left since): its name says its Deployment.
	if i := strings.LastIndexByte(pod, '-'); i > 0 {
		return slices.Contains(names, pod[:i])
	}
	return false
}

// seen says what a request got: its status, the pod that answered and whom it saw.
func seen(tr *Trace) string {
	var b strings.Builder
	switch {
	case tr.Status != 0:
		fmt.Fprintf(&b, "%d", tr.Status)
	default:
		b.WriteString("an answer")
	}
	if a := tr.Answer; a != nil {
		fmt.Fprintf(&b, " from %s on %s (it saw client %s)", a.Pod, a.Node, a.ClientIP)
	} else if len(tr.Hops) > 0 {
		last := tr.Hops[len(tr.Hops)-1]
		fmt.Fprintf(&b, " from %s, not from a pod", last.Object)
	}
	return b.String()
}

// dropText says where a failed request died, as trace's last lines do.
func dropText(d *TraceDrop) string {
	if d == nil || d.Object == "" {
		return ""
	}
	s := "; died at " + d.Object
	if d.Interface != "" {
		s += " (" + d.Interface + ")"
	}
	s += ": " + d.Reason
	if d.Rule != "" {
		s += ", rule: " + d.Rule
	} else if d.Detail != "" {
		s += ", " + d.Detail
	}
	return s
}

// plural says "1 request", "8 requests".
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// runDrill carries out one drill and waits until the lab has reacted to it. It returns how
// to undo it (nil when there is nothing to undo).
func runDrill(ctx context.Context, labName string, d scenario.Drill) (undo func() error, err error) {
	ctx, cancel := context.WithTimeout(ctx, drillTimeout)
	defer cancel()
	switch d.Verb {
	case "pod kill":
		if _, err := KillPod(labName, d.Target); err != nil {
			return nil, err
		}
		undo = func() error { return startPod(labName, d.Target) }
		return undo, waitEndpoints(ctx, labName, func(ep kubeproxy.Endpoint) bool { return ep.Pod == d.Target && ep.Ready })
	case "pod start":
		return nil, startPod(labName, d.Target)
	case "node fail":
		if err := SetNodeLink(labName, d.Target, false); err != nil {
			return nil, err
		}
		undo = func() error { return recoverNode(labName, d.Target) }
		if err := WaitNode(ctx, labName, d.Target, false); err != nil {
			return undo, err
		}
		return undo, waitEndpoints(ctx, labName, nil)
	case "node recover":
		return nil, recoverNode(labName, d.Target)
	case "scale":
		p, err := LoadPlan(labName)
		if err != nil {
			return nil, err
		}
		dep, ok := p.DeploymentByName("", d.Target)
		if !ok {
			return nil, fmt.Errorf("lab %s has no deployment %q", labName, d.Target)
		}
		was := dep.Replicas
		if _, err := Scale(ctx, labName, d.Target, int32(d.Replicas), ChangeOptions{ReadyTimeout: drillTimeout}); err != nil {
			return nil, err
		}
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), drillTimeout)
			defer cancel()
			_, err := Scale(ctx, labName, d.Target, was, ChangeOptions{ReadyTimeout: drillTimeout})
			return err
		}, nil
	case "rollout restart":
		return nil, RolloutRestart(ctx, labName, d.Target, ChangeOptions{ReadyTimeout: drillTimeout}, nil)
	}
	return nil, fmt.Errorf("unknown drill %q", d.Verb)
}

// startPod starts a pod again and waits until its endpoints are ready on every node.
func startPod(labName, pod string) error {
	ctx, cancel := context.WithTimeout(context.Background(), drillTimeout)
	defer cancel()
	if err := StartPod(labName, pod, drillTimeout); err != nil {
		return err
	}
	return waitEndpoints(ctx, labName, func(ep kubeproxy.Endpoint) bool { return ep.Pod == pod && !ep.Ready })
}

// recoverNode puts a node back on the fabric and waits until the LB and the endpoints
// have it again and every node's rules follow.
func recoverNode(labName, node string) error {
	ctx, cancel := context.WithTimeout(context.Background(), drillTimeout)
	defer cancel()
	if err := SetNodeLink(labName, node, true); err != nil {
		return err
	}
	if err := WaitNode(ctx, labName, node, true); err != nil {
		return err
	}
	return waitEndpoints(ctx, labName, nil)
}

// waitEndpoints waits until no endpoint is pending (pending may be nil) and every node's
// kube-proxy has synced the endpoints generation that shows it.
func waitEndpoints(ctx context.Context, labName string, pending func(kubeproxy.Endpoint) bool) error {
	p, err := LoadPlan(labName)
	if err != nil {
		return err
	}
	for {
		var wait []string
		ef, err := rundir.ForLab(labName).ReadEndpoints()
		if err != nil {
			wait = append(wait, "the endpoints ("+err.Error()+")")
		} else {
			for _, sp := range ef.Ports {
				for _, ep := range sp.Endpoints {
					if pending != nil && pending(ep) {
						wait = append(wait, fmt.Sprintf("endpoint %s of %s", ep.Pod, sp.ServicePortName()))
					}
				}
			}
			if len(wait) == 0 {
				for _, n := range p.Nodes {
					if g, err := syncedGeneration(labName, n.Name); err != nil || g < ef.Generation {
						wait = append(wait, fmt.Sprintf("kube-proxy on %s (generation %d of %d)", n.Name, g, ef.Generation))
					}
				}
			}
		}
		if len(wait) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the lab did not follow: %s", strings.Join(wait, ", "))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// syncedGeneration is the endpoints generation a node's kube-proxy last synced.
func syncedGeneration(labName, node string) (int64, error) {
	ss, err := rundir.ForLab(labName).ReadSyncStatus(node)
	if err != nil {
		return 0, err
	}
	return ss.Generation, nil
}

// checkSender sends a check's requests as trace sends them (from the sender's namespace,
// the name resolved as the sender's resolver does, the lab CA for https) and reads who
// answered, without following each hop by hop: a request that goes as expected needs no
// more. The name is resolved once per check, the plan read once.
type checkSender struct{ t *tracer }

func newCheckSender(labName string, o TraceOptions) (*checkSender, error) {
	t, err := newTracer(labName, o)
	if err != nil {
		return nil, err
	}
	return &checkSender{t}, nil
}

func (s *checkSender) close() { s.t.h.Close() }

// send sends one request afresh.
func (s *checkSender) send(ctx context.Context) (*Trace, error) {
	t := s.t
	t.local, t.resp, t.body, t.echo, t.status = netip.AddrPort{}, nil, nil, podEcho{}, ""
	t.reqID = "trace-" + randomHex(8)
	t.tr = &Trace{URL: t.o.URL, From: t.from}
	if err := t.send(ctx); err != nil {
		t.tr.Error = err.Error()
		return t.tr, &RequestFailedError{Err: err}
	}
	if e := t.echo; e.Pod != "" {
		t.tr.Answer = &TraceAnswer{Pod: e.Pod, Node: e.Node, PodIP: e.PodIP, Port: e.Port, ClientIP: e.ClientIP}
	}
	return t.tr, nil
}
