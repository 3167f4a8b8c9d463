package rundir_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/internal/planviewtest"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

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
	for name, b := range planviewtest.FixturePlanFiles(t) {
		var full plan.Plan
		if err := json.Unmarshal(b, &full); err != nil {
			t.Fatal(err)
		}
		fv := reflect.ValueOf(full)
		for role, v := range rundir.PlanViews {
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
	for _, bad := range badPlans {
		if _, err := v.Decode([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// Keys in another case: the decoders match them, and so does the view.
	for _, doc := range []string{`{"lab":"x","Warnings":["w"]}`, `{"lab":"x","warnings":["a"],"WARNINGS":["b"]}`, `{"lab":"x","Lab":"y"}`} {
		var want plan.Plan
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatal(err)
		}
		got, err := v.Decode([]byte(doc))
		if err != nil || got.Lab != want.Lab || !reflect.DeepEqual(got.Warnings, want.Warnings) {
			t.Errorf("%s: read %q %q (%v), encoding/json %q %q", doc, got.Lab, got.Warnings, err, want.Lab, want.Warnings)
		}
	}
}

// badPlans are not JSON: a view fails on each as the whole decode does, whether the fault
// is in a part it keeps or one it skips.
var badPlans = []string{``, `[1]`, `{"lab":"x"`, `{"lab":"x",}`, `{"lab" "x"}`, `{"warnings":["x}`, `{"lab":1}`, `{"warnings":[1]}`,
	`{"lab":"x"} garbage`, `{"lab":"x"}{"lab":"y"}`, `{"lab":"x","checks":[1}}`, `{"lab":"x","checks":{"a":1]}`,
	`{"lab":"x","checks":[1,2,,]}`, `{"lab":"x","checks": }`, `{"checks":,"lab":"x"}`, `{"checks":tru,"lab":"x"}`,
	`{"lab":"x","checks":"\q"}`, "{\"lab\":\"x\",\"checks\":\"a\x01b\"}", `{"checks":true"lab":"x"}`,
	`{"checks":01,"lab":"x"}`, `{"checks":-,"lab":"x"}`, `{"checks":1.,"lab":"x"}`, `{"checks":1e,"lab":"x"}`,
	`{"checks":{"a" 1},"lab":"x"}`, `{"checks":{1:2},"lab":"x"}`, `{"checks":"\u12g4","lab":"x"}`, `{"lab":"x",,"checks":1}`,
	`{"checks":[1 2],"lab":"x"}`, `{"checks":nulls,"lab":"x"}`}

// FuzzPlanView: on any input, a view fails where the input is not JSON, and where the
// whole decode reads it, the view reads the same in its fields.
func FuzzPlanView(f *testing.F) {
	for _, s := range append(badPlans, `{}`, `{"lab":"l","warnings":["a"],"checks":[{"x":[1,-2.5e3,true,false,null,"\u00e9\\"]}],"sysctls":[]}`) {
		f.Add([]byte(s))
	}
	v := rundir.PlanView{"warnings", "sysctls"}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := v.Decode(b)
		if !json.Valid(b) {
			if err == nil {
				t.Fatalf("%q is not JSON: no error", b)
			}
			return
		}
		var want plan.Plan
		if json.Unmarshal(b, &want) != nil {
			return // JSON, but not a plan: a skipped part of the wrong type need not fail the view
		}
		if err != nil {
			t.Fatalf("%q: %v (the whole decode reads it)", b, err)
		}
		if got.Lab != want.Lab || !reflect.DeepEqual(got.Warnings, want.Warnings) || !reflect.DeepEqual(got.Sysctls, want.Sysctls) {
			t.Fatalf("%q: read %q %q %+v, encoding/json %q %q %+v", b, got.Lab, got.Warnings, got.Sysctls, want.Lab, want.Warnings, want.Sysctls)
		}
	})
}

// A part of the wrong type is named as the whole decode names it.
func TestPlanViewErrorNamesThePlan(t *testing.T) {
	for _, big := range []int{64 << 10, 0} {
		restore := rundir.SetBigDecode(big)
		_, err := rundir.PlanView{"warnings"}.Decode([]byte(`{"lab":"x","warnings":[1]}`))
		restore()
		if err == nil || !strings.Contains(err.Error(), "Plan.warnings") {
			t.Errorf("go-json from %d bytes: a number in warnings: err %v, want one naming Plan.warnings", big, err)
		}
	}
}

func TestPlanViewOfNoPart(t *testing.T) {
	_, err := rundir.PlanView{"pods", "podz"}.Decode([]byte(`{"lab":"x"}`))
	if err == nil || !strings.Contains(err.Error(), `"podz"`) {
		t.Fatalf("a view of a part the plan does not have: err %v", err)
	}
}
