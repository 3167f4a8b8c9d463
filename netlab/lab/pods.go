package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/netlabdev/netlab/netlab/kernel"
	"github.com/netlabdev/netlab/netlab/plan"
	"github.com/netlabdev/netlab/netlab/rundir"
)

func findPod(p *plan.Plan, name string) (plan.Pod, plan.Process, error) {
	for _, pod := range p.Pods {
		if pod.Name != name {
			continue
		}
		for _, pr := range p.Processes {
			if pr.Role == "pod" && pr.Name == name {
				return pod, pr, nil
			}
		}
	}
	return plan.Pod{}, plan.Process{}, fmt.Errorf("lab %s has no pod %q", p.Lab, name)
}

// KillPod stops every process in a pod's namespace (the drill for a crashed container) and
// returns how many it stopped.
func KillPod(lab, pod string) (int, error) {
	p, err := LoadPlan(lab)
	if err != nil {
		return 0, err
	}
	po, pr, err := findPod(p, pod)
	if err != nil {
		return 0, err
	}
	// The drill's pod stays down (the supervisor leaves a stopped agent alone) until
	// `netlab pod start`.
	mark := rundir.ForLab(lab).StoppedMark(pr.Role, pr.Name)
	if err := os.MkdirAll(filepath.Dir(mark), 0o700); err != nil {
		return 0, err
	}
	if err := os.WriteFile(mark, nil, 0o600); err != nil {
		return 0, fmt.Errorf("mark pod %s stopped: %w", pod, err)
	}
	pids := kernel.PIDsIn([]string{po.Netns})[po.Netns]
	kernel.Terminate(pids, time.Second)
	return len(pids), nil
}

// StartPod starts a pod's agent again (if it is not running) and waits until it is ready.
func StartPod(lab, pod string, timeout time.Duration) error {
	p, err := LoadPlan(lab)
	if err != nil {
		return err
	}
	po, pr, err := findPod(p, pod)
	if err != nil {
		return err
	}
	lk, err := rundir.LockLab(lab)
	if err != nil {
		return err
	}
	defer lk.Unlock(false)
	if err := os.Remove(rundir.ForLab(lab).StoppedMark(pr.Role, pr.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(kernel.PIDsIn([]string{po.Netns})[po.Netns]) > 0 {
		return nil // already running
	}
	done, err := StartAgent(lab, pr, "")
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("pod %s not ready after %s", pod, timeout)
	}
}
