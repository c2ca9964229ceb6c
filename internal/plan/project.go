// Package plan turns a project into a build plan that is pinned by hash.
//
// A project file (cairn.yaml) names repositories, each pinned by its
// introduction, a snapshot (by label or by digest), extra packages by
// semver range or by digest, a policy and target platforms. Resolution
// reads the verified indexes and writes a lock file (cairn.lock): the
// transitive closure, every package by descriptor digest and size, the
// artifact chosen for each platform by digest and size, the snapshot and
// index heads it was resolved against, and a digest of its own content.
// The same inputs give a byte-identical lock, and every choice is
// explained (Why).
package plan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/witness"
)

// File names.
const (
	ProjectFile = "cairn.yaml"
	LockFile    = "cairn.lock"
)

// ErrInvalid is the parent of project file errors.
var ErrInvalid = errors.New("invalid project")

// LineError is an error at a line of a file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

func (e *LineError) Unwrap() error { return ErrInvalid }

// ErrUnpinned is the parent of UnpinnedError.
var ErrUnpinned = errors.New("input not pinned by hash")

// UnpinnedError lists every input that --verified refuses, each with its
// line.
type UnpinnedError struct{ Offenders []*LineError }

func (e *UnpinnedError) Error() string {
	var parts []string
	for _, o := range e.Offenders {
		parts = append(parts, o.Error())
	}
	return fmt.Sprintf("verified mode refuses %d input(s) not pinned by hash: %s", len(e.Offenders), strings.Join(parts, "; "))
}

func (e *UnpinnedError) Unwrap() error { return ErrUnpinned }

// Project is a parsed cairn.yaml.
type Project struct {
	Dir          string // the directory holding it; relative paths are relative to it
	Raw          []byte
	Repositories []Repository
	Snapshot     *SnapshotRef
	Packages     []Want
	Policy       string // a file, relative to Dir, or index:NAME (a policy of the first repository's index)
	Platforms    []string
	Verified     bool
	// Files, when set, holds the project's own files (its policy) by
	// their paths relative to Dir, read instead of the disk: a project
	// that came in an evidence bundle, not from this machine.
	Files map[string][]byte
}

// Repository is a repository the project reads, pinned by introduction:
// a server (URL) or an index on disk (Path).
type Repository struct {
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Git and Log name an index on a plain git host, read as a full
	// replica: its git URL (a host that runs no cairn code) and the URL
	// its log is published at (cairn log publish); its blobs come from
	// Mirrors. With URL (a light client), Log is where the server's log
	// is published as static files: its tiles are read there first.
	Git          string   `yaml:"git"`
	Log          string   `yaml:"log"`
	Path         string   `yaml:"path"`
	Introduction string   `yaml:"introduction"`
	Mirrors      []string `yaml:"mirrors"`
	// Light says how a server (URL) is read. Unset or true: with the
	// light client (package light), every read proved against its signed
	// checkpoint, no clone in the cache and no git binary needed. false:
	// into a full replica in the cache (every commit replayed), as a
	// server, an auditor or a mirror keeps one. Use IsLight.
	Light *bool `yaml:"light"`
	// Witnesses are the verifier keys of the witnesses trusted to cosign
	// the server's checkpoints, Quorum how many must have (default: all).
	// With none, a split view cannot be detected.
	Witnesses []string `yaml:"witnesses"`
	Quorum    *int     `yaml:"quorum"`
	Line      int      `yaml:"-"`
}

// IsLight reports whether the repository is a server read by the light
// client: every url repository unless it says light: false.
func (r Repository) IsLight() bool {
	return r.URL != "" && (r.Light == nil || *r.Light)
}

// Policy returns the repository's witness policy.
func (r Repository) Policy() (witness.Policy, error) {
	q := len(r.Witnesses)
	if r.Quorum != nil {
		q = *r.Quorum
	}
	return witness.NewPolicy(r.Witnesses, q)
}

// Where is the repository's location as a lock records it.
func (r Repository) Where() string {
	if r.URL != "" {
		return r.URL
	}
	if r.Git != "" {
		return "git:" + r.Git
	}
	return "path:" + r.Path
}

// SnapshotRef is the project's snapshot: a label, or a digest and size.
type SnapshotRef struct {
	Label string
	Name  string // display only
	Ref   *blob.Ref
	Line  int
}

// Want is an extra package: a range, or a version pinned by digest.
type Want struct {
	Name    string
	Range   string    // a semver range ("^1.2", "1.2.3", "*")
	Version string    // pinned
	Ref     *blob.Ref // the pinned version's descriptor
	Line    int
	// From says where the want was given, when not at Line of cairn.yaml
	// (ServerProject: "the command line").
	From string
}

// where is where the want was given, as a plan explains its choices.
func (w Want) where() string {
	if w.From != "" {
		return w.From
	}
	return fmt.Sprintf("%s:%d", ProjectFile, w.Line)
}

// Pinned reports whether the package is pinned by hash.
func (w Want) Pinned() bool { return w.Ref != nil }

type projectSpec struct {
	Repositories []repositorySpec `yaml:"repositories"`
	Snapshot     yaml.Node        `yaml:"snapshot"`
	Packages     yaml.Node        `yaml:"packages"`
	Policy       string           `yaml:"policy"`
	Platforms    []string         `yaml:"platforms"`
	Verified     bool             `yaml:"verified"`
}

type pinSpec struct {
	Name    string `yaml:"name"`
	Label   string `yaml:"label"`
	Version string `yaml:"version"`
	SHA256  string `yaml:"sha256"`
	Size    *int64 `yaml:"size"`
}

// ReadProject reads DIR/cairn.yaml.
func ReadProject(dir string) (*Project, error) {
	data, err := os.ReadFile(filepath.Join(dir, ProjectFile))
	if err != nil {
		return nil, fmt.Errorf("%w (a project starts with a %s: see 'cairn lock --help')", err, ProjectFile)
	}
	return ParseProject(dir, data)
}

// ParseProject parses a project file's bytes.
func ParseProject(dir string, data []byte) (*Project, error) {
	fail := func(line int, format string, args ...any) error {
		return &LineError{File: ProjectFile, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	var spec projectSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		return nil, fail(0, "%s", yamlText(err))
	}
	p := &Project{Dir: dir, Raw: data, Policy: spec.Policy, Platforms: spec.Platforms, Verified: spec.Verified}
	if err := checkPolicyRef(spec.Policy); err != nil {
		return nil, fail(0, "policy: %v (a policy file, or index:NAME for a policy of the index)", err)
	}
	seen := map[string]bool{}
	for _, rs := range spec.Repositories {
		r := rs.Repository
		if seen[r.Name] {
			return nil, fail(r.Line, "repository %s is listed twice", r.Name)
		}
		seen[r.Name] = true
		if err := r.check(); err != nil {
			return nil, fail(r.Line, "%v", err)
		}
		p.Repositories = append(p.Repositories, r)
	}
	if len(p.Repositories) == 0 {
		return nil, fail(0, "no repositories: list at least one (name, url or path, introduction)")
	}
	for _, pl := range p.Platforms {
		if pl == "" || strings.ContainsAny(pl, "/ ") {
			return nil, fail(0, "platform %q: want a platform such as linux-amd64, or source", pl)
		}
	}
	if len(p.Platforms) == 0 {
		p.Platforms = []string{"source"}
	}
	if n := &spec.Snapshot; n.Kind != 0 {
		s, err := parseSnapshotRef(n)
		if err != nil {
			return nil, fail(n.Line, "snapshot: %v", err)
		}
		p.Snapshot = s
	}
	if n := &spec.Packages; n.Kind != 0 {
		if n.Kind != yaml.MappingNode {
			return nil, fail(n.Line, "packages: a mapping of name to a range or {version, sha256, size}")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			w, err := parseWant(k.Value, v)
			if err != nil {
				return nil, fail(k.Line, "package %s: %v", k.Value, err)
			}
			p.Packages = append(p.Packages, w)
		}
		sort.Slice(p.Packages, func(i, j int) bool { return p.Packages[i].Name < p.Packages[j].Name })
	}
	if p.Snapshot == nil && len(p.Packages) == 0 {
		return nil, fail(0, "nothing to install: name a snapshot, packages, or both")
	}
	return p, nil
}

// check checks a repository's entry, and trims its URL's final slash.
func (r *Repository) check() error {
	if record.CheckUpstreamName(r.Name) != nil {
		return fmt.Errorf("repository name %q: use lowercase letters, digits, '.', '_' and '-'", r.Name)
	}
	if n := btoi(r.URL != "") + btoi(r.Git != "") + btoi(r.Path != ""); n != 1 {
		return fmt.Errorf("repository %s: give one of url (a cairn server), git (with log: an index on a plain git host) or path (an index on disk)", r.Name)
	}
	if r.Git != "" {
		if err := remote.CheckGitURL(r.Git); err != nil {
			return fmt.Errorf("repository %s: %v", r.Name, err)
		}
		if !strings.HasPrefix(r.Log, "http://") && !strings.HasPrefix(r.Log, "https://") {
			return fmt.Errorf("repository %s: git: needs log:, the http:// or https:// URL its log is published at (cairn log publish), where its signed checkpoint is", r.Name)
		}
		if r.Light != nil && *r.Light {
			return fmt.Errorf("repository %s: a plain git host is read as a full replica (light: false): the light client reads a cairn server (url:)", r.Name)
		}
		r.Log = strings.TrimSuffix(r.Log, "/")
	} else if r.Log != "" {
		if r.URL == "" || !r.IsLight() {
			return fmt.Errorf("repository %s: log: goes with git: (an index on a plain git host), or with url: read as a light client (the server's log published as static files, whose tiles it reads there)", r.Name)
		}
		if !strings.HasPrefix(r.Log, "http://") && !strings.HasPrefix(r.Log, "https://") {
			return fmt.Errorf("repository %s: log %q: want the http:// or https:// URL the log is published at (cairn log publish)", r.Name, r.Log)
		}
		r.Log = strings.TrimSuffix(r.Log, "/")
	}
	if r.URL != "" && !strings.HasPrefix(r.URL, "http://") && !strings.HasPrefix(r.URL, "https://") {
		return fmt.Errorf("repository %s: url %q: want http:// or https://", r.Name, r.URL)
	}
	r.URL = strings.TrimSuffix(r.URL, "/")
	for _, m := range r.Mirrors {
		if err := blob.CheckMirror(m); err != nil {
			return fmt.Errorf("repository %s: %w", r.Name, err)
		}
	}
	if r.URL == "" && r.Git == "" && (r.Light != nil || len(r.Witnesses) > 0 || r.Quorum != nil) {
		return fmt.Errorf("repository %s: light, witnesses and quorum are for a server (url), not an index on disk", r.Name)
	}
	if _, err := r.Policy(); err != nil {
		return fmt.Errorf("repository %s: %v", r.Name, err)
	}
	if !blob.IsDigest(r.Introduction) {
		return fmt.Errorf("repository %s: introduction %q: every repository is pinned by the 64-hex-digit id of its first root record", r.Name, r.Introduction)
	}
	return nil
}

// ServerProject is the project of a command given a server rather than
// a cairn.yaml (cairn why --url, cairn policy check --url): the one
// repository r (read by the light client unless r.Light says false), the
// packages wanted, and the policy file (relative to dir, or ""). It
// targets no platform: its plan chooses no artifacts. Nothing of it is
// written: it has no lock.
func ServerProject(dir string, r Repository, wants []Want, policyFile string) (*Project, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	p := &Project{Dir: dir, Repositories: []Repository{r}, Policy: policyFile}
	if filepath.IsAbs(policyFile) {
		p.Dir, p.Policy = filepath.Split(policyFile)
	}
	for _, w := range wants {
		if err := descriptor.CheckName(w.Name); err != nil {
			return nil, fmt.Errorf("package %s: %w", w.Name, err)
		}
		if w.Range == "" && w.Ref == nil {
			w.Range = "*"
		}
		if w.From == "" {
			w.From = "the command line"
		}
		if w.Range != "" {
			if _, err := parseRange(w.Range); err != nil {
				return nil, fmt.Errorf("package %s: range %q: %v", w.Name, w.Range, err)
			}
		}
		p.Packages = append(p.Packages, w)
	}
	sort.Slice(p.Packages, func(i, j int) bool { return p.Packages[i].Name < p.Packages[j].Name })
	raw, err := yaml.Marshal(map[string]any{"repositories": p.Repositories, "packages": p.Packages, "policy": policyFile})
	if err != nil {
		return nil, err
	}
	p.Raw = raw
	return p, nil
}

// repositorySpec is an entry of cairn.yaml's repositories, with the line
// it starts at: read in the one pass over the file that decodes it.
type repositorySpec struct{ Repository }

// repositoryFields are the keys a repository entry may have: the yaml
// names of Repository's fields.
var repositoryFields = func() map[string]bool {
	fields := map[string]bool{}
	for _, name := range yamlKeys(reflect.TypeFor[Repository]()) {
		fields[name] = true
	}
	return fields
}()

// yamlKeys are the keys a YAML decoder takes for struct type t, in the
// order of its fields.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" && f.IsExported() {
			name = strings.ToLower(f.Name) // the decoder's name for an untagged field
		}
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// UnmarshalYAML decodes an entry and notes its line. A decoder's strict
// field check (KnownFields) stops at a type that decodes itself, so the
// entry's keys are checked here, with the decoder's own words; keys an
// entry takes from a merge (<<: *anchor) are checked where they are written.
func (r *repositorySpec) UnmarshalYAML(n *yaml.Node) error {
	var unknown []string
	checkRepositoryKeys(n, &unknown, 0)
	if unknown != nil {
		return &yaml.TypeError{Errors: unknown}
	}
	if err := n.Decode(&r.Repository); err != nil {
		return err
	}
	r.Line = n.Line
	return nil
}

// checkRepositoryKeys notes each key of a repository mapping that no field
// takes, following aliases and the maps a merge key brings in. Depth bounds
// a merge that (through aliases) reaches itself.
func checkRepositoryKeys(n *yaml.Node, unknown *[]string, depth int) {
	if depth > 16 {
		return
	}
	switch n.Kind {
	case yaml.AliasNode:
		checkRepositoryKeys(n.Alias, unknown, depth+1)
	case yaml.SequenceNode: // the value of a merge key may list maps
		for _, c := range n.Content {
			checkRepositoryKeys(c, unknown, depth+1)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			switch {
			case k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge":
				checkRepositoryKeys(n.Content[i+1], unknown, depth+1)
			case !repositoryFields[k.Value]:
				*unknown = append(*unknown, fmt.Sprintf("line %d: field %s not found in type plan.Repository", k.Line, k.Value)) // as the decoder says it (yamlText)
			}
		}
	}
}

func parseSnapshotRef(n *yaml.Node) (*SnapshotRef, error) {
	if n.Kind == yaml.ScalarNode {
		if err := record.CheckLabel(n.Value); err != nil {
			return nil, err
		}
		return &SnapshotRef{Label: n.Value, Name: n.Value, Line: n.Line}, nil
	}
	var ps pinSpec
	if err := n.Decode(&ps); err != nil {
		return nil, err
	}
	s := &SnapshotRef{Label: ps.Label, Name: ps.Name, Line: n.Line}
	if ps.Version != "" {
		return nil, errors.New("a snapshot has no version: give a label, or {name, sha256, size}")
	}
	if ps.SHA256 != "" || ps.Size != nil {
		ref, err := pinRef(ps)
		if err != nil {
			return nil, err
		}
		s.Ref = ref
	}
	if s.Label == "" && s.Ref == nil {
		return nil, errors.New("give a label, or {name, sha256, size}")
	}
	if s.Label != "" && s.Ref != nil {
		return nil, errors.New("give a label or a digest, not both")
	}
	if s.Label != "" {
		if err := record.CheckLabel(s.Label); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func pinRef(ps pinSpec) (*blob.Ref, error) {
	if ps.Size == nil {
		return nil, errors.New("a digest goes with its size")
	}
	ref := blob.Ref{SHA256: strings.TrimPrefix(ps.SHA256, "sha256:"), Size: *ps.Size}
	if err := ref.Check(); err != nil {
		return nil, err
	}
	return &ref, nil
}

func parseWant(name string, n *yaml.Node) (Want, error) {
	w := Want{Name: name, Line: n.Line}
	if err := descriptor.CheckName(name); err != nil {
		return w, err
	}
	if n.Kind == yaml.ScalarNode {
		if _, err := parseRange(n.Value); err != nil {
			return w, fmt.Errorf("range %q: %v", n.Value, err)
		}
		w.Range = n.Value
		return w, nil
	}
	var ps pinSpec
	if err := n.Decode(&ps); err != nil {
		return w, err
	}
	if ps.Label != "" || ps.Name != "" {
		return w, errors.New("a package is a range, or {version, sha256, size}")
	}
	if err := descriptor.CheckVersion(ps.Version); err != nil {
		return w, err
	}
	ref, err := pinRef(ps)
	if err != nil {
		return w, err
	}
	w.Version, w.Ref = ps.Version, ref
	return w, nil
}

// CheckVerified lists every input not pinned by hash: a label, a range.
// It is nil when everything is pinned.
func (p *Project) CheckVerified() error {
	var out []*LineError
	if s := p.Snapshot; s != nil && s.Ref == nil {
		out = append(out, &LineError{File: ProjectFile, Line: s.Line, Msg: fmt.Sprintf("snapshot: label %s can move; pin the snapshot as {name, sha256, size}", s.Label)})
	}
	for _, w := range p.Packages {
		if !w.Pinned() {
			out = append(out, &LineError{File: ProjectFile, Line: w.Line, Msg: fmt.Sprintf("package %s: range %q is not a pin; give {version, sha256, size}", w.Name, w.Range)})
		}
	}
	if len(out) > 0 {
		return &UnpinnedError{Offenders: out}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// yamlText is a YAML decoder's error in the words of the files it read:
// the Go types it names are the parts of cairn.yaml and of a snapshot
// file they decode.
func yamlText(err error) string {
	return yamlTypes.Replace(err.Error())
}

var yamlTypes = strings.NewReplacer(
	"type plan.projectSpec", "cairn.yaml (its keys: "+strings.Join(yamlKeys(reflect.TypeFor[projectSpec]()), ", ")+")",
	"type plan.Repository", "a repository entry (its keys: "+strings.Join(yamlKeys(reflect.TypeFor[Repository]()), ", ")+")",
	"[]plan.repositorySpec", "a list of repositories",
	"plan.repositorySpec", "a repository entry",
	"plan.projectSpec", "cairn.yaml",
	"type plan.snapshotSpec", "a snapshot file (its keys: "+strings.Join(yamlKeys(reflect.TypeFor[snapshotSpec]()), ", ")+")",
	"plan.snapshotSpec", "a snapshot file (name: NAME, then packages: a list of name@version)",
)
