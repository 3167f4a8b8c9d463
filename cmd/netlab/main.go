// Command netlab builds the Kubernetes north-south data path on one Linux host.
package main

import (
	"context"
	"os"

	"github.com/netlabdev/netlab/netlab/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:]))
}
