package labtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	var b strings.Builder
	for i := 1; i <= 25; i++ {
		b.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	lines, dropped := tail(path, 20)
	if dropped != 5 || len(lines) != 20 || lines[0] != "line 6" || lines[19] != "line 25" {
		t.Errorf("tail 20 of 25 lines: dropped %d, %d lines %q … %q", dropped, len(lines), lines[0], lines[len(lines)-1])
	}
	lines, dropped = tail(path, 100)
	if dropped != 0 || len(lines) != 25 {
		t.Errorf("tail 100 of 25 lines: dropped %d, %d lines", dropped, len(lines))
	}
}
