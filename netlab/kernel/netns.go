package kernel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named namespaces live, as `ip netns` keeps them.
const NetnsDir = "/run/netns"

// NetnsPath is the bind-mount path of a named namespace.
func NetnsPath(name string) string { return filepath.Join(NetnsDir, name) }

// Do runs fn on a locked OS thread switched into the named namespace, then switches back.
// It is the only function that calls setns, with StartConfined (proc.go), whose thread is
// never reused. Sockets created and processes started by fn belong to that namespace. If
// the thread cannot be switched back it is never unlocked, so the Go runtime discards it
// instead of reusing a thread in the wrong namespace.
func Do(name string, fn func() error) error {
	target, err := netns.GetFromPath(NetnsPath(name))
	if err != nil {
		return fmt.Errorf("open namespace %s: %w", name, err)
	}
	defer target.Close()
	return doIn(target, fn)
}

func doIn(target netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	goLocked(func() {
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			runtime.UnlockOSThread()
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("switch back from namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	})
	return <-errc
}

// sharedNetnsDir makes NetnsDir a mount point of its own with shared propagation, as
// `ip netns add` does before its first namespace. Were it left a plain directory, a later
// `ip netns add` would bind-mount the directory over itself, hiding the namespaces made
// before under a second copy of their mounts, and removing them would fail with EBUSY.
//
// Once it succeeded, this process does not do it again: the propagation change walks every
// mount under NetnsDir, a thousand of them in a big lab, for every namespace made.
func sharedNetnsDir() error {
	if netnsDirShared.Load() {
		return nil
	}
	if err := makeNetnsDirShared(); err != nil {
		return err
	}
	netnsDirShared.Store(true)
	return nil
}

// netnsDirShared records that sharedNetnsDir succeeded in this process.
var netnsDirShared atomic.Bool

func makeNetnsDirShared() error {
	bound := false
	for {
		err := unix.Mount("", NetnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("make %s a shared mount: %w", NetnsDir, err)
		}
		if err := unix.Mount(NetnsDir, NetnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s over itself: %w", NetnsDir, err)
		}
		bound = true
	}
}

// CreateNetns makes a new named namespace, like `ip netns add`, without moving the
// calling thread into it. The namespace is IPv4-only (see ipv4Only).
func CreateNetns(name string) error {
	if err := netnsDirReady(); err != nil {
		return err
	}
	return createNetns(name, false)
}

func netnsDirReady() error {
	if err := os.MkdirAll(NetnsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", NetnsDir, err)
	}
	return sharedNetnsDir()
}

// CreateNetnsAll makes every named namespace as CreateNetns does, up to parallelism at a
// time, and returns every error. Each namespace is bind-mounted on a file of its name in
// NetnsDir; here all those files but the first are hard links of the first, made before
// any is mounted: a new name in the directory, not a new inode. On a file system that
// allocates inodes slowly (ext4 without a journal skips, one by one, every inode freed in
// the last minute, and a lab's down frees thousands) a new inode for each of a thousand
// namespaces cost more than the rest of making them; and down, unlinking the names, frees
// one inode, not a thousand. A name that cannot be linked gets a file of its own.
func CreateNetnsAll(names []string, parallelism int) error {
	if len(names) == 0 {
		return nil
	}
	if err := netnsDirReady(); err != nil {
		return err
	}
	made := make([]bool, len(names))
	first := NetnsPath(names[0])
	if f, err := os.OpenFile(first, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444); err == nil {
		f.Close()
		made[0] = true
		for i, n := range names[1:] {
			made[i+1] = os.Link(first, NetnsPath(n)) == nil
		}
	}
	sem := make(chan struct{}, max(parallelism, 1))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = createNetns(n, made[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// createNetns makes the namespace name, on its file in NetnsDir (made: already there,
// else created here).
func createNetns(name string, made bool) error {
	path := NetnsPath(name)
	if !made {
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
		f.Close()
	}
	errc := make(chan error, 1)
	goLocked(func() {
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		merr := unix.Mount(self, path, "none", unix.MS_BIND, "")
		if merr == nil {
			merr = ipv4Only()
		}
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(merr, fmt.Errorf("switch back: %w", err))
			return // thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		errc <- merr
	})
	if err := <-errc; err != nil {
		os.Remove(path)
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// DeleteNetns unmounts and removes a named namespace. Missing is not an error. The kernel
// frees the namespace, and every link in it, when no process holds it any more.
func DeleteNetns(name string) error {
	path := NetnsPath(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount namespace %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace %s: %w", name, err)
	}
	return nil
}

// ListNetns returns the named namespaces whose names start with prefix, sorted.
func ListNetns(prefix string) ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// NetnsExists says whether a named namespace is there.
func NetnsExists(name string) bool {
	_, err := os.Stat(NetnsPath(name))
	return err == nil
}

type nsID struct{ dev, ino uint64 }

func statNS(path string) (nsID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, false
	}
	return nsID{uint64(st.Dev), st.Ino}, true
}

// PIDsIn returns the processes whose network namespace is one of the named namespaces,
// keyed by namespace name (what `ip netns pids` reports).
func PIDsIn(names []string) map[string][]int {
	want := map[nsID]string{}
	for _, n := range names {
		if id, ok := statNS(NetnsPath(n)); ok {
			want[id] = n
		}
	}
	out := map[string][]int{}
	if len(want) == 0 {
		return out
	}
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if id, ok := statNS(fmt.Sprintf("/proc/%d/ns/net", pid)); ok {
			if n, hit := want[id]; hit {
				out[n] = append(out[n], pid)
			}
		}
	}
	return out
}

// InNetns says whether this process lives in the named namespace.
func InNetns(name string) bool {
	self, ok1 := statNS("/proc/self/ns/net")
	want, ok2 := statNS(NetnsPath(name))
	return ok1 && ok2 && self == want
}

// ipv4Only disables IPv6 in the namespace this thread is in, before it has any device
// but lo: the lab is an IPv4 cluster, and with IPv6 on, every veth that comes up sends
// its link-local autoconfiguration (duplicate address detection, router solicitations,
// MLD reports), which a node's bridge floods to every other pod of the node: with 250
// pods on a bridge that was most of the cost of creating the links (3.0–3.7 ms a veth
// instead of 7.0–7.2 ms, measured side by side, docs/performance.md).
func ipv4Only() error {
	for _, f := range []string{"/proc/sys/net/ipv6/conf/all/disable_ipv6", "/proc/sys/net/ipv6/conf/default/disable_ipv6"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("disable IPv6: %w", err) // (no such file: a kernel without IPv6)
		}
	}
	return nil
}
