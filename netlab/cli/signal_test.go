package cli_test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netlabdev/netlab/netlab/cli"
	"github.com/netlabdev/netlab/netlab/labtest"
)

// A command whose clean stop does not end (labtest.SignalChildEnv: an up whose rollback
// hangs) says after the first Ctrl-C that a second one ends it, and the second does, with
// the signal's default action.
func TestSecondSignalEndsAtOnce(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), labtest.SignalChildEnv+"=1")
			// Pipes of our own: Wait closes only what exec made.
			stdout, outW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdout.Close()
			stderr, errW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stderr.Close()
			cmd.Stdout, cmd.Stderr = outW, errW
			err = cmd.Start()
			outW.Close()
			errW.Close()
			if err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			ended := false
			defer func() {
				if !ended {
					_ = cmd.Process.Kill()
					<-exited
				}
			}()
			lines, errLines := linesOf(stdout), linesOf(stderr)
			// Only a hang makes these waits long; none of them measures anything.
			const guard = 30 * time.Second
			expect := func(ch <-chan string, want string) {
				t.Helper()
				select {
				case l, ok := <-ch:
					if !ok || !strings.Contains(l, want) {
						t.Fatalf("want a line with %q, got %q (open %v)", want, l, ok)
					}
				case <-time.After(guard):
					t.Fatalf("no line with %q after %s", want, guard)
				}
			}
			expect(lines, "ready")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			expect(lines, "stopping")
			expect(errLines, "a second Ctrl-C ends it at once")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				ended = true
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatalf("after the second %v: exit %v, want death by the signal", sig, err)
				}
				ws := ee.Sys().(syscall.WaitStatus)
				if !ws.Signaled() || ws.Signal() != sig {
					t.Fatalf("after the second %v: %v, want death by %v", sig, ee, sig)
				}
			case <-time.After(guard):
				t.Fatalf("still running %s after the second %v", guard, sig)
			}
		})
	}
}

// linesOf sends r's lines on the channel it returns, closed at r's end.
func linesOf(r io.Reader) <-chan string {
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

// An agent's stderr is its log: no hint goes there; a user's command gets it on stderr.
func TestSignalHintNotForAgents(t *testing.T) {
	for _, c := range []struct {
		args  []string
		agent bool
	}{
		{[]string{"agent", "pod", "--lab", "x"}, true},
		{[]string{"agent"}, true},
		{[]string{"up", "-f", "agent"}, false},
		{nil, false},
	} {
		if got := cli.AgentArgs(c.args); got != c.agent {
			t.Errorf("AgentArgs(%q) = %v, want %v", c.args, got, c.agent)
		}
		if got := cli.SignalHint(c.args); (got == nil) != c.agent || (!c.agent && got != os.Stderr) {
			t.Errorf("SignalHint(%q) = %v, want nil for an agent, os.Stderr otherwise", c.args, got)
		}
	}
}
