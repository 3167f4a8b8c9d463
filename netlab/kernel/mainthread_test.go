package kernel_test

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/labtest"
	"github.com/netlabdev/netlab/netlab/privs"
)

// inode of a namespace file, to tell namespaces apart.
func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// /proc/PID/ns/net is the namespace of a process's main thread: what every reader of
// /proc takes as "the process's namespace" (kernel.PIDsIn, ps, lsns). Starting processes
// in a namespace, or running code there, must never move this process's main thread there,
// not even for a moment: the Go runtime never ends its main thread, so a main thread left
// there would make the whole process look as if it lived in a pod (a killed pod then still
// has "a process" and stays ready, and a kill of the pod would end this process).
func TestIntegrationMainThreadStaysHome(t *testing.T) {
	labtest.RequireRoot(t)
	ns := fmt.Sprintf("nl-kmain%d", os.Getpid())
	if err := kernel.CreateNetns(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kernel.DeleteNetns(ns) })
	main := fmt.Sprintf("/proc/%d/ns/net", os.Getpid())
	home, pod := nsIno(t, main), nsIno(t, kernel.NetnsPath(ns))
	keep := privs.Mask(privs.NetBindService)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	// A watcher looks at the main thread's namespace all along: a move for a moment (a
	// netlink socket opened in a namespace by switching the calling thread) shows too.
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var st syscall.Stat_t
			if syscall.Stat(main, &st) == nil && st.Ino == pod {
				fail("the main thread was seen in %s", ns)
				return
			}
		}
	}()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				cmd := exec.Command("true")
				if err := kernel.StartConfined(ns, cmd, func() error { return privs.ConfineThread(keep) }); err != nil {
					fail("start %d/%d: %v", g, i, err)
					return
				}
				_ = cmd.Wait()
				hs := kernel.NewHandles()
				if _, err := hs.Get(ns); err != nil {
					fail("netlink handle %d/%d: %v", g, i, err)
				}
				hs.Close()
				if err := kernel.Do(ns, func() error {
					var st syscall.Stat_t
					if err := syscall.Stat(main, &st); err != nil {
						return err
					}
					if st.Ino == pod {
						return fmt.Errorf("the main thread runs the code that went into %s", ns)
					}
					return nil
				}); err != nil {
					fail("do %d/%d: %v", g, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-watched
	if got := nsIno(t, main); got != home {
		problems = append(problems, fmt.Sprintf("this process's main thread was left in namespace %d (the pod's is %d), not %d", got, pod, home))
	}
	for _, p := range problems {
		t.Error(p)
	}
}
