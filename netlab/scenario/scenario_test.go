package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultValidates(t *testing.T) {
	s, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(s); err != nil {
		t.Fatalf("the embedded default has problems:\n%v", err)
	}
	if len(s.Warnings) != 0 {
		t.Fatalf("the embedded default has warnings:\n%v", s.Warnings)
	}
	if s.LabSource.File != DefaultFile || s.Lab.Metadata.Name != DefaultLab {
		t.Fatalf("default lab source %+v name %q", s.LabSource, s.Lab.Metadata.Name)
	}
	// The seed's picture: 1 client, 2 nodes, web×3 and api×2, their Services, one Ingress.
	if len(s.Lab.Spec.Clients) != 1 || len(s.Lab.Spec.Nodes) != 2 || len(s.Deployments) != 2 ||
		*s.Deployments[0].Spec.Replicas != 3 || *s.Deployments[1].Spec.Replicas != 2 ||
		len(s.Services) != 2 || len(s.Ingresses) != 1 {
		t.Fatalf("default scenario does not draw the seed's picture: %+v", s)
	}
}

// TestScenarioFiles validates every example under scenarios/: none may have a problem or
// a warning.
func TestScenarioFiles(t *testing.T) {
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			s, err := Load([]string{f})
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(s); err != nil {
				t.Fatalf("problems:\n%v", err)
			}
			if len(s.Warnings) != 0 {
				t.Fatalf("warnings:\n%v", s.Warnings)
			}
		})
	}
}

func TestParseProblems(t *testing.T) {
	runCases(t, []vcase{
		{name: "several at once", docs: []string{
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
			"apiVersion: v1\nmetadata: {name: nokind}\n",
			"apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: web}\n",
			"apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t}\nspec:\n  network: {podCidr: 10.0.0.0/8}\n  nodes: 2\n  nodes: 3\n",
			"- a\n- b\n",
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: many}\n",
		},
			probs: []string{
				`bad.yaml: ConfigMap default/x: unknown kind "ConfigMap" (the lab reads Lab, Deployment, Service, Ingress, IngressClass, Secret)`,
				`bad.yaml: document 2: missing kind`,
				`bad.yaml: Deployment default/web: apiVersion "apps/v1beta1" is not supported for kind Deployment (want apps/v1)`,
				`bad.yaml: Lab t: not valid YAML (document 4): yaml: unmarshal errors: line 7: key "nodes" already set in map`,
				`bad.yaml: document 5: not a Kubernetes object: json: cannot unmarshal array into Go value of type scenario.typeMeta`,
				`bad.yaml: Deployment default/web: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`,
			}},
		{name: "lab unknown fields", docs: []string{"apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t, labels: {a: b}}\nspec:\n  network: {podCidr: 10.0.0.0/8}\n"},
			probs: []string{
				`bad.yaml: Lab t: metadata.labels: unknown field`,
				`bad.yaml: Lab t: spec.network.podCidr: unknown field`,
			}},
		{name: "nodes", docs: []string{"apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t}\nspec: {nodes: 0}\n"},
			probs: []string{`bad.yaml: Lab t: spec.nodes: count 0 is out of range 1..64`}},
		{name: "node fields", docs: []string{"apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t}\nspec: {nodes: [{name: a, lables: {x: z}}]}\n"},
			probs: []string{`bad.yaml: Lab t: spec.nodes[0].lables: unknown field`}},
		{name: "nodes of the wrong type", docs: []string{"apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t}\nspec: {nodes: many}\n"},
			probs: []string{`bad.yaml: Lab t: spec.nodes: must be a count or a list of nodes, got "many"`}},
		{name: "case matters", docs: []string{"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {Replicas: 2, replicas: 1, selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, spec: {containers: [{name: c}]}}}\n"},
			warns: []string{`bad.yaml: Deployment default/web: spec.Replicas: unknown field, ignored`}},
	})
}

// TestProblemOrder: problems come sorted by file (in the order given), then document,
// then check order, whatever order the checks ran in.
func TestProblemOrder(t *testing.T) {
	dir := t.TempDir()
	z := filepath.Join(dir, "z.yaml")
	a := filepath.Join(dir, "a.yaml")
	write := func(p string, docs ...string) {
		if err := os.WriteFile(p, []byte(strings.Join(docs, "---\n")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(z, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {app: nothing}}\n",
		dep("neg", -1, echoContainer))
	write(a, lab("  network: {mode: flannel}\n  clients: [{name: lb}]\n"))
	s, err := Load([]string{z, a})
	if err != nil {
		t.Fatal(err)
	}
	got := lines(Validate(s))
	want := []string{
		z + `: Service default/s: spec.selector: matches no Deployment in namespace default`,
		z + `: Service default/s: spec.ports: at least one port is required`,
		z + `: Deployment default/neg: spec.replicas: must be at least 0, got -1`,
		a + `: Lab t: spec.clients[0].name: "lb" is reserved for the load balancer`,
		a + `: Lab t: spec.network.mode: must be host-gw or vxlan, got "flannel"`,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	ps := Validate(s).(Problems)
	if ps[0].File != z || ps[0].Doc != 1 || ps[0].Object != "Service default/s" || ps[0].Field != "spec.selector" {
		t.Fatalf("first problem fields: %+v", ps[0])
	}
}

// Without a Lab object the lab is made of defaults; its problems name NoLabFile.
func TestNoLabObject(t *testing.T) {
	s, err := Parse("x.yaml", []byte(dep("web", 600, echoContainer)))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`<lab defaults>: Lab demo: spec.network.podCIDR: 602 pods do not fit: 2 nodes hold 506 (253 per /24 slice)`}
	if d := cmp.Diff(want, lines(Validate(s))); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

func TestValidateIsRepeatable(t *testing.T) {
	s, err := Parse("x.yaml", []byte(strings.Join([]string{labDoc, webDep,
		svc("a", "  loadBalancerIP: 203.0.113.9\n  ports: [{port: 80, targetPort: 9999, appProtocol: http}]\n")}, "---\n")))
	if err != nil {
		t.Fatal(err)
	}
	first := Validate(s).Error()
	warns := len(s.Warnings)
	if warns != 2 {
		t.Fatalf("warnings: %v", s.Warnings)
	}
	if second := Validate(s).Error(); second != first || len(s.Warnings) != warns {
		t.Fatalf("second Validate differs:\n%s\nwarnings %v", second, s.Warnings)
	}
}

// A zero Scenario (no defaults applied) must not panic and must say what is missing.
func TestValidateZeroScenario(t *testing.T) {
	err := Validate(&Scenario{})
	if err == nil {
		t.Fatal("zero scenario validated")
	}
	got := lines(err)
	if got[0] != `<lab defaults>: Lab : metadata.name: required` || !strings.Contains(err.Error(), "spec.nodes: at least one node is required") {
		t.Fatalf("problems:\n%v", err)
	}
}

// Load reports the decoding problems of every file at once.
func TestLoadProblemsOfEveryFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	if err := os.WriteFile(a, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b, []byte("apiVersion: netlab.dev/v1alpha1\nkind: Lab\nmetadata: {name: t}\nspec: {nodez: 2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{a, b})
	want := []string{
		a + `: Pod default/p: unknown kind "Pod" (the lab reads Lab, Deployment, Service, Ingress, IngressClass, Secret)`,
		b + `: Lab t: spec.nodez: unknown field`,
	}
	if d := cmp.Diff(want, lines(err)); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if _, err := Load([]string{filepath.Join(dir, "missing.yaml")}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
