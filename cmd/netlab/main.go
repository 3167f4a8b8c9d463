// Command netlab builds the Kubernetes north-south data path on one Linux host.
package main

import (
	"context"
	"os"

	"github.com/netlabdev/netlab/netlab/cli"
)

func main() {
	// Ctrl-C or SIGTERM cancels the context: an `up` in progress stops between steps and
	// rolls back what it made; a second one ends the process at once (cli.SignalContext).
	ctx, stop := cli.SignalContext(context.Background(), cli.SignalHint(os.Args[1:]))
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
