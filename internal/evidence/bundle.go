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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"cairn.dev/cairn/internal/policy"
)

// Format and Version name the bundle format this package writes
// (docs/evidence.md); it reads OldestVersion too. Version 3 keeps
// subject documents in the compact encoding (translog.SubjectsMedia),
// version 2 as JSON.
const (
	Format        = "cairn-evidence"
	Version       = 3
	OldestVersion = 2
)

// readable says whether a manifest's version is one this package reads.
func readable(version int) bool {
	return version >= OldestVersion && version <= Version
}

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
// the order of names) then each file, as an uncompressed tar. It writes
// the whole bundle to w. m.Version is Version if 0 (a bundle of another
// version this package reads is written as it says: its members are the
// caller's).
func Write(w io.Writer, m Manifest, names []string, files map[string][]byte) error {
	m.Format = Format
	if m.Version == 0 {
		m.Version = Version
	}
	if !readable(m.Version) {
		return fmt.Errorf("the bundle's manifest: version %d, not one of %d to %d", m.Version, OldestVersion, Version)
	}
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
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	put := func(name string, data []byte) error {
		// The format unspecified: ustar where the path fits it, else
		// pax (a path over ustar's 100+155 bytes).
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: m.Created.Truncate(time.Second), Typeflag: tar.TypeReg}
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
	return bw.Flush()
}

// Read reads a bundle from r and checks its file against its manifest
// (docs/evidence.md, The file): the manifest first, every member listed
// in order with its size and SHA-256, nothing else, no more than maxSize
// bytes of members in all (0: DefaultMaxSize). Every refusal wraps
// ErrMalformed and names the member.
func Read(r io.Reader, maxSize int64) (*Bundle, error) {
	return read(r, maxSize)
}

// tarBlock is a tar archive's block size; maxHeader bounds the blocks of
// one member's headers (a pax header for a path of up to MaxPath bytes,
// and the ustar header).
const (
	tarBlock  = 512
	maxHeader = 4 * tarBlock
	// maxTrailer bounds what may follow the archive's end: zero blocks
	// (tar tools pad an archive to a record of 20 blocks).
	maxTrailer = 1 << 20
	// readAhead bounds what of a file of known size is read while its
	// manifest is decoded, before the manifest bounds it.
	readAhead = 64 << 20
)

// read is Read. The manifest is read first, from the stream; then the
// rest of the file, no more than the manifest's members and their
// headers can take (of a file of known size, up to readAhead bytes while
// the manifest is decoded), in one buffer whose slices are the members
// (no copy of a member is made); each member's SHA-256 is checked on
// every core as the walk of the members finds it.
func read(r io.Reader, maxSize int64) (*Bundle, error) {
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
	br := bufio.NewReaderSize(cr, 64<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		return nil, bad("it is gzip-compressed, as version 1 bundles were: this cairn reads %s versions %d to %d (an uncompressed tar); make the bundle again with this cairn (cairn evidence), or verify it with a cairn that reads version 1", Format, OldestVersion, Version)
	}
	tr := tar.NewReader(br)
	hdr, err := tr.Next()
	if err != nil {
		return nil, bad("no first member: %v (not a tar archive?)", err)
	}
	if err := plainPAX(hdr); err != nil {
		return nil, bad("the manifest's header: %v", err)
	}
	if hdr.Name != ManifestName || hdr.Typeflag != tar.TypeReg {
		return nil, bad("its first member is %q, not the manifest %s", hdr.Name, ManifestName)
	}
	if hdr.Size > MaxManifest {
		return nil, bad("the manifest is %d bytes, more than %d", hdr.Size, MaxManifest)
	}
	raw := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, raw); err != nil {
		return nil, bad("reading the manifest: %v (truncated?)", err)
	}
	// The manifest's padding to its block: the tar reader has read the
	// stream up to the manifest's last byte, no further.
	if pad := (tarBlock - hdr.Size%tarBlock) % tarBlock; pad > 0 {
		zeros := make([]byte, pad)
		if _, err := io.ReadFull(br, zeros); err != nil {
			return nil, bad("after the manifest: %v (truncated?)", err)
		}
		if !allZero(zeros) {
			// Padding is zeros, as every tar writer leaves it: bytes there are
			// no member's, and no hash covers them.
			return nil, bad("the manifest's padding to its block is not zeros")
		}
	}
	b := &Bundle{}
	// The manifest is decoded while the rest of a file of known size (up
	// to readAhead bytes) is read: the members are held before the
	// manifest says how many bytes they may take, and checked against it
	// after, as if read after it.
	decoded := make(chan error, 1)
	go func() { decoded <- jsonv2.Unmarshal(raw, &b.Manifest, jsonv2.RejectUnknownMembers(true)) }()
	var ahead []byte
	var aheadErr error
	aheadRead := false
	if size >= 0 {
		if left := max(size-cr.n+int64(br.Buffered()), 0); left < readAhead {
			ahead, aheadErr = readUpTo(br, left, readAhead, 0)
			aheadRead = true
		}
	}
	if err := <-decoded; err != nil {
		var v struct {
			Format  string `json:"format"`
			Version int    `json:"version"`
		}
		if jsonv2.Unmarshal(raw, &v) == nil && v.Format == Format && !readable(v.Version) {
			return nil, bad("the manifest says format %q version %d: this cairn reads %s versions %d to %d", v.Format, v.Version, Format, OldestVersion, Version)
		}
		return nil, bad("the manifest: %v", err)
	}
	m := &b.Manifest
	if m.Format != Format || !readable(m.Version) {
		return nil, bad("the manifest says format %q version %d: this cairn reads %s versions %d to %d", m.Format, m.Version, Format, OldestVersion, Version)
	}
	if len(m.Members) > MaxMembers {
		return nil, bad("the manifest lists %d members, more than %d", len(m.Members), MaxMembers)
	}
	var total int64
	bound := int64(2*tarBlock + maxTrailer) // the rest of the file: the end's zero blocks, a trailer of zeros
	// The members by path, listed here (their bytes set once checked):
	// the map that finds a path listed twice is the bundle's.
	b.Files = make(map[string][]byte, len(m.Members))
	for _, mem := range m.Members {
		if err := checkPath(mem.Path); err != nil {
			return nil, bad("the manifest: %v", err)
		}
		if _, listed := b.Files[mem.Path]; listed || mem.Path == ManifestName {
			return nil, bad("the manifest lists %s twice", mem.Path)
		}
		b.Files[mem.Path] = nil
		if mem.Size < 0 || len(mem.SHA256) != 64 {
			return nil, bad("the manifest's entry for %s: size %d, sha256 %q", mem.Path, mem.Size, mem.SHA256)
		}
		if total += mem.Size; total > maxSize {
			return nil, bad("its members add up to more than %d bytes (--max-size)", maxSize)
		}
		bound += maxHeader + (mem.Size+tarBlock-1)/tarBlock*tarBlock
	}
	// The rest, held at once: never more than the members listed can
	// take.
	want := min(bound, 4<<20) // a stream's claims are not held ahead
	if size >= 0 {
		want = min(bound, max(size-cr.n+int64(br.Buffered()), 0))
	}
	rest, err := ahead, aheadErr
	// What the members take at least (their bytes and a header each):
	// a stream that ends before is refused before its bytes are joined.
	least := total + int64(len(m.Members))*tarBlock
	switch {
	case !aheadRead:
		rest, err = readUpTo(br, want, bound+1, least)
	case err == nil && int64(len(rest)) == readAhead && readAhead <= bound:
		// The file held more than its size said: read on, up to the
		// bound.
		var more []byte
		more, err = readUpTo(br, 0, bound+1-readAhead, 0)
		rest = append(rest, more...)
	}
	if err != nil {
		return nil, bad("reading its members: %v", err)
	}
	if int64(len(rest)) > bound {
		return nil, bad("it holds more than its manifest's %d members and their headers take (%d bytes of members)", len(m.Members), total)
	}
	// Every member's SHA-256, on every core, as the walk below finds
	// it; the first mismatch in the file's order is the one reported.
	datas := make([][]byte, len(m.Members))
	sums := make([]bool, len(datas))
	found := make(chan int, len(datas))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var digits [2 * sha256.Size]byte
			for i := range found {
				sum := sha256.Sum256(datas[i])
				hex.Encode(digits[:], sum[:])
				sums[i] = string(digits[:]) == m.Members[i].SHA256
			}
		})
	}
	err = walkMembers(rest, m.Members, datas, found)
	close(found)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	for i, mem := range m.Members {
		if !sums[i] {
			sum := sha256.Sum256(datas[i])
			return nil, bad("member %s: its sha256 is %x, the manifest says %s", mem.Path, sum, mem.SHA256)
		}
		b.Files[mem.Path] = datas[i]
	}
	return b, nil
}

// walkMembers walks an archive's members after the manifest (rest) as
// its manifest lists them (members): each member's bytes are set in
// datas, in place, and its index sent on found as soon as they are;
// then nothing but the archive's end may follow. Every refusal wraps
// ErrMalformed.
func walkMembers(rest []byte, members []Member, datas [][]byte, found chan<- int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	pos := int64(0) // of the next header in rest
	for i, mem := range members {
		if pos >= int64(len(rest)) || isZeroBlock(rest[pos:]) {
			return bad("it ends before member %d, %s, that its manifest lists (truncated?)", i+1, mem.Path)
		}
		hdr, off, err := memberAt(rest, pos, mem.Path)
		if err != nil {
			return bad("member %d (%s): %v (truncated?)", i+1, mem.Path, err)
		}
		if hdr.Name != mem.Path {
			return bad("member %d is %q, the manifest lists %s there", i+1, hdr.Name, mem.Path)
		}
		if hdr.Typeflag != tar.TypeReg {
			return bad("member %s is not a regular file", hdr.Name)
		}
		if hdr.Size != mem.Size {
			return bad("member %s is %d bytes, the manifest says %d", hdr.Name, hdr.Size, mem.Size)
		}
		// A regular member's bytes follow its header: the member is
		// that slice of the file.
		if off+mem.Size > int64(len(rest)) {
			return bad("member %s: the file ends within it (truncated?)", hdr.Name)
		}
		datas[i] = rest[off : off+mem.Size : off+mem.Size]
		pos = off + (mem.Size+tarBlock-1)/tarBlock*tarBlock
		if !allZero(rest[off+mem.Size : min(pos, int64(len(rest)))]) {
			// Padding is zeros, as every tar writer leaves it: bytes there are
			// no member's, and no hash covers them.
			return bad("member %s: its padding to its block is not zeros", hdr.Name)
		}
		found <- i
	}
	if pos < int64(len(rest)) && !isZeroBlock(rest[pos:]) {
		hdr, _, err := memberAt(rest, pos, "")
		if err != nil {
			return bad("after the last member: %v (truncated?)", err)
		}
		return bad("member %q is not in the manifest", hdr.Name)
	}
	// The last member's padding to its block, the tar's end (two zero
	// blocks, as the standard and every tar writer end it), then
	// nothing but zero blocks: a file cut anywhere in them is cut short.
	if pos > int64(len(rest)) {
		return bad("the file ends within the last member's padding (truncated?)")
	}
	tail := rest[pos:]
	if len(tail) > 2*tarBlock+maxTrailer || len(tail)%tarBlock != 0 || !allZero(tail) {
		return bad("something other than zero blocks follows the archive's end")
	}
	if len(tail) < 2*tarBlock {
		return bad("the file ends without the archive's end, two zero blocks (truncated?)")
	}
	return nil
}

// allZero reports whether b holds nothing but zero bytes.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// isZeroBlock reports whether b starts with a block of zeros (an
// archive's end) or with less than a block.
func isZeroBlock(b []byte) bool {
	if len(b) < tarBlock {
		return len(b) == 0 || !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
	}
	return !slices.ContainsFunc(b[:tarBlock], func(c byte) bool { return c != 0 })
}

// memberHeader is what a member's header says that a reader checks.
type memberHeader struct {
	Name     string
	Size     int64
	Typeflag byte
}

// memberAt reads the header of the member at pos in an archive's bytes:
// the header and the offset of the member's bytes. A plain ustar header
// of a regular file (as Write writes every member whose path fits) is
// read here, its path compared with want (the path the manifest lists
// there: a header that names it takes that string, no copy); anything
// else (pax, GNU, another type) by archive/tar.
func memberAt(archive []byte, pos int64, want string) (memberHeader, int64, error) {
	if prefix, name, size, ok := ustarRegular(archive[pos:]); ok {
		return memberHeader{Name: ustarPath(prefix, name, want), Size: size, Typeflag: tar.TypeReg}, pos + tarBlock, nil
	}
	r := bytes.NewReader(archive[pos:])
	hdr, err := tar.NewReader(r).Next()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return memberHeader{}, 0, err
	}
	if err := plainPAX(hdr); err != nil {
		return memberHeader{}, 0, err
	}
	return memberHeader{Name: hdr.Name, Size: hdr.Size, Typeflag: hdr.Typeflag}, int64(len(archive)) - int64(r.Len()), nil
}

// plainPAX refuses a header whose pax records do more than name the
// member (a GNU sparse map above all: archive/tar and tar(1) read the
// member through it, while Read slices hdr.Size bytes after the header).
func plainPAX(hdr *tar.Header) error {
	for k := range hdr.PAXRecords {
		switch k {
		case "path", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname":
		default:
			return fmt.Errorf("pax record %q: a bundle's member headers carry its path only", k)
		}
	}
	return nil
}

// ustarRegular parses a block as a POSIX ustar header of a regular file
// (typeflag '0'), its checksum right: the path's prefix and name fields
// (ustarPath) and the size. ok is false for any other block, which
// archive/tar reads.
func ustarRegular(blk []byte) (prefix, name []byte, size int64, ok bool) {
	if len(blk) < tarBlock || string(blk[257:265]) != "ustar\x0000" || blk[156] != tar.TypeReg || string(blk[508:512]) == "tar\x00" {
		return nil, nil, 0, false
	}
	var sum int64
	for i, c := range blk[:tarBlock] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	chk, ok1 := octal(blk[148:156])
	size, ok2 := octal(blk[124:136])
	if !ok1 || !ok2 || chk != sum {
		return nil, nil, 0, false
	}
	return cString(blk[345:500]), cString(blk[0:100]), size, true
}

// ustarPath is the path a ustar header's prefix and name fields spell
// (prefix/name, or name when prefix is empty): want itself if they spell
// it, else a string of their own.
func ustarPath(prefix, name []byte, want string) string {
	if len(prefix) == 0 {
		if string(name) == want {
			return want
		}
		return string(name)
	}
	if len(want) == len(prefix)+1+len(name) && want[len(prefix)] == '/' && want[:len(prefix)] == string(prefix) && want[len(prefix)+1:] == string(name) {
		return want
	}
	return string(prefix) + "/" + string(name)
}

// octal parses a ustar numeric field: octal digits, with spaces and NULs
// around them.
func octal(b []byte) (int64, bool) {
	b = bytes.Trim(b, " \x00")
	if len(b) == 0 {
		return 0, true
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '7' || n > math.MaxInt64>>3 {
			return 0, false
		}
		n = n<<3 | int64(c-'0')
	}
	return n, true
}

// cString is a ustar string field: its bytes up to the first NUL.
func cString(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return b
}

// readUpTo reads r to its end, up to limit bytes. want bytes (what a
// file's size says is left) are read into one buffer; what comes past
// them (a stream, whose claims are not held ahead), in chunks, joined
// once r ends: a buffer doubled as it filled held up to three times the
// bytes a stream sent. A stream that ends before least bytes is refused
// before anything is joined.
func readUpTo(r io.Reader, want, limit, least int64) ([]byte, error) {
	buf := make([]byte, 0, min(want, limit)+1)
	for int64(len(buf)) < int64(cap(buf)) && int64(len(buf)) < limit {
		n, err := r.Read(buf[len(buf):min(int64(cap(buf)), limit)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, short(int64(len(buf)), least)
		}
		if err != nil {
			return nil, err
		}
	}
	const chunk = 4 << 20
	var chunks [][]byte
	got := int64(len(buf))
	for got < limit {
		c := make([]byte, min(chunk, limit-got))
		n, err := io.ReadFull(r, c)
		if n > 0 {
			chunks = append(chunks, c[:n])
			got += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if err := short(got, least); err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return buf, nil
	}
	out := make([]byte, 0, got)
	out = append(out, buf...)
	for i := range chunks {
		out = append(out, chunks[i]...)
		chunks[i] = nil
	}
	return out, nil
}

// short refuses got bytes where the members take at least least.
func short(got, least int64) error {
	if got < least {
		return fmt.Errorf("the file ends after %d bytes of members that take at least %d (truncated?)", got, least)
	}
	return nil
}

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

// blob returns the member that holds the blob of a SHA-256 (hex), and
// whether the bundle holds it: looked up without its path made.
func (b *Bundle) blob(sha256Hex string) ([]byte, bool) {
	var name [len("blobs/sha256/") + 2*sha256.Size]byte
	data, ok := b.Files[string(append(append(name[:0], "blobs/sha256/"...), sha256Hex...))]
	return data, ok
}

// member is a member's content or an error naming it.
func (b *Bundle) member(name string) ([]byte, error) {
	data, ok := b.Files[name]
	if !ok {
		return nil, fmt.Errorf("%w: it holds no %s", ErrMalformed, name)
	}
	return data, nil
}
