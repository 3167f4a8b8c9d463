package ingressagent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/rundir"
)

// A held ingress waits for the controller's first endpoints file: it sees one written
// while it waits (written as the controller writes it, by a rename into the directory),
// one there already, and gives up when its context ends or its limit passes without one.
func TestWaitForFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "endpoints.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := rundir.Watch(ctx, dir, filepath.Base(path))
	if !w.Active() {
		t.Log("no inotify here: waitForFile polls")
	}
	got := make(chan bool, 1)
	go func() { got <- waitForFile(ctx, path, time.Minute, w) }()
	if err := rundir.WriteFileAtomic(path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !<-got {
		t.Error("a file written during the wait: not seen")
	}
	if !waitForFile(ctx, path, time.Minute, w) {
		t.Error("a file there already: not seen")
	}

	missing := filepath.Join(dir, "none.json")
	if waitForFile(ctx, missing, 10*time.Millisecond, w) {
		t.Error("no file: the wait said it came")
	}
	ctx2, cancel2 := context.WithCancel(ctx)
	go cancel2()
	if waitForFile(ctx2, missing, time.Minute, w) {
		t.Error("no file, context ended: the wait said it came")
	}
}
