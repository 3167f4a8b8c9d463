package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// StoppingHintAfter is how long a stop asked for by a signal may take before SignalContext
// says that a second signal ends the command at once.
const StoppingHintAfter = time.Second

// SignalContext is the context a netlab command runs under. The first Ctrl-C (SIGINT) or
// SIGTERM ends it, and the command stops cleanly: an up rolls back what it made, a follow
// ends, a trace removes its rules. From then on those signals have their default action
// again, so a second one ends the process at once, whatever the first left undone
// (`netlab down` removes what an interrupted up left), as kubectl and docker do. When the
// clean stop is still going after StoppingHintAfter, one line on hint says so (nil: none).
//
// Agents started from this binary register their own handling (agentContext); while one
// is registered, the signals stay caught and a second one is theirs. Their stderr is their
// log: they pass no hint writer (AgentArgs).
func SignalContext(parent context.Context, hint io.Writer) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	finished := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		stop() // the default actions are back before anything else can happen
		select {
		case <-finished: // the command returned: no hint
			return
		default:
		}
		if parent.Err() != nil || hint == nil {
			return // not a signal, or nobody to tell
		}
		t := time.NewTimer(StoppingHintAfter)
		defer t.Stop()
		select {
		case <-t.C:
			fmt.Fprintln(hint, "netlab: stopping cleanly; a second Ctrl-C ends it at once")
		case <-finished:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() { close(finished) })
		stop()
	}
}

// AgentArgs reports whether args (the command line after the program's name) start an
// agent (`netlab agent ROLE ...`).
func AgentArgs(args []string) bool {
	return len(args) > 0 && args[0] == "agent"
}

// SignalHint is where SignalContext's line goes for a command line: stderr, except for an
// agent, whose stderr is its log.
func SignalHint(args []string) io.Writer {
	if AgentArgs(args) {
		return nil
	}
	return os.Stderr
}
