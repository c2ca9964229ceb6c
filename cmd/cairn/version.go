package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion is what cairn knows of its own build.
type buildVersion struct {
	Module   string `json:"module"`
	Version  string `json:"version"`            // the module's version, "(devel)" for a build from a work tree
	Revision string `json:"revision,omitempty"` // the vcs revision built from, if the build recorded it
	Time     string `json:"time,omitempty"`     // the revision's commit time
	Modified bool   `json:"modified"`           // the work tree had changes beyond the revision
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// versionOf reads the build information the go command embedded (nil
// when the binary carries none).
func versionOf(bi *debug.BuildInfo) buildVersion {
	v := buildVersion{Module: "cairn.dev/cairn", Version: "(unknown)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return v
	}
	if bi.Main.Path != "" {
		v.Module = bi.Main.Path
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.Go = bi.GoVersion
	}
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

// currentVersion is this binary's buildVersion.
func currentVersion() buildVersion {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi)
}

// print writes the version as people read it: a first line for scripts
// ("cairn VERSION"), then the build's details.
func (v buildVersion) print(w io.Writer) {
	fmt.Fprintf(w, "cairn %s\n", v.Version)
	fmt.Fprintf(w, "  module    %s\n", v.Module)
	if v.Revision != "" {
		rev := v.Revision
		if v.Modified {
			rev += " (modified)"
		}
		fmt.Fprintf(w, "  revision  %s\n", rev)
		if v.Time != "" {
			fmt.Fprintf(w, "  time      %s\n", v.Time)
		}
	} else {
		fmt.Fprintf(w, "  revision  (not recorded: built without version control information)\n")
	}
	fmt.Fprintf(w, "  go        %s %s\n", v.Go, v.Platform)
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "Print cairn's version and build information (as --version does)",
		Long: `Print the version of this cairn binary and how it was built: the module's
version, the version-control revision it was built from and whether the work
tree was modified, its commit time, and the Go version and platform.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			v := currentVersion()
			if asJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			v.print(cmd.OutOrStdout())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// versionFlag gives root --version, printing what 'cairn version' prints.
func versionFlag(root *cobra.Command) {
	v := currentVersion()
	var b strings.Builder
	v.print(&b)
	root.Version = v.Version
	root.SetVersionTemplate(strings.ReplaceAll(b.String(), "{{", `{{"{{"}}`))
}
