package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"

	"go.yaml.in/yaml/v3"

	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/snapshot"
)

// A snapshot file is what a curator writes to create a snapshot:
//
//	name: lts-1.0
//	toolchain: {name: go, version: 1.26.8}
//	flags: {cgo: "0"}
//	packages:
//	  - acme/fastjson@1.2.3
//	  - {name: acme/log, version: 2.0.0, flags: {debug: "off"}}
type snapshotSpec struct {
	Name      string              `yaml:"name"`
	Toolchain *snapshot.Toolchain `yaml:"toolchain"`
	Flags     map[string]string   `yaml:"flags"`
	Packages  []snapshotEntrySpec `yaml:"packages"`
}

type snapshotEntrySpec struct {
	Name    string
	Version string
	Flags   map[string]string
	Line    int
}

func (e *snapshotEntrySpec) UnmarshalYAML(n *yaml.Node) error {
	e.Line = n.Line
	if n.Kind == yaml.ScalarNode {
		e.Name, e.Version = descriptor.SplitID(n.Value)
		return nil
	}
	var m struct {
		Name    string            `yaml:"name"`
		Version string            `yaml:"version"`
		Flags   map[string]string `yaml:"flags"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	e.Name, e.Version, e.Flags = m.Name, m.Version, m.Flags
	return nil
}

// BuildSnapshot reads a curator's snapshot file and resolves each entry
// to its descriptor in the index (read through c). whose, if set, names
// the upstream that publishes a version the repository does not, for
// the refusal to say so: a snapshot pins the repository's own versions.
func BuildSnapshot(c *index.Catalog, file string, data []byte, whose func(name, version string) string) (*snapshot.Snapshot, error) {
	fail := func(line int, format string, args ...any) error {
		return &LineError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	var spec snapshotSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		return nil, fail(0, "%s (cairn snapshot create --help shows one)", yamlText(err))
	}
	if spec.Name == "" || len(spec.Packages) == 0 {
		return nil, fail(0, "a snapshot file has a name and a list of packages (name@version)")
	}
	s := &snapshot.Snapshot{Schema: snapshot.Schema, Name: spec.Name, Toolchain: spec.Toolchain, Flags: spec.Flags}
	seen := map[string]int{}
	for _, e := range spec.Packages {
		if err := descriptor.CheckName(e.Name); err != nil {
			return nil, fail(e.Line, "%v", err)
		}
		if err := descriptor.CheckVersion(e.Version); err != nil {
			return nil, fail(e.Line, "%s: %v (a snapshot names exact versions)", e.Name, err)
		}
		if l, dup := seen[e.Name]; dup {
			return nil, fail(e.Line, "%s is listed twice (also at line %d): a snapshot has one version per package", e.Name, l)
		}
		seen[e.Name] = e.Line
		_, ref, err := c.Descriptor(e.Name, e.Version)
		if errors.Is(err, fs.ErrNotExist) && whose != nil {
			if up := whose(e.Name, e.Version); up != "" {
				return nil, fail(e.Line, "%s@%s is upstream %s's, not published in this repository: a snapshot pins the repository's own versions; pin an upstream's in a project's cairn.yaml (packages: {%s: {version: %s, sha256: …, size: …}})", e.Name, e.Version, up, e.Name, e.Version)
			}
		}
		if err != nil {
			return nil, fail(e.Line, "%v", err)
		}
		s.Packages = append(s.Packages, snapshot.Entry{Name: e.Name, Version: e.Version, Descriptor: ref, Flags: e.Flags})
	}
	s.Sort()
	if err := s.Check(); err != nil {
		return nil, fail(0, "%v", err)
	}
	return s, nil
}
