package ingressagent

import (
	"bytes"
	"fmt"
	"io"
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
	c := newCappedLog(f, 4096)
	if c.raw == nil {
		t.Fatal("a regular file is not written with raw write(2) calls")
	}
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

// The access log's writes reach the file whole and in order, with raw write(2) calls to a
// regular file and os.File's write to anything else (a pipe: a slow reader may block it).
func TestCappedLogWritesWhole(t *testing.T) {
	var want bytes.Buffer
	lines := make([][]byte, 0, 300)
	for i := range 300 {
		// lines of growing length, up to batches of the access log's size (64 KiB)
		l := []byte(fmt.Sprintf("{\"n\":%d,\"pad\":%q}\n", i, strings.Repeat("y", i*200)))
		lines = append(lines, l)
		want.Write(l)
	}

	path := filepath.Join(t.TempDir(), "ingress.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := newCappedLog(f, 1<<30)
	if c.raw == nil {
		t.Fatal("a regular file is not written with raw write(2) calls")
	}
	for _, l := range lines {
		if n, err := c.Write(l); err != nil || n != len(l) {
			t.Fatalf("write of %d bytes: %d, %v", len(l), n, err)
		}
	}
	if n, err := c.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty write: %d, %v", n, err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the file has %d bytes, want %d (the lines as written)", len(got), want.Len())
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := newCappedLog(w, 1<<30)
	if p.raw != nil {
		t.Fatal("a pipe is written with raw write(2) calls")
	}
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	for _, l := range lines {
		if _, err := p.Write(l); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	if got := <-done; !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the pipe carried %d bytes, want %d", len(got), want.Len())
	}
}
