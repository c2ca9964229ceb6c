package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"

	"github.com/spf13/cobra"

	"cairn.dev/cairn/internal/descriptor"
)

func newPackageCmd() *cobra.Command {
	c := &cobra.Command{Use: "package", Short: "Start a package: write a commented cairn-package.yaml"}
	c.AddCommand(newPackageInitCmd())
	return c
}

// manifestStart is what 'cairn package init' writes: every field a
// manifest takes, explained, the optional ones commented out (parsed when
// it is written, not at every start).
var manifestStart = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("manifest").Parse(`# cairn-package.yaml: one version of a package. 'cairn publish DIR' reads it,
# stores each artifact file named below (they sit beside this file), and
# appends the version's descriptor and your signed record to the index.

# namespace/name, lowercase: your key needs a publish scope that covers it
# (the root grants publish:{{.Namespace}}/* to let a key publish every {{.Namespace}}/ package)
name: {{.Name}}

# strict semver; a version is published once and never changes:
# for the next one, change this line and the artifact file names
version: {{.Version}}

summary: {{.Summary}}
license: {{.License}}

# uuid: the package's identity across versions. Leave it out: the first
# publish makes one, and later versions take it from the index.

# the packages this version needs, each with a semver range
# dependencies:
#   - name: {{.Namespace}}/base
#     version: ">=1.0.0 <2.0.0"

# the files of the version, beside this file: one source, and a binary per
# platform (os-arch). Tarballs (.tar.gz, .tgz, .tar) and zips are unpacked
# by 'cairn install'; other files are installed as they are.
artifacts:
  - kind: source
    file: {{.Base}}-{{.Version}}.tar.gz
#  - kind: binary
#    platform: linux-amd64
#    file: {{.Base}}-{{.Version}}-linux-amd64.tar.gz
`))
})

// packageStart is the input of manifestStart.
type packageStart struct {
	Name, Namespace, Base, Version, Summary, License string
}

func newPackageInitCmd() *cobra.Command {
	var s packageStart
	c := &cobra.Command{
		Use:   "init [DIR] --name NAMESPACE/NAME [--version VERSION]",
		Short: "Write a commented cairn-package.yaml in DIR (default .) to start a package",
		Long: `Write DIR/cairn-package.yaml (DIR is made if missing; default the current
directory): the manifest 'cairn publish DIR' reads, every field explained, the
optional ones commented out. It names one source artifact, NAME-VERSION.tar.gz:
put that file beside it (and uncomment a binary per platform if you build
them), then publish. An existing manifest is never overwritten.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Errorf("accepts at most one DIR, received %d", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			path, err := writeManifestStart(dir, s)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\nnext: put %s-%s.tar.gz beside it, then: cairn publish %s\n", path, packageBase(s.Name), s.Version, dir)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&s.Name, "name", "", "the package's name, namespace/name in lowercase (required)")
	fl.StringVar(&s.Version, "version", "0.1.0", "the first version, strict semver")
	fl.StringVar(&s.Summary, "summary", "", "one line on what the package is")
	fl.StringVar(&s.License, "license", "", "its license, an SPDX expression such as MIT")
	return c
}

// packageBase is what a package's file names begin with: the name
// without its namespace, its elements joined by '-' (greet-v2 of
// example.com/greet/v2).
func packageBase(name string) string {
	_, base, _ := strings.Cut(name, "/")
	return strings.ReplaceAll(base, "/", "-")
}

// writeManifestStart writes DIR/cairn-package.yaml for s, refusing to
// overwrite one, and returns its path. What it writes parses as a
// manifest with s's name and version (the test holds it to that).
func writeManifestStart(dir string, s packageStart) (string, error) {
	if s.Name == "" {
		return "", usageError{errors.New("name the package with --name NAMESPACE/NAME (e.g. --name acme/hello)")}
	}
	if err := descriptor.CheckName(s.Name); err != nil {
		return "", usageError{err}
	}
	if err := descriptor.CheckVersion(s.Version); err != nil {
		return "", usageError{err}
	}
	s.Namespace = descriptor.Namespace(s.Name)
	s.Base = packageBase(s.Name)
	s.Summary, s.License = yamlScalar(s.Summary), yamlScalar(s.License)
	var b bytes.Buffer
	if err := manifestStart().Execute(&b, s); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("make the package directory: %w", err)
	}
	path := filepath.Join(dir, descriptor.ManifestFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("%s already exists: refusing to overwrite a manifest (edit it, or give another DIR)", path)
	}
	if err != nil {
		return "", fmt.Errorf("write the manifest: %w", err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// yamlScalar quotes s as a YAML double-quoted scalar: a summary may hold
// any character, and "" reads as an empty string.
func yamlScalar(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
