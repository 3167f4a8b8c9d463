// Command netlab builds the Kubernetes north-south data path on one Linux host.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/netlabdev/netlab/netlab/cli"
)

func main() {
	// Ctrl-C or SIGTERM cancels the context: an `up` in progress stops between steps and
	// rolls back what it made. (Agents set up their own handling.)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
