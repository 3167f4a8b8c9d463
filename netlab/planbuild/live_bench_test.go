package planbuild

import (
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// BenchmarkBuildFrom300 is a live change's planning in a 300-pod lab: BuildFrom of the same
// files with one Service changed, then Compare.
func BenchmarkBuildFrom300(b *testing.B) {
	yaml := strings.Replace(liveBase(), "replicas: 3", "replicas: 300", 1)
	yaml = strings.Replace(yaml, "nodes: [{name: node-1, labels: {zone: a}}, {name: node-2, labels: {zone: b}}]", "nodes: 3", 1)
	s, err := scenario.Parse("t.yaml", []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	prev, err := Build(s, "")
	if err != nil {
		b.Fatal(err)
	}
	s2, _ := scenario.Parse("t.yaml", []byte(strings.Replace(yaml, "port: 80,", "port: 81,", 1)))
	b.ResetTimer()
	for range b.N {
		cur, err := BuildFrom(s2, "", prev)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := plan.Compare(prev, cur); err != nil {
			b.Fatal(err)
		}
	}
}
