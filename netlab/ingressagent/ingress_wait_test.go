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
// Where inotify works the wait's poll is an hour long, and the file is written only after
// the waiter's first look: only the watch can end that wait.
func TestWaitForFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "endpoints.json")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := rundir.Watch(ctx, dir, filepath.Base(path))
	poll := time.Hour
	if !w.Active() {
		t.Log("no inotify here: waitForFile polls")
		poll = 5 * time.Millisecond
	}
	got := make(chan bool, 1)
	looked := make(chan struct{})
	go func() { got <- waitForFileEvery(ctx, path, time.Minute, w, poll, looked) }()
	<-looked
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
