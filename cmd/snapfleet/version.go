package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is what `snapfleet --version` says: the module version, the commit it was
// built from and the Go that built it, all from the binary's build info.
type buildVersion struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
}

// readVersion reads the build info of a binary: `go build` in a git checkout stamps
// vcs.revision and vcs.modified; `go run`, a worktree or -buildvcs=false do not, and the
// commit is "unknown".
func readVersion(info *debug.BuildInfo, ok bool) buildVersion {
	v := buildVersion{Version: "devel", Commit: "unknown", Go: runtime.Version()}
	if !ok || info == nil {
		return v
	}
	if m := info.Main.Version; m != "" && m != "(devel)" {
		v.Version = m
	}
	if info.GoVersion != "" {
		v.Go = info.GoVersion
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && v.Commit != "unknown" {
		v.Commit += "-dirty"
	}
	return v
}

func (v buildVersion) String() string {
	return fmt.Sprintf("snapfleet %s (commit %s, %s)", v.Version, v.Commit, v.Go)
}

// thisVersion is the version of the running binary.
func thisVersion() buildVersion { return readVersion(debug.ReadBuildInfo()) }

// newVersionCmd is `snapfleet version`, the same line as --version (or, with --output
// json, its fields).
func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		RunE: func(*cobra.Command, []string) error {
			v := thisVersion()
			if g.output == "json" {
				return g.printJSON(v)
			}
			_, err := fmt.Fprintln(g.stdout, v)
			return err
		},
	}
}
