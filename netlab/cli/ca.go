package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/netlabdev/netlab/netlab/rundir"
	"github.com/spf13/cobra"
)

// caInfo is `netlab ca -o json`.
type caInfo struct {
	Lab  string `json:"lab"`
	Path string `json:"path"`
}

func newCA(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca [--name LAB] [-o table|wide|json|yaml]",
		Short: "Print the path of the lab CA certificate (for curl --cacert)",
		Long: `Print the path of the lab CA's certificate (PEM): the CA the ingress agents sign every
TLS host with. The file lives in the lab's runtime directory, readable by root: use it
as --cacert "$(sudo netlab ca)" (a path works where sudo closes inherited descriptors;
<(...) does not).`,
		Example: `  sudo netlab exec client -- curl --cacert "$(sudo netlab ca)" https://app.example/
  sudo ip netns exec nl-demo-client curl --cacert "$(sudo netlab ca)" https://app.example/
  sudo cat "$(sudo netlab ca)" > lab-ca.pem`,
		Args:    cobra.NoArgs,
		PreRunE: needRoot,
	}
	o := addOutput(cmd, "table")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		name, err := g.labName()
		if err != nil {
			return err
		}
		path := rundir.ForLab(name).CACert()
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("lab %s has no CA at %s (the ingress agents create it at up)", name, path)
		} else if err != nil {
			return err
		}
		return o.print(g.out, caInfo{Lab: name, Path: path}, func(w io.Writer, wide bool) error {
			if wide {
				_, err := fmt.Fprintf(w, "%s\t%s\n", name, path)
				return err
			}
			_, err := fmt.Fprintln(w, path)
			return err
		})
	}
	return cmd
}
