package plan

// ingressProcesses returns the per-node ingress agents (issue 5).
// Its role's owner fills it in together with the agent (netlab/agent/ingress.go).
func ingressProcesses(p *Plan) []Process { return nil }
