package rundir

import (
	"path/filepath"
	"testing"
)

// A rewrite of the same bytes, at once, is still a new version (a new inode), and a
// missing file has the zero stamp.
func TestFileStampTellsRewrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "endpoints.json")
	if got := FileStamp(path); got != (Stamp{}) {
		t.Fatalf("missing file: stamp %+v, want the zero stamp", got)
	}
	if err := WriteFileAtomic(path, []byte(`{"ports":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	first := FileStamp(path)
	if first == (Stamp{}) {
		t.Fatal("written file: zero stamp")
	}
	if again := FileStamp(path); again != first {
		t.Fatalf("unchanged file: stamp moved from %+v to %+v", first, again)
	}
	if err := WriteFileAtomic(path, []byte(`{"ports":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if second := FileStamp(path); second == first {
		t.Fatalf("same bytes rewritten: stamp %+v did not change", second)
	}
}
