// Package indextest builds real indexes for the tests of the packages
// that read them (plan, policy, install): a git repository in a
// temporary directory with its root, a publisher, a security team and a
// curator, and packages whose artifacts are real gzipped tarballs.
// Package servertest serves such an index over HTTP.
package indextest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// World is an index and the keys that act on it.
type World struct {
	T     testing.TB
	Ctx   context.Context
	Repo  *index.Repo
	Dir   string
	Intro string

	Root, Publisher, Security, Curator keys.Signer
	Checkpointer                       keys.Signer // signs a server's checkpoints, once servertest.Serve granted it
}

// NewSigner makes a fresh ed25519 key.
func NewSigner() keys.Signer {
	_, priv, _ := ed25519.GenerateKey(nil)
	return keys.NewSigner(priv)
}

// New makes an index in a temporary directory. The publisher ("alice")
// may publish acme/*; the security team ("acme-security") may certify
// audited, vulnerable and fixed; the curator ("curators") may create
// snapshots and move every label.
func New(t testing.TB) *World {
	t.Helper()
	w := &World{T: t, Ctx: context.Background(), Dir: filepath.Join(t.TempDir(), "repo"),
		Root: NewSigner(), Publisher: NewSigner(), Security: NewSigner(), Curator: NewSigner()}
	r, intro, err := index.Init(w.Ctx, w.Dir, []keys.Signer{w.Root}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w.Repo, w.Intro = r, intro.ID
	w.Grant(w.Publisher, "alice", "publish:acme/*")
	w.Grant(w.Security, "acme-security", "certify:audited", "certify:vulnerable", "certify:fixed", "certify:tested")
	w.Grant(w.Curator, "curators", "snapshot", "label:*")
	return w
}

// Grant grants s scopes under holder.
func (w *World) Grant(s keys.Signer, holder string, scopes ...string) {
	w.T.Helper()
	if _, err := author.Grant(w.Ctx, w.Repo, author.KeyGrant{Key: s.Public(), Holder: holder, Scopes: scopes}, w.Root); err != nil {
		w.T.Fatal(err)
	}
}

// Package is a version to publish: its dependencies (name → range) and
// the files of its archives.
type Package struct {
	Name, Version string
	Deps          map[string]string
	Files         map[string]string // path in the archive → content; default: a README and bin/NAME
	Platforms     []string          // binary artifacts; default: linux-amd64
	Binary        []byte            // the binary artifacts' bytes, instead of a tarball of Files
	BinaryFile    string            // their file name (default PLATFORM.tar.gz)
}

// Publish publishes p, signed by the publisher.
func (w *World) Publish(p Package) *author.Published {
	w.T.Helper()
	dir := w.T.TempDir()
	files := p.Files
	if files == nil {
		base := p.Name[strings.IndexByte(p.Name, '/')+1:]
		files = map[string]string{"README": p.Name + " " + p.Version + "\n", "bin/" + base: "#!/bin/sh\necho " + p.Name + "@" + p.Version + "\n"}
	}
	platforms := p.Platforms
	if platforms == nil {
		platforms = []string{"linux-amd64"}
	}
	var m strings.Builder
	fmt.Fprintf(&m, "name: %s\nversion: %s\nsummary: test package\nlicense: MIT\n", p.Name, p.Version)
	if len(p.Deps) > 0 {
		m.WriteString("dependencies:\n")
		for _, n := range sortedKeys(p.Deps) {
			fmt.Fprintf(&m, "  - name: %s\n    version: %q\n", n, p.Deps[n])
		}
	}
	m.WriteString("artifacts:\n  - kind: source\n    file: src.tar.gz\n")
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			w.T.Fatal(err)
		}
	}
	write("src.tar.gz", TarGz(w.T, files, "source"))
	for _, pl := range platforms {
		file := pl + ".tar.gz"
		if p.BinaryFile != "" {
			file = pl + "-" + p.BinaryFile
		}
		fmt.Fprintf(&m, "  - kind: binary\n    platform: %s\n    file: %s\n", pl, file)
		if p.Binary != nil {
			write(file, p.Binary)
		} else {
			write(file, TarGz(w.T, files, pl))
		}
	}
	write("cairn-package.yaml", []byte(m.String()))
	pub, err := author.Publish(w.Ctx, w.Repo, dir, w.Publisher)
	if err != nil {
		w.T.Fatal(err)
	}
	return pub
}

// Certify adds a certification by the security team.
func (w *World) Certify(c author.Certification) *author.Added {
	w.T.Helper()
	a, err := author.Certify(w.Ctx, w.Repo, c, w.Security)
	if err != nil {
		w.T.Fatal(err)
	}
	return a
}

// Audit certifies name@version audited.
func (w *World) Audit(name, version string) string {
	return w.Certify(author.Certification{Name: name, Version: version, Kind: record.Audited}).Records[0]
}

// TarGz is a gzipped tarball of files (each 0644, directories implied);
// salt makes archives of the same files differ.
func TarGz(t testing.TB, files map[string]string, salt string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	gz.Comment = salt
	tw := tar.NewWriter(gz)
	for _, name := range sortedKeys(files) {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	gz.Close()
	return buf.Bytes()
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
