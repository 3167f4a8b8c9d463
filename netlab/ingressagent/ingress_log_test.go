package ingressagent

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCappedLogEmptiesWhenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingress.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := newCappedLog(f, 4096)
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

// The access log's writes reach the file whole and in order: with raw write(2) calls to a
// regular file on a tmpfs (/dev/shm), with os.File's write to one on a disk (which may wait
// for its journal) and to a pipe (which may wait for its reader).
func TestCappedLogWritesWhole(t *testing.T) {
	var want bytes.Buffer
	lines := make([][]byte, 0, 300)
	for i := range 300 {
		// lines of growing length, up to batches of the access log's size (64 KiB)
		l := []byte(fmt.Sprintf("{\"n\":%d,\"pad\":%q}\n", i, strings.Repeat("y", i*200)))
		lines = append(lines, l)
		want.Write(l)
	}
	check := func(t *testing.T, c *cappedLog, read func() []byte) {
		t.Helper()
		for _, l := range lines {
			if n, err := c.Write(l); err != nil || n != len(l) {
				t.Fatalf("write of %d bytes: %d, %v", len(l), n, err)
			}
		}
		if n, err := c.Write(nil); n != 0 || err != nil {
			t.Fatalf("empty write: %d, %v", n, err)
		}
		if got := read(); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("%d bytes arrived, want %d (the lines as written)", len(got), want.Len())
		}
	}
	file := func(t *testing.T, dir string, raw bool) {
		path := filepath.Join(dir, "ingress.log")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		c := newCappedLog(f, 1<<30)
		if (c.raw != nil) != raw {
			t.Fatalf("%s: raw write(2) calls %v, want %v", dir, c.raw != nil, raw)
		}
		check(t, c, func() []byte { b, _ := os.ReadFile(path); return b })
	}

	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		dir, err := os.MkdirTemp("/dev/shm", "netlab-cappedlog-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		t.Run("tmpfs", func(t *testing.T) { file(t, dir, true) })
	} else {
		t.Log("no tmpfs at /dev/shm: the raw case is not run")
	}
	tmp := t.TempDir()
	if err := unix.Statfs(tmp, &st); err == nil && st.Type != unix.TMPFS_MAGIC {
		t.Run("disk", func(t *testing.T) { file(t, tmp, false) })
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
	check(t, p, func() []byte { w.Close(); return <-done })
}
