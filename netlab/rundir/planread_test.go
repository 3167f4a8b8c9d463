package rundir_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netlabdev/netlab/netlab/planbuild"
	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/netlabdev/netlab/netlab/scenario"
)

// ReadPlanFile (github.com/goccy/go-json) reads every plan the scenarios and fixtures
// make into what encoding/json reads from the same file.
func TestReadPlanFileAsEncodingJSON(t *testing.T) {
	var files []string
	for _, pattern := range []string{"../../scenarios/*.yaml", "../../testdata/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found %d scenario files", len(files))
	}
	planned := 0
	for _, f := range files {
		s, err := scenario.Load([]string{f})
		if err != nil || scenario.Validate(s) != nil {
			continue // a fixture of bad input
		}
		p, err := planbuild.Build(s, "")
		if err != nil {
			continue
		}
		planned++
		d := rundir.At(t.TempDir())
		if err := d.WritePlan(p); err != nil {
			t.Fatal(err)
		}
		got, err := d.ReadPlan()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		b, err := os.ReadFile(d.Plan())
		if err != nil {
			t.Fatal(err)
		}
		var want any = reflect.New(reflect.TypeOf(*got)).Interface()
		if err := json.Unmarshal(b, want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the plan read differs from encoding/json's", f)
		}
	}
	if planned < 5 {
		t.Errorf("only %d scenarios planned", planned)
	}
}
