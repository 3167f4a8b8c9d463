package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseValidate: Parse never panics, Validate never panics on what Parse accepts, is
// repeatable, and every problem is one line naming its object. The seed corpus
// (testdata/fuzz/FuzzParseValidate, the default and the example scenarios) runs in every
// `go test`; `go test -fuzz FuzzParseValidate ./netlab/scenario` explores further.
func FuzzParseValidate(f *testing.F) {
	f.Add(DefaultYAML())
	files, _ := filepath.Glob("../../scenarios/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("Parse error is not Problems: %v", err)
			}
			checkProblems(t, ps)
			return
		}
		err1 := Validate(s)
		warns := len(s.Warnings)
		err2 := Validate(s)
		if errString(err1) != errString(err2) || len(s.Warnings) != warns {
			t.Fatalf("Validate is not repeatable:\n%v\n---\n%v", err1, err2)
		}
		if err1 != nil {
			checkProblems(t, err1.(Problems))
		}
		checkProblems(t, s.Warnings)
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func checkProblems(t *testing.T, ps Problems) {
	t.Helper()
	for _, p := range ps {
		if p.Object == "" || p.Msg == "" || strings.Contains(p.String(), "\n") {
			t.Fatalf("malformed problem %#v", p)
		}
	}
}
