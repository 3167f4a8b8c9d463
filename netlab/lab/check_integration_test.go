package lab_test

import (
	"strings"
	"testing"

	"github.com/netlabdev/netlab/netlab/labtest"
)

// A scenario whose check expects the wrong thing fails check with exit 1, naming that
// check and what came instead; the right check beside it still passes.
func TestIntegrationCheckWrongExpectation(t *testing.T) {
	labtest.RequireRoot(t)
	p := labtest.Up(t, "lesw", labtest.Fixture(t, "check-wrong.yaml"))
	out, code := labtest.Check(t, "--name", p.Lab)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	var right, wrong string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(line, " right "):
			right = line
		case strings.Contains(line, "deliberately wrong"):
			wrong = line
		}
	}
	if !strings.HasPrefix(right, "ok") {
		t.Errorf("the right check: %q\n%s", right, out)
	}
	if !strings.HasPrefix(wrong, "FAIL") || !strings.Contains(wrong, "expected status 404, got 200 from web-1") {
		t.Errorf("the wrong check: %q\n%s", wrong, out)
	}
	if !strings.Contains(out, "1 check failed") {
		t.Errorf("no summary of the failures:\n%s", out)
	}
}

// check without a lab: exit 2.
func TestIntegrationCheckNoLab(t *testing.T) {
	labtest.RequireRoot(t)
	out, code := labtest.Check(t, "--name", "nosuchlesson")
	if code != 2 || !strings.Contains(out, "nosuchlesson") {
		t.Fatalf("exit %d, want 2 naming the lab:\n%s", code, out)
	}
}
