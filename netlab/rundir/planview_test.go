package rundir_test

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

var views = map[string]rundir.PlanView{
	"kube-proxy": rundir.KubeProxyPlan, "controller": rundir.ControllerPlan, "lb": rundir.LBPlan,
	"dns": rundir.DNSPlan, "ingress": rundir.IngressPlan, "supervisor": rundir.SupervisorPlan,
}

// Every view reads, from every plan the scenarios and fixtures make (and the same with a
// pod terminating), what encoding/json reads of the whole plan in the fields it names,
// and leaves every other field zero; with either decoder (the fixtures are small: go-json
// decodes only a big lab's parts).
func TestPlanViewsReadTheirParts(t *testing.T) {
	t.Run("encoding/json", testPlanViews)
	t.Run("go-json", func(t *testing.T) {
		defer rundir.SetBigDecode(0)()
		testPlanViews(t)
	})
}

func testPlanViews(t *testing.T) {
	pt := reflect.TypeFor[plan.Plan]()
	for name, b := range fixturePlanFiles(t) {
		var full plan.Plan
		if err := json.Unmarshal(b, &full); err != nil {
			t.Fatal(err)
		}
		fv := reflect.ValueOf(full)
		for role, v := range views {
			got, err := v.Decode(b)
			if err != nil {
				t.Fatalf("%s, %s: %v", name, role, err)
			}
			gv := reflect.ValueOf(*got)
			for i := range pt.NumField() {
				key, _, _ := strings.Cut(pt.Field(i).Tag.Get("json"), ",")
				in := key == "lab"
				for _, k := range v {
					in = in || k == key
				}
				switch {
				case in && !reflect.DeepEqual(gv.Field(i).Interface(), fv.Field(i).Interface()):
					t.Errorf("%s, %s: %s differs from the whole plan's", name, role, key)
				case !in && !gv.Field(i).IsZero():
					t.Errorf("%s, %s: %s read though not in the view", name, role, key)
				}
			}
		}
	}
}

// The scan that keeps a view's parts follows strings (quotes, escapes, brackets in them)
// and nesting; what it cannot split, the decoder reads whole, and bad JSON is an error.
func TestPlanViewScan(t *testing.T) {
	v := rundir.PlanView{"warnings", "sysctls"}
	for _, doc := range []string{
		`{}`,
		` { "lab" : "a\"}{[" , "warnings" : [ "x}]\\" , "{[\"" ] }`,
		`{"checks":[{"a":[1,2,{"b":"}]"}],"c":"\\"}],"lab":"l","pods":null,"warnings":[],"network":{"mode":"x"}}`,
		"{\n\t\"lab\":\"l\",\r\n\"sysctls\":[{\"netns\":\"n\",\"key\":\"k\",\"value\":\"1\"}],\"nodes\":[{\"name\":\"x\\u0022\"}]}",
		`{"l\u0061b":"escaped key","warnings":["w"]}`,
		`{"lab":"x","x":123,"warnings":["w"],"y":true,"z":-1.5e3,"n":null}`,
	} {
		var want plan.Plan
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		got, err := v.Decode([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		if got.Lab != want.Lab || !reflect.DeepEqual(got.Warnings, want.Warnings) || !reflect.DeepEqual(got.Sysctls, want.Sysctls) {
			t.Errorf("%s: read %q %q %+v, encoding/json %q %q %+v", doc, got.Lab, got.Warnings, got.Sysctls, want.Lab, want.Warnings, want.Sysctls)
		}
	}
	for _, bad := range []string{``, `[1]`, `{"lab":"x"`, `{"lab":"x",}`, `{"lab" "x"}`, `{"warnings":["x}`, `{"lab":1}`, `{"warnings":[1]}`} {
		if _, err := v.Decode([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestPlanViewOfNoPart(t *testing.T) {
	_, err := rundir.PlanView{"pods", "podz"}.Decode([]byte(`{"lab":"x"}`))
	if err == nil || !strings.Contains(err.Error(), `"podz"`) {
		t.Fatalf("a view of a part the plan does not have: err %v", err)
	}
}

// fixturePlanFiles returns the plan file of every scenario and fixture that plans, and of
// each again with its first pod terminating.
func fixturePlanFiles(t *testing.T) map[string][]byte {
	t.Helper()
	var files []string
	for _, pattern := range []string{"../../scenarios/*.yaml", "../../testdata/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	out := map[string][]byte{}
	for _, f := range files {
		s, err := scenario.Load([]string{f})
		if err != nil || scenario.Validate(s) != nil {
			continue // a fixture of bad input
		}
		p, err := planbuild.Build(s, "")
		if err != nil {
			continue
		}
		for _, leaving := range []bool{false, true} {
			if leaving {
				if len(p.Pods) == 0 {
					continue
				}
				p.Pods[0].Terminating = true
				f += " (a pod terminating)"
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			out[f] = b
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d plans", len(out))
	}
	return out
}
