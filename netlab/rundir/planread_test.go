package rundir_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/netlabdev/netlab/netlab/internal/planviewtest"
	"github.com/netlabdev/netlab/netlab/rundir"
)

// ReadPlanFile (github.com/goccy/go-json) reads every plan the scenarios and fixtures
// make (and their variants) into what encoding/json reads from the same file.
func TestReadPlanFileAsEncodingJSON(t *testing.T) {
	for name, b := range planviewtest.FixturePlanFiles(t) {
		path := filepath.Join(t.TempDir(), "plan.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := rundir.ReadPlanFile(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var want any = reflect.New(reflect.TypeOf(*got)).Interface()
		if err := json.Unmarshal(b, want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the plan read differs from encoding/json's", name)
		}
	}
}
