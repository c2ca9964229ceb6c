// Package gomod makes Go module versions into cairn package versions.
//
// A Go module version is a cairn version named by its module path
// (example.com/greet@1.0.0, the Go version without its "v"). Its
// descriptor pins two artifacts — the module zip, made exactly as the go
// command makes it (golang.org/x/mod/zip), and go.mod's bytes — and
// carries go.sum's "h1:" hashes of both (descriptor.GoModule), so that the
// go command accepts what cairn serves. Build makes one from a directory
// (cairn publish --go); Import brings one from an upstream GOPROXY after
// the checksum database the go command would use vouched for it (cairn
// import go), keeping that database's evidence. CheckSums is the one check
// that bytes hash to a descriptor's h1 sums: publish, import and the
// server all ask it.
//
// The package does no serving and parses no flags: it reads directories,
// asks a GOPROXY and a checksum database over the *http.Client it is
// given, and writes temporary files its caller closes.
package gomod

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
)

// ErrSumMismatch is the parent of SumError.
var ErrSumMismatch = errors.New("go module does not match its h1 hash")

// SumError is a security error: a module's zip or go.mod whose bytes do
// not hash to the go.sum "h1:" hash they must. It carries the evidence:
// both hashes, and who said what the hash must be.
type SumError struct {
	Module  string // the module path
	Version string // the Go version ("v1.2.3")
	File    string // "zip" or "go.mod"
	Want    string // the h1 hash the bytes must have
	Got     string // the h1 hash the bytes have
	By      string // who says Want: "the descriptor", "checksum database sum.golang.org"
}

func (e *SumError) Error() string {
	return fmt.Sprintf("SECURITY ERROR: %s@%s: the %s hashes to %s, but %s says %s", e.Module, e.Version, e.File, e.Got, e.By, e.Want)
}

func (e *SumError) Unwrap() error { return ErrSumMismatch }

// Module is a Go module version ready to publish: its descriptor, with
// every member but the uuid (which the index gives: the one earlier
// versions of the module have), and its two files. Close removes the zip
// when it is a temporary file.
type Module struct {
	Descriptor *descriptor.Descriptor
	Zip        string // the module zip's path
	Mod        []byte // go.mod's bytes
	// Released is when the upstream says the version was made (its
	// .info Time), for a module imported; zero otherwise.
	Released time.Time
	tmp      string // a temporary directory Close removes, or ""
}

// Close removes the module's temporary files.
func (m *Module) Close() error {
	if m == nil || m.tmp == "" {
		return nil
	}
	err := os.RemoveAll(m.tmp)
	m.tmp = ""
	return err
}

// Files maps each artifact's file name to the path of its bytes on disk,
// writing go.mod beside the zip (in the module's temporary directory).
func (m *Module) Files() (map[string]string, error) {
	dir := m.tmp
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "cairn-gomod-"); err != nil {
			return nil, err
		}
		m.tmp = dir
	}
	zipA, modA := m.Descriptor.Artifacts[0], m.Descriptor.Artifacts[1]
	modPath := filepath.Join(dir, modA.File)
	if err := os.WriteFile(modPath, m.Mod, 0o644); err != nil {
		return nil, err
	}
	return map[string]string{zipA.File: m.Zip, modA.File: modPath}, nil
}

// GoVersion turns a version as people write it (1.2.3 or v1.2.3) into a
// Go version (v1.2.3), or says why it is not one.
func GoVersion(v string) (string, error) {
	gv := "v" + strings.TrimPrefix(v, "v")
	c := semver.Canonical(gv)
	if c == "" || (c != gv && c+"+incompatible" != gv) {
		return "", fmt.Errorf("version %q: want a full semantic version such as v1.2.3 (or 1.2.3)", v)
	}
	if err := descriptor.CheckVersion(strings.TrimPrefix(gv, "v")); err != nil { // e.g. a number too large for cairn's semver
		return "", fmt.Errorf("version %q: %w", v, err)
	}
	return gv, nil
}

// Build makes the module in dir into a version: go.mod names the module,
// the zip is made as the go command makes it (files the go command
// leaves out — vendor directories, nested modules, VCS directories — are
// left out), and the h1 hashes are those go.sum would record. version is
// the Go version, with or without its "v"; a version the module path does
// not allow (v2 and later need a /v2 path) is refused with a hint.
func Build(dir, version string) (_ *Module, err error) {
	gv, err := GoVersion(version)
	if err != nil {
		return nil, err
	}
	modBytes, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return nil, fmt.Errorf("reading the module's go.mod: %w (a Go module directory has one: go mod init MODULEPATH)", err)
	}
	parsed, err := modfile.ParseLax("go.mod", modBytes, nil)
	if err != nil {
		return nil, fmt.Errorf("%s does not parse as the go command reads it: %w (every build that needs this version would fail, and a published version is never replaced: fix it, go mod tidy)", filepath.Join(dir, "go.mod"), err)
	}
	path := modulePath(parsed)
	if path == "" {
		return nil, fmt.Errorf("%s: no module directive: the module path names the package (module example.com/greet)", filepath.Join(dir, "go.mod"))
	}
	if strings.HasSuffix(gv, "+incompatible") {
		return nil, fmt.Errorf("%s@%s: a module with a go.mod cannot have a +incompatible version: the go command refuses it; name the major version in the module path (%s/%s)", path, gv, path, semver.Major(gv))
	}
	if err := module.Check(path, gv); err != nil {
		if hint := majorHint(path, gv); hint != "" {
			return nil, fmt.Errorf("%w (%s)", err, hint)
		}
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "cairn-gomod-")
	if err != nil {
		return nil, err
	}
	m := &Module{Mod: modBytes, tmp: tmp}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	m.Zip = filepath.Join(tmp, gv+".zip")
	f, err := os.Create(m.Zip)
	if err != nil {
		return nil, err
	}
	mv := module.Version{Path: path, Version: gv}
	if err := modzip.CreateFromDir(f, mv, dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("making the module zip of %s from %s: %w", mv, dir, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if m.Descriptor, err = newDescriptor(mv, m.Zip, modBytes); err != nil {
		return nil, err
	}
	return m, nil
}

// newDescriptor is the descriptor of module version mv with this zip and
// go.mod (its uuid left for the index).
func newDescriptor(mv module.Version, zipPath string, mod []byte) (*descriptor.Descriptor, error) {
	sum, err := dirhash.HashZip(zipPath, dirhash.Hash1)
	if err != nil {
		return nil, fmt.Errorf("hashing the module zip of %s: %w", mv, err)
	}
	modSum, err := ModSum(mod)
	if err != nil {
		return nil, err
	}
	zf, err := os.Open(zipPath)
	if err != nil {
		return nil, err
	}
	zipRef, err := blob.Digest(zf)
	zf.Close()
	if err != nil {
		return nil, err
	}
	return &descriptor.Descriptor{
		Schema:  descriptor.Schema,
		Name:    mv.Path,
		Version: strings.TrimPrefix(mv.Version, "v"),
		Artifacts: []descriptor.Artifact{
			{Kind: descriptor.KindSource, File: mv.Version + ".zip", Ref: zipRef},
			{Kind: descriptor.KindGoMod, File: mv.Version + ".mod", Ref: blob.DigestBytes(mod)},
		},
		Go: &descriptor.GoModule{Module: mv.Path, Version: mv.Version, Sum: sum, ModSum: modSum},
	}, nil
}

// ModSum is go.sum's h1 hash of a go.mod (its "/go.mod" line), as the go
// command computes it: dirhash.Hash1 over the one file "go.mod".
func ModSum(mod []byte) (string, error) {
	return dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(mod)), nil
	})
}

// CheckSums checks that a Go module's zip (the file at zipPath) and
// go.mod (mod) hash to the h1 hashes its descriptor carries: a
// *SumError, with both hashes, if not. An empty zipPath or a nil mod is
// not checked: a server checks the files it holds.
func CheckSums(d *descriptor.Descriptor, zipPath string, mod []byte) error {
	return checkSums(d, zipPath, mod, "the descriptor")
}

// CheckFiles checks a Go module's zip (the file at zipPath) and go.mod
// (mod) as the go command would take them for the descriptor's
// module@version: their h1 hashes (CheckSums), the zip a module zip of
// that module@version (golang.org/x/mod/zip.CheckZip: every file under
// module@version/, none the go command refuses), and go.mod declaring
// that module path. Hashes the pusher computed over another module's
// files match; these checks do not. An empty zipPath or a nil mod is not
// checked. Publish, import, push and serving all run it.
func CheckFiles(d *descriptor.Descriptor, zipPath string, mod []byte) error {
	if err := CheckSums(d, zipPath, mod); err != nil {
		return err
	}
	mv := module.Version{Path: d.Go.Module, Version: d.Go.Version}
	if mod != nil {
		if err := checkGoMod(mv, mod); err != nil {
			return err
		}
	}
	if zipPath != "" {
		if _, err := modzip.CheckZip(mv, zipPath); err != nil {
			return fmt.Errorf("%s: the zip is not a module zip of %s: %w (%w)", mv, mv, err, ErrNotModule)
		}
	}
	return nil
}

// majorHint says how a module path and a version whose major versions
// disagree can agree: "" when they do not disagree (the path itself is
// wrong).
func majorHint(path, gv string) string {
	prefix, pathMajor, ok := module.SplitPathVersion(path)
	major := semver.Major(gv)
	switch {
	case !ok || major == "" || module.CheckPath(path) != nil:
		return ""
	case pathMajor == "":
		return fmt.Sprintf("a module's major version v2 or later is part of its path: module %s/%s in go.mod, or a v0 or v1 version", path, major)
	case strings.HasPrefix(pathMajor, "."): // gopkg.in/NAME.vN
		return fmt.Sprintf("the path %s names major version %s: publish a %s version, or module %s.%s in go.mod", path, pathMajor[1:], pathMajor[1:], prefix, major)
	case major == "v0" || major == "v1":
		return fmt.Sprintf("the path %s names major version %s: publish a %s version, or module %s (no major version in the path) for a v0 or v1 version", path, pathMajor[1:], pathMajor[1:], prefix)
	}
	return fmt.Sprintf("the path %s names major version %s: publish a %s version, or module %s/%s in go.mod", path, pathMajor[1:], pathMajor[1:], prefix, major)
}

// checkGoMod checks go.mod as the go command reads a dependency's
// (modfile.ParseLax: a syntax error fails every build that needs the
// version, and a published version is never replaced) and that it
// declares mv's module path.
func checkGoMod(mv module.Version, mod []byte) error {
	f, err := modfile.ParseLax("go.mod", mod, nil)
	if err != nil {
		return fmt.Errorf("%s: go.mod does not parse as the go command reads it: %w (%w)", mv, err, ErrNotModule)
	}
	if mp := modulePath(f); mp != mv.Path {
		return fmt.Errorf("%s: go.mod declares module %q, not %s: the go command refuses it (%w)", mv, mp, mv.Path, ErrNotModule)
	}
	return nil
}

func modulePath(f *modfile.File) string {
	if f.Module == nil {
		return ""
	}
	return f.Module.Mod.Path
}

// ErrNotModule is the parent of CheckFiles' errors for files that are
// not the module version's (another module's zip or go.mod).
var ErrNotModule = errors.New("go module files are not the descriptor's module version")

func checkSums(d *descriptor.Descriptor, zipPath string, mod []byte, by string) error {
	if d.Go == nil {
		return fmt.Errorf("%s is not a Go module version: its descriptor has no go member", d.ID())
	}
	if mod != nil {
		got, err := ModSum(mod)
		if err != nil {
			return err
		}
		if got != d.Go.ModSum {
			return &SumError{Module: d.Go.Module, Version: d.Go.Version, File: "go.mod", Want: d.Go.ModSum, Got: got, By: by}
		}
	}
	if zipPath != "" {
		got, err := dirhash.HashZip(zipPath, dirhash.Hash1)
		if err != nil {
			return fmt.Errorf("hashing the module zip of %s@%s: %w (not a zip file?)", d.Go.Module, d.Go.Version, err)
		}
		if got != d.Go.Sum {
			return &SumError{Module: d.Go.Module, Version: d.Go.Version, File: "zip", Want: d.Go.Sum, Got: got, By: by}
		}
	}
	return nil
}
