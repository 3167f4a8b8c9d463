package cli

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netlabdev/netlab/netlab/lab"
	"github.com/spf13/cobra"
)

func newStatus(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "status [--name LAB] [-o table|wide|json|yaml]",
		Short:   "Show a lab's nodes, pods, Services, Ingresses, LB and clients as they are now",
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
	}
	o := addOutput(cmd, "table")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		name, err := g.labName()
		if err != nil {
			return err
		}
		st, err := lab.GetStatus(cmd.Context(), name)
		if err != nil {
			return err
		}
		return o.print(g.out, st, func(w io.Writer, wide bool) error { return writeStatus(w, st, wide) })
	}
	return cmd
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

// writeStatus prints the status as tables; wide adds namespaces, not-ready endpoints and
// each LB real server's node.
func writeStatus(out io.Writer, st *lab.Status, wide bool) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "LAB %s\n\nNODE\tNAMESPACE\tIP\tPOD CIDR\tKUBE-PROXY SYNC\tREADY\n", st.Name)
	for _, n := range st.Nodes {
		sync := "-"
		if kp := n.KubeProxy; kp != nil {
			sync = fmt.Sprintf("gen %d, %.0f ms, %s ago", kp.Generation, kp.Ms, time.Since(kp.At).Round(time.Second))
			if kp.Error != "" {
				sync = "FAILED: " + kp.Error
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s %s\n", n.Name, n.Namespace, n.IP, n.PodCIDR, sync, yes(n.Ready), n.Reason)
	}
	if wide {
		fmt.Fprintf(w, "\nPOD\tNAMESPACE\tNETNS\tNODE\tIP\tPID\tREADY\tRESTARTS\tLABELS\n")
	} else {
		fmt.Fprintf(w, "\nPOD\tNODE\tIP\tREADY\tRESTARTS\tLABELS\n")
	}
	for _, p := range st.Pods {
		var ls []string
		for k, v := range p.Labels {
			ls = append(ls, k+"="+v)
		}
		sort.Strings(ls)
		reason := p.Reason
		if p.Phase == "Terminating" {
			reason = strings.TrimSpace("Terminating " + reason)
		}
		if wide {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", p.Name, p.K8sNS, p.Namespace, p.Node, p.IP, p.PID, yes(p.Ready), p.Restarts, strings.Join(ls, ","), reason)
		} else {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, p.Node, p.IP, yes(p.Ready), p.Restarts, strings.Join(ls, ","), reason)
		}
	}
	if r := st.Readiness; r != nil {
		fmt.Fprintf(w, "(%s)\n", readinessLine(r))
	}
	if len(st.Services) > 0 {
		fmt.Fprintf(w, "\nSERVICE\tTYPE\tCLUSTER-IP\tPORTS\tENDPOINTS (ready)\n")
		for _, s := range st.Services {
			var ports, eps []string
			for _, p := range s.Ports {
				ps := fmt.Sprintf("%d/%s", p.Port, p.Protocol)
				if p.NodePort != 0 {
					ps = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
				}
				ports = append(ports, ps)
			}
			for _, e := range s.Endpoints {
				addr := fmt.Sprintf("%s:%d", e.IP, e.Port)
				if e.Port == 0 {
					addr = e.IP // a headless Service without ports
				}
				switch {
				case e.Ready && wide:
					eps = append(eps, fmt.Sprintf("%s (%s)", addr, e.Pod))
				case e.Ready:
					eps = append(eps, addr)
				case e.Terminating && e.Serving:
					eps = append(eps, addr+" (terminating)")
				case wide:
					eps = append(eps, fmt.Sprintf("%s (%s, not ready)", addr, e.Pod))
				}
			}
			if s.ExternalName != "" {
				eps = append(eps, "CNAME "+s.ExternalName) // in the cluster DNS; no endpoints
			}
			eps = slices.Compact(eps) // a UDP and a TCP port on one address (kube-dns)
			fmt.Fprintf(w, "%s/%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, s.Type, s.ClusterIP, strings.Join(ports, ","), strings.Join(eps, ","))
		}
	}
	if len(st.Ingresses) > 0 {
		fmt.Fprintf(w, "\nINGRESS\tHOST\tPATH\tTYPE\tBACKEND\tUPSTREAM\n")
		for _, in := range st.Ingresses {
			up := in.Upstream
			if in.Ignored {
				up = ignoredText(in)
			}
			for _, r := range in.Rules {
				host := r.Host
				if host == "" {
					host = "*"
				}
				fmt.Fprintf(w, "%s/%s\t%s\t%s\t%s\t%s:%s\t%s\n", in.Namespace, in.Name, host, r.Path, r.PathType, r.Service, r.Port, up)
			}
		}
	}
	fmt.Fprintf(w, "\nLB VIP\tSCHEDULER\tBACKENDS\n")
	for _, v := range st.LoadBalancer.VIPs {
		var bs []string
		for _, b := range v.Backends {
			h := ""
			if !b.Healthy {
				h = "(down)"
			}
			if wide {
				h = " (" + b.Node + ")" + h
			}
			bs = append(bs, fmt.Sprintf("%s:%d%s", b.IP, b.Port, h))
		}
		fmt.Fprintf(w, "%s:%d/%s\t%s\t%s\n", v.IP, v.Port, v.Protocol, v.Scheduler, strings.Join(bs, ","))
	}
	if len(st.Agents) > 0 {
		fmt.Fprintf(w, "\nAGENT\tNAME\tPID\tSTATE\tRESTARTS\n")
		for _, a := range st.Agents {
			if a.Role == "pod" {
				continue // in the pod table
			}
			pid := "-"
			if a.PID > 0 {
				pid = strconv.Itoa(a.PID)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", a.Role, a.Name, pid, a.State, a.Restarts, a.Message)
		}
	}
	fmt.Fprintf(w, "\nCLIENT\tNAMESPACE\tIP\n")
	for _, c := range st.Clients {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Name, c.Namespace, c.IP)
	}
	return w.Flush()
}

// ignoredText is the UPSTREAM column of an Ingress the lab's ingress does not serve, with
// status's reason (its class, when a status without reasons is read).
func ignoredText(in lab.IngressStatus) string {
	if in.IgnoredReason != "" {
		return "ignored: " + in.IgnoredReason
	}
	if in.Class == "" {
		return "ignored"
	}
	return "ignored (class " + in.Class + ")"
}

// readinessLine says where the pods' readiness came from.
func readinessLine(r *lab.ReadinessSource) string {
	if r.Source == "controller" {
		line := "pod readiness from the controller's record"
		if r.RecordAgeMs != nil {
			line += fmt.Sprintf(", %.1f s old", float64(*r.RecordAgeMs)/1000)
		}
		if r.Probed > 0 {
			line += fmt.Sprintf("; %d pods it has not probed since they started were probed by status", r.Probed)
		}
		return line
	}
	return r.Note
}
