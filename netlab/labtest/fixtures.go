package labtest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/netlabdev/netlab/netlab/scenario"
)

// repoRoot is the checkout this package was built from (tests run from their source);
// built with -trimpath, the first directory above the test's own with a go.mod.
func repoRoot() string {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		return filepath.Join(filepath.Dir(file), "..", "..")
	}
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// Fixture returns the text of a scenario shared by the tests, testdata/<name> at the
// repository's root, failing the test when it cannot be read.
func Fixture(t testing.TB, name string) string {
	t.Helper()
	return readRepoFile(t, filepath.Join("testdata", name))
}

// Lesson returns the text of a lesson, scenarios/<name> at the repository's root.
func Lesson(t testing.TB, name string) string {
	t.Helper()
	return readRepoFile(t, filepath.Join("scenarios", name))
}

func readRepoFile(t testing.TB, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), rel))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return string(b)
}

// NFTables is a tweak for UpWith and PlanWith: kube-proxy in nftables mode.
func NFTables(s *scenario.Scenario) { s.Lab.Spec.KubeProxy.Mode = scenario.ProxyModeNFTables }
