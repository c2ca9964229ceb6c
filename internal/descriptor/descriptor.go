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
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/Masterminds/semver/v3"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"golang.org/x/mod/module"
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
	Go           *GoModule    `json:"go,omitempty"`
}

// GoModule is what the go command needs to know of a Go module version.
type GoModule struct {
	Module  string `json:"module"`  // the module path; equals Descriptor.Name
	Version string `json:"version"` // the Go version: "v" + Descriptor.Version
	Sum     string `json:"sum"`     // go.sum's "h1:" hash of the zip (dirhash.HashZip)
	ModSum  string `json:"mod_sum"` // go.sum's "h1:" hash of go.mod (the /go.mod line)
}

// The artifact kinds. KindGoMod is allowed only in a Go descriptor.
const (
	KindSource = "source" // the sources; a Go module's zip
	KindBinary = "binary" // a build for one platform
	KindGoMod  = "go-mod" // a Go module's go.mod
)

// Kinds lists every artifact kind.
var Kinds = []string{KindSource, KindBinary, KindGoMod}

// Dependency names another package and the versions it accepts.
type Dependency struct {
	Name    string `json:"name"`
	Version string `json:"version"` // a semver range
}

// Artifact is one file of the version.
type Artifact struct {
	Kind     string `json:"kind"` // KindSource, KindBinary or KindGoMod
	Platform string `json:"platform,omitempty"`
	File     string `json:"file"`
	blob.Ref
}

// Label names an artifact for people and --artifact flags: its platform,
// "go.mod", or "source".
func (a Artifact) Label() string {
	switch a.Kind {
	case KindBinary:
		return a.Platform
	case KindGoMod:
		return "go.mod"
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

// MaxNameLen caps a package name.
const MaxNameLen = 255

// CheckName checks a package name. A name is either a cairn name,
// "namespace/name", each part 1 to 64 of [a-z0-9._-] starting with a
// letter or digit, or a Go module path of at least two elements that
// golang.org/x/mod/module.CheckPath accepts ("example.com/greet",
// "github.com/BurntSushi/toml/v2"); at most MaxNameLen bytes either way.
// The namespace is the first element.
//
// No element after the second may itself be a version ("example.com/x/1.0.0"):
// in the index layout a name's versions are the directories beneath it,
// so such a name would read as a version of a shorter one.
func CheckName(name string) error {
	if ns, pkg, ok := strings.Cut(name, "/"); ok && namePart(ns) && namePart(pkg) {
		return nil
	}
	bad := func(why string) error {
		return invalid("package name %q: want namespace/name in lowercase letters, digits, '.', '_' and '-', or a Go module path such as example.com/greet (as a module path: %s)", name, why)
	}
	if len(name) > MaxNameLen {
		return bad(fmt.Sprintf("%d bytes, over %d", len(name), MaxNameLen))
	}
	if err := module.CheckPath(name); err != nil {
		var pe *module.InvalidPathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return bad(err.Error())
	}
	elems := strings.Split(name, "/")
	if len(elems) < 2 {
		return bad("one element")
	}
	for _, e := range elems[2:] {
		if CheckVersion(e) == nil {
			return bad(fmt.Sprintf("element %q reads as a version", e))
		}
	}
	return nil
}

// FoldName is the form in which two names are compared: names that differ
// only in case are one name to the index.
func FoldName(name string) string { return strings.ToLower(name) }

// Namespace returns a name's first element.
func Namespace(name string) string {
	ns, _, _ := strings.Cut(name, "/")
	return ns
}

const incompatible = "+incompatible"

// CheckVersion checks a version: strict semver (major.minor.patch, an
// optional pre-release) without a leading v, the Go version without its
// "v". The only build metadata allowed is "+incompatible" on a major
// version of 2 or more, as the go command writes it.
func CheckVersion(v string) error {
	base, inc := strings.CutSuffix(v, incompatible)
	if !modsemver.IsValid("v"+base) || modsemver.Canonical("v"+base) != "v"+base ||
		inc && (strings.Contains(base, "+") || modsemver.Major("v"+base) == "v0" || modsemver.Major("v"+base) == "v1") {
		return invalid("version %q: want strict semver such as 1.2.3 (no build metadata but +incompatible)", v)
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
	if d.Go != nil {
		if err := d.checkGo(); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, a := range d.Artifacts {
		switch {
		case a.Kind == KindSource && a.Platform == "":
		case a.Kind == KindBinary && isPlatform(a.Platform):
		case a.Kind == KindGoMod && a.Platform == "" && d.Go != nil:
		default:
			return invalid("artifact %q: kind must be source (no platform) or binary with a platform such as linux-amd64 (go-mod only in a Go module's descriptor)", a.File)
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

// checkGo checks a Go module version's descriptor: the module and version
// agree with the name and version, the h1 hashes are well formed, and the
// artifacts are exactly the zip and the go.mod.
func (d *Descriptor) checkGo() error {
	g := d.Go
	if g.Module != d.Name || g.Version != "v"+d.Version {
		return invalid("%s@%s: go module %s@%s, want %s@v%s", d.Name, d.Version, g.Module, g.Version, d.Name, d.Version)
	}
	if err := module.Check(g.Module, g.Version); err != nil {
		return invalid("%s@%s: not a Go module version: %v", d.Name, d.Version, err)
	}
	if !isH1(g.Sum) || !isH1(g.ModSum) {
		return invalid("%s@%s: go sums %q and %q: want h1: and the base64 of 32 bytes, as go.sum has them", d.Name, d.Version, g.Sum, g.ModSum)
	}
	if len(d.Dependencies) != 0 {
		return invalid("%s@%s: a Go module lists no dependencies (the go command reads them from go.mod)", d.Name, d.Version)
	}
	want := []Artifact{{Kind: KindSource, File: g.Version + ".zip"}, {Kind: KindGoMod, File: g.Version + ".mod"}}
	ok := len(d.Artifacts) == len(want)
	for i := 0; ok && i < len(want); i++ {
		a := d.Artifacts[i]
		ok = a.Kind == want[i].Kind && a.Platform == "" && a.File == want[i].File
	}
	if !ok {
		return invalid("%s@%s: a Go module has exactly two artifacts: source %s then go-mod %s", d.Name, d.Version, want[0].File, want[1].File)
	}
	return nil
}

// isH1 reports whether s is a go.sum hash: "h1:" and the standard base64
// of 32 bytes.
func isH1(s string) bool {
	b64, ok := strings.CutPrefix(s, "h1:")
	if !ok || len(b64) != 44 {
		return false
	}
	b, err := base64.StdEncoding.Strict().DecodeString(b64)
	return err == nil && len(b) == 32
}

// Marshal encodes the descriptor deterministically.
func (d *Descriptor) Marshal() ([]byte, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	return append(appendIndented(nil, d), '\n'), nil
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
	if err := d.Check(); err != nil {
		return nil, err
	}
	if !isCanonical(&d, data) {
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
