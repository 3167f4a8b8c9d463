package ingressagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCappedLogEmptiesWhenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingress.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &cappedLog{f: f, max: 4096}
	line := []byte(strings.Repeat("x", 99) + "\n")
	for i := 0; i < 5000; i++ {
		if _, err := c.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// 5000 lines of 100 bytes would be 500 kB; the cap is checked every 1024 writes.
	if fi.Size() > 4096+1024*100+100 {
		t.Errorf("log is %d bytes, the cap did not hold", fi.Size())
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "log emptied") {
		t.Errorf("no note that the log was emptied")
	}
}
