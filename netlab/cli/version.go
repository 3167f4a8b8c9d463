package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is what `netlab version` prints: from the binary's build information.
type Version struct {
	Module    string `json:"module"`
	Version   string `json:"version"`            // module version: (devel) for a checkout build
	Revision  string `json:"revision,omitempty"` // VCS commit, when the build stamped it
	Time      string `json:"time,omitempty"`     // commit time
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

func buildVersion() Version {
	v := Version{Version: "(unknown)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module, v.Version, v.GoVersion = bi.Main.Path, bi.Main.Version, bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// versionLine is the one line `netlab --version` prints.
func versionLine() string {
	v := buildVersion()
	rev := v.Revision
	if rev == "" {
		rev = "unknown revision"
	} else if len(rev) > 12 {
		rev = rev[:12]
	}
	if v.Modified {
		rev += "-dirty"
	}
	return fmt.Sprintf("netlab %s (%s, %s, %s)", v.Version, rev, v.GoVersion, v.Platform)
}

func newVersion(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version [-o table|wide|json|yaml]",
		Short: "Show netlab's version, VCS revision and the Go it was built with",
		Args:  cobra.NoArgs,
	}
	o := addOutput(cmd, "table")
	cmd.RunE = func(*cobra.Command, []string) error {
		v := buildVersion()
		return o.print(g.out, v, func(w io.Writer, wide bool) error {
			if !wide {
				_, err := fmt.Fprintln(w, versionLine())
				return err
			}
			_, err := fmt.Fprintf(w, "module:    %s\nversion:   %s\nrevision:  %s\ntime:      %s\nmodified:  %t\ngo:        %s\nplatform:  %s\n",
				v.Module, v.Version, v.Revision, v.Time, v.Modified, v.GoVersion, v.Platform)
			return err
		})
	}
	return cmd
}
