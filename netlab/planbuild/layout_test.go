package planbuild

import (
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// Package plan does not import the scenario's (it needs the Kubernetes types, and the
// agents, which read plans, must not initialise them): the names and rules it keeps a copy
// of must stay equal to the scenario's.
func TestPlanCopiesOfScenarioRules(t *testing.T) {
	for _, c := range []struct {
		name       string
		plan, scen any
	}{
		{"MaxLabName", plan.MaxLabName, scenario.MaxLabName},
		{"AnnotationUpstream", plan.AnnotationUpstream, scenario.AnnotationUpstream},
		{"UpstreamService", plan.UpstreamService, scenario.UpstreamService},
		{"UpstreamEndpoints", plan.UpstreamEndpoints, scenario.UpstreamEndpoints},
		{"NodePortMin", plan.NodePortMin, scenario.NodePortMin},
		{"NodePortMax", plan.NodePortMax, scenario.NodePortMax},
	} {
		if c.plan != c.scen {
			t.Errorf("plan.%s = %v, scenario.%s = %v", c.name, c.plan, c.name, c.scen)
		}
	}
	for _, name := range []string{"", "a", "demo", "demo2", "x1y2", "Demo", "2demo", "de-mo", "de_mo", "dé", "a234567890123456789012345", "a23456789012345678901234"} {
		scenOK := len(name) <= scenario.MaxLabName && scenario.IsLabName(name)
		if planOK := plan.CheckLabName(name) == nil; planOK != scenOK {
			t.Errorf("lab name %q: plan says ok=%v, scenario ok=%v", name, planOK, scenOK)
		}
	}
}
