package kernel

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// goLocked runs fn in a new goroutine locked to its own thread, which is never the
// process's main thread. fn unlocks the thread (runtime.UnlockOSThread) when it leaves it
// as it found it; a thread it leaves locked ends with the goroutine.
//
// Every reader of /proc takes the main thread's namespace for the process's (/proc/PID/ns
// is the main thread's: PIDsIn, ps, lsns), and the Go runtime never ends its main thread:
// a locked goroutine that exits there parks it for good, still in the namespace it was
// moved to. Were fn run there, the whole process would look as if it lived in a pod's
// namespace, for a moment or for ever: the pod would keep "a process" after it was killed,
// and killing the pod would end this process.
func goLocked(fn func()) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != os.Getpid() {
			fn()
			return
		}
		// This goroutine holds the main thread: a goroutine started now cannot run on it.
		// Release the main thread once the new one is locked to another.
		locked := make(chan struct{})
		goLocked(func() {
			close(locked)
			fn()
		})
		<-locked
		runtime.UnlockOSThread()
	}()
}
