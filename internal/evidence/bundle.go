// Package evidence makes and checks cairn's evidence bundles: one file
// that proves, with no network and no repository, which bytes a build
// plan (cairn.lock) pins and who vouched for each, judged by the
// project's policy (docs/evidence.md).
//
// A bundle holds the project, its lock and policy, what a light client
// read of each repository (the checkpoint, tiles and subject documents,
// by their paths under the repository's URL), the blobs the lock names,
// and an offline proof of each record. Make records a light client's
// reads as it opens the project and checks the lock; Verify replays them
// to a light client whose only network is the bundle (Replay), so that
// the bundle is checked by exactly the code that checks a server.
package evidence

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	kgzip "github.com/klauspost/compress/gzip"

	"cairn.dev/cairn/internal/policy"
)

// Format and Version name the bundle format this package reads and
// writes (docs/evidence.md).
const (
	Format  = "cairn-evidence"
	Version = 1
)

// Limits a reader keeps (docs/evidence.md, The file).
const (
	MaxManifest = 64 << 20
	MaxMembers  = 1_000_000
	MaxPath     = 512
	// DefaultMaxSize is the default bound on a bundle's members' sizes
	// added up.
	DefaultMaxSize int64 = 4 << 30
)

// ManifestName is the bundle's first member.
const ManifestName = "evidence.json"

// SBOMName is the member that holds the lock's SBOM, a CycloneDX 1.6
// document (internal/sbom).
const SBOMName = "sbom.cdx.json"

// ErrMalformed is the parent of the errors about a bundle's file itself:
// not a bundle of this format, truncated, a member unlisted, missing or
// altered, a path or size out of bounds.
var ErrMalformed = errors.New("malformed evidence bundle")

// Manifest is evidence.json (docs/evidence.md, The manifest).
type Manifest struct {
	Format       string            `json:"format"`
	Version      int               `json:"version"`
	Created      time.Time         `json:"created"`
	MadeBy       string            `json:"made_by"`
	Policy       string            `json:"policy,omitempty"`
	JudgedAt     time.Time         `json:"judged_at"`
	Repositories []Repository      `json:"repositories"`
	Verdicts     []*policy.Verdict `json:"verdicts"`
	Members      []Member          `json:"members"`
}

// Repository is a repository of the project as the bundle holds it: its
// reads are under repos/<its position>/.
type Repository struct {
	Name         string `json:"name"`
	URL          string `json:"url"`
	Introduction string `json:"introduction"`
	// CheckpointKeys is, for each checkpoint path read (log/checkpoint,
	// upstreams/UP/log/checkpoint), the key id the server named in its
	// Cairn-Checkpoint-Key header: a hint, never trusted.
	CheckpointKeys map[string]string `json:"checkpoint_keys,omitempty"`
}

// Member is a member of the bundle other than the manifest.
type Member struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Bundle is a bundle's content, read and checked against its manifest.
type Bundle struct {
	Manifest Manifest
	Files    map[string][]byte // every member but the manifest, by path
}

// checkPath refuses a member path that is not clean and relative.
func checkPath(p string) error {
	switch {
	case p == "" || len(p) > MaxPath:
		return fmt.Errorf("member path %q: empty or longer than %d bytes", p, MaxPath)
	case strings.ContainsAny(p, "\\\x00") || strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return fmt.Errorf("member path %q: a backslash or a control character", p)
	case path.IsAbs(p) || path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == "..":
		return fmt.Errorf("member path %q: not a clean relative path", p)
	}
	return nil
}

// Write writes a bundle: the manifest m (its Members filled in here, in
// the order of names) then each file. It writes the whole bundle to w.
func Write(w io.Writer, m Manifest, names []string, files map[string][]byte) error {
	m.Format, m.Version = Format, Version
	m.Members = m.Members[:0]
	for _, n := range names {
		if err := checkPath(n); err != nil {
			return err
		}
		if n == ManifestName {
			return fmt.Errorf("member path %q is the manifest's", n)
		}
		data, ok := files[n]
		if !ok {
			return fmt.Errorf("member %s: no content", n)
		}
		sum := sha256.Sum256(data)
		m.Members = append(m.Members, Member{Path: n, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	}
	manifest, err := jsonv2.Marshal(m, jsontext.WithIndent("  "), jsontext.EscapeForHTML(false))
	if err != nil {
		return fmt.Errorf("the bundle's manifest: %w", err)
	}
	manifest = append(manifest, '\n')
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	put := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: m.Created.Truncate(time.Second), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put(ManifestName, manifest); err != nil {
		return err
	}
	for _, n := range names {
		if err := put(n, files[n]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// Read reads a bundle from r and checks its file against its manifest
// (docs/evidence.md, The file): the manifest first, every member listed
// in order with its size and SHA-256, nothing else, no more than maxSize
// bytes of members in all (0: DefaultMaxSize). Every refusal wraps
// ErrMalformed and names the member.
func Read(r io.Reader, maxSize int64) (*Bundle, error) {
	return read(r, maxSize, nil)
}

// read is Read, calling each (when not nil) with every member as soon as
// it is read and its size and SHA-256 checked against the manifest, in
// the file's order, so that the caller can start on it while the rest is
// read. A member each was called with is not yet a bundle's: read may
// still refuse the file.
func read(r io.Reader, maxSize int64, each func(path string, data []byte)) (*Bundle, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	size := int64(-1) // the file's, when r can tell
	switch f := r.(type) {
	case interface{ Size() int64 }:
		size = f.Size()
	case interface{ Stat() (os.FileInfo, error) }:
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
	}
	cr := &countReader{r: r}
	var out int64 // bytes decompressed
	br := bufio.NewReader(cr)
	// klauspost's inflate reads the same streams as compress/gzip's
	// (the same checksum and length checks, the same refusals), about
	// twice as fast; the bundle is written by compress/gzip.
	zr, err := kgzip.NewReader(br)
	if err != nil {
		return nil, bad("not a gzip file: %v", err)
	}
	zr.Multistream(false)
	tr := tar.NewReader(zr)
	hdr, err := tr.Next()
	if err != nil {
		return nil, bad("no first member: %v", err)
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg {
		return nil, bad("its first member is %q, not the manifest %s", hdr.Name, ManifestName)
	}
	if hdr.Size > MaxManifest {
		return nil, bad("the manifest is %d bytes, more than %d", hdr.Size, MaxManifest)
	}
	raw, err := io.ReadAll(tr)
	if err != nil {
		return nil, bad("reading the manifest: %v", err)
	}
	b := &Bundle{Files: map[string][]byte{}}
	if err := jsonv2.Unmarshal(raw, &b.Manifest, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, bad("the manifest: %v", err)
	}
	m := &b.Manifest
	if m.Format != Format || m.Version != Version {
		return nil, bad("the manifest says format %q version %d: this cairn reads %s version %d", m.Format, m.Version, Format, Version)
	}
	if len(m.Members) > MaxMembers {
		return nil, bad("the manifest lists %d members, more than %d", len(m.Members), MaxMembers)
	}
	var total int64
	listed := map[string]bool{}
	for _, mem := range m.Members {
		if err := checkPath(mem.Path); err != nil {
			return nil, bad("the manifest: %v", err)
		}
		if mem.Path == ManifestName || listed[mem.Path] {
			return nil, bad("the manifest lists %s twice", mem.Path)
		}
		listed[mem.Path] = true
		if mem.Size < 0 || len(mem.SHA256) != 64 {
			return nil, bad("the manifest's entry for %s: size %d, sha256 %q", mem.Path, mem.Size, mem.SHA256)
		}
		if total += mem.Size; total > maxSize {
			return nil, bad("its members add up to more than %d bytes (--max-size)", maxSize)
		}
	}
	if size >= 0 && total > maxInflate+maxRatio*size {
		return nil, bad("its manifest lists %d bytes of members in a %d-byte file, more than %d times its size: refused as a decompression bomb", total, size, maxRatio)
	}
	for i, mem := range m.Members {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, bad("it ends before member %d, %s, that its manifest lists (truncated?)", i+1, mem.Path)
		}
		if err != nil {
			return nil, bad("member %d (%s): %v (truncated?)", i+1, mem.Path, err)
		}
		if hdr.Name != mem.Path {
			return nil, bad("member %d is %q, the manifest lists %s there", i+1, hdr.Name, mem.Path)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, bad("member %s is not a regular file", hdr.Name)
		}
		if hdr.Size != mem.Size {
			return nil, bad("member %s is %d bytes, the manifest says %d", hdr.Name, hdr.Size, mem.Size)
		}
		// Read as the compressed bytes come, so that a member that
		// decompresses far beyond them (a bomb) is refused before it
		// is held.
		var chunks [][]byte
		for got := int64(0); got < mem.Size; {
			chunk := make([]byte, min(mem.Size-got, 1<<20))
			n, err := io.ReadFull(tr, chunk)
			if err != nil {
				return nil, bad("member %s: %v (truncated?)", hdr.Name, err)
			}
			chunks, got = append(chunks, chunk), got+int64(n)
			if out += int64(n); out > maxInflate+maxRatio*cr.n {
				return nil, bad("member %s: the bundle decompresses to more than %d times its size: refused as a decompression bomb", hdr.Name, maxRatio)
			}
		}
		var data []byte
		switch len(chunks) {
		case 0:
			data = []byte{}
		case 1:
			data = chunks[0] // most members: no copy
		default:
			data = slices.Concat(chunks...)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != mem.SHA256 {
			return nil, bad("member %s: its sha256 is %x, the manifest says %s", hdr.Name, sum, mem.SHA256)
		}
		b.Files[mem.Path] = data
		if each != nil {
			each(mem.Path, data)
		}
	}
	if hdr, err := tr.Next(); err != io.EOF {
		if err == nil {
			return nil, bad("member %q is not in the manifest", hdr.Name)
		}
		return nil, bad("after the last member: %v (truncated?)", err)
	}
	// The tar's end, then nothing but its zero padding to gzip's end,
	// whose checksum and length gzip checks.
	rest, err := io.ReadAll(io.LimitReader(zr, 1<<20))
	if err != nil {
		return nil, bad("after the archive: %v (truncated?)", err)
	}
	if len(rest) >= 1<<20 || bytes.ContainsFunc(rest, func(r rune) bool { return r != 0 }) {
		return nil, bad("something other than zero blocks follows the archive's end")
	}
	if _, err := br.Peek(1); err != io.EOF {
		return nil, bad("bytes follow the gzip stream")
	}
	return b, nil
}

// A reader refuses a bundle that decompresses to more than maxRatio times
// the compressed bytes it read, plus maxInflate: JSON and tiles compress
// a few times, artifacts hardly; a member of zeros a thousand times.
const (
	maxRatio   = 64
	maxInflate = 16 << 20
)

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Has reports whether the bundle holds a member.
func (b *Bundle) Has(name string) bool {
	_, ok := b.Files[name]
	return ok
}

// member is a member's content or an error naming it.
func (b *Bundle) member(name string) ([]byte, error) {
	data, ok := b.Files[name]
	if !ok {
		return nil, fmt.Errorf("%w: it holds no %s", ErrMalformed, name)
	}
	return data, nil
}
