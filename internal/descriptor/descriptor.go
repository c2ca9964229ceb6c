// Package descriptor holds a package version's descriptor and the
// manifest (cairn-package.yaml) a publisher writes to make one.
//
// A descriptor names one version of one package: its name, semver
// version, the uuid shared by every version of the package, metadata,
// dependencies and artifacts, each artifact by digest and size. It is
// stored as a blob and in the index; its sha256 is the version's identity,
// so Marshal is deterministic.
package descriptor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/google/uuid"
	modsemver "golang.org/x/mod/semver"

	"cairn.dev/cairn/internal/blob"
)

// MaxSize caps a descriptor.
const MaxSize = 64 << 10

// Schema is the descriptor's schema id.
const Schema = "https://cairn.dev/descriptor/v1"

// ErrInvalid is the parent of every descriptor and manifest error.
var ErrInvalid = errors.New("invalid package metadata")

// invalidError is a descriptor or manifest error: what was invalid, and why.
type invalidError struct{ what, why string }

func (e *invalidError) Error() string { return e.what + ": " + e.why }
func (e *invalidError) Unwrap() error { return ErrInvalid }

// Descriptor describes one package version.
type Descriptor struct {
	Schema       string       `json:"schema"`
	Name         string       `json:"name"`
	Version      string       `json:"version"`
	UUID         string       `json:"uuid"`
	Summary      string       `json:"summary,omitempty"`
	License      string       `json:"license,omitempty"`
	Dependencies []Dependency `json:"dependencies,omitempty"`
	Artifacts    []Artifact   `json:"artifacts"`
}

// Dependency names another package and the versions it accepts.
type Dependency struct {
	Name    string `json:"name"`
	Version string `json:"version"` // a semver range
}

// Artifact is one file of the version.
type Artifact struct {
	Kind     string `json:"kind"` // "source" or "binary"
	Platform string `json:"platform,omitempty"`
	File     string `json:"file"`
	blob.Ref
}

// Label names an artifact for people and --artifact flags: its platform,
// or "source".
func (a Artifact) Label() string {
	if a.Kind == "binary" {
		return a.Platform
	}
	return "source"
}

// A platform is at most 64 bytes, a file name at most 200. The lengths are
// checked apart: a regexp's bounded repetition ({0,199}) compiles into as
// many copies of its class, which every cairn command paid for at start.
var (
	platformRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	fileRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
)

func isPlatform(s string) bool { return len(s) <= 64 && platformRE.MatchString(s) }

func isFileName(s string) bool { return len(s) <= 200 && fileRE.MatchString(s) }

func invalid(format string, args ...any) error {
	return &invalidError{"invalid descriptor", fmt.Sprintf(format, args...)}
}

// CheckName checks a package name: "namespace/name", each part 1 to 64
// of [a-z0-9._-] starting with a letter or digit.
func CheckName(name string) error {
	ns, pkg, ok := strings.Cut(name, "/")
	if !ok || !namePart(ns) || !namePart(pkg) {
		return invalid("package name %q: want namespace/name in lowercase letters, digits, '.', '_' and '-'", name)
	}
	return nil
}

// CheckVersion checks a version: strict semver (major.minor.patch, an
// optional pre-release, no build metadata) without a leading v.
func CheckVersion(v string) error {
	if !modsemver.IsValid("v"+v) || modsemver.Canonical("v"+v) != "v"+v {
		return invalid("version %q: want strict semver such as 1.2.3", v)
	}
	return nil
}

// Check checks every field.
func (d *Descriptor) Check() error {
	if d.Schema != Schema {
		return invalid("schema %q, want %q", d.Schema, Schema)
	}
	if err := CheckName(d.Name); err != nil {
		return err
	}
	if err := CheckVersion(d.Version); err != nil {
		return err
	}
	if u, err := uuid.Parse(d.UUID); err != nil || u.String() != d.UUID {
		return invalid("uuid %q: want a lowercase RFC 4122 uuid", d.UUID)
	}
	if len(d.Summary) > 1024 || len(d.License) > 256 {
		return invalid("summary or license too long")
	}
	seenDep := map[string]bool{}
	for _, dep := range d.Dependencies {
		if err := CheckName(dep.Name); err != nil {
			return err
		}
		if _, err := semver.NewConstraint(dep.Version); err != nil {
			return invalid("dependency %s: range %q: %v", dep.Name, dep.Version, err)
		}
		if seenDep[dep.Name] || dep.Name == d.Name {
			return invalid("dependency %s listed twice or on itself", dep.Name)
		}
		seenDep[dep.Name] = true
	}
	if len(d.Artifacts) == 0 {
		return invalid("%s@%s has no artifacts", d.Name, d.Version)
	}
	seen := map[string]bool{}
	for _, a := range d.Artifacts {
		switch {
		case a.Kind == "source" && a.Platform == "":
		case a.Kind == "binary" && isPlatform(a.Platform):
		default:
			return invalid("artifact %q: kind must be source (no platform) or binary with a platform such as linux-amd64", a.File)
		}
		if !isFileName(a.File) {
			return invalid("artifact file name %q: a plain file name, no directories", a.File)
		}
		if err := a.Ref.Check(); err != nil {
			return invalid("artifact %s: %v", a.File, err)
		}
		if seen[a.Label()] || seen["file:"+a.File] {
			return invalid("artifact %s: two artifacts for %s or the same file name", a.File, a.Label())
		}
		seen[a.Label()], seen["file:"+a.File] = true, true
	}
	return nil
}

// Marshal encodes the descriptor deterministically.
func (d *Descriptor) Marshal() ([]byte, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes and checks a descriptor. It must be exactly the bytes
// Marshal writes, so that one version has one descriptor digest.
func Parse(data []byte) (*Descriptor, error) {
	if len(data) > MaxSize {
		return nil, invalid("descriptor is %d bytes, over the %d-byte cap", len(data), MaxSize)
	}
	var d Descriptor
	if err := jsonv2.Unmarshal(data, &d, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, invalid("not a descriptor: %v", err)
	}
	again, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, data) {
		return nil, invalid("%s@%s: descriptor is not in canonical form", d.Name, d.Version)
	}
	return &d, nil
}

func namePart(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ID returns "name@version".
func (d *Descriptor) ID() string { return d.Name + "@" + d.Version }

// Artifact finds an artifact by label (platform or "source") or file name.
func (d *Descriptor) Artifact(sel string) (Artifact, bool) {
	for _, a := range d.Artifacts {
		if a.Label() == sel || a.File == sel {
			return a, true
		}
	}
	return Artifact{}, false
}

// SplitID splits "name@version" (version may be empty).
func SplitID(s string) (name, version string) {
	name, version, _ = strings.Cut(s, "@")
	return name, version
}
