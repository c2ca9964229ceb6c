package evidence

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"

	"cairn.dev/cairn/internal/proof"
	"cairn.dev/cairn/internal/translog"
)

// proofNames returns the bundle's proof members, in its order.
func proofNames(m *Manifest) []string {
	var out []string
	for _, mem := range m.Members {
		if strings.HasPrefix(mem.Path, "proofs/") {
			out = append(out, mem.Path)
		}
	}
	return out
}

// A proof that names another record than the one its member is for —
// another record of the bundle, sound and proved — is refused: the
// record the verdicts read has no proof.
func TestAttackProofOfAnotherRecord(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := mustRead(t, data)
	ours := "proofs/" + w.audit + ".proof"
	var other string
	for _, n := range proofNames(&b.Manifest) {
		if n != ours {
			other = n
			break
		}
	}
	if other == "" {
		t.Fatal("the bundle holds one proof only")
	}
	swapped := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		files[ours] = files[other]
		return nil
	})
	if _, err := verify(swapped); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not the record "+w.audit) {
		t.Fatalf("the audit's proof replaced by another record's: %v", err)
	}
	// The entry edited to name our record's path, the rest of the
	// proof another record's: its leaf is not the one the path proves.
	p, err := translog.ParseProof(b.Files[other])
	if err != nil {
		t.Fatal(err)
	}
	var x map[string]any
	if err := json.Unmarshal(p.Extra, &x); err != nil {
		t.Fatal(err)
	}
	po, err := proof.ParseDetached(b.Files[ours])
	if err != nil {
		t.Fatal(err)
	}
	entry := x["entry"].(string)
	x["entry"] = entry[:strings.LastIndexByte(entry, ' ')+1] + po.Path() + "\n"
	var extra bytes.Buffer
	enc := json.NewEncoder(&extra)
	enc.SetEscapeHTML(false)
	enc.Encode(map[string]any{"entry": x["entry"], "map_time": x["map_time"], "map_path": x["map_path"]})
	p.Extra = bytes.TrimSpace(extra.Bytes())
	renamed := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		files[ours] = p.Marshal()
		return nil
	})
	if _, err := verify(renamed); !errors.Is(err, ErrRefused) {
		t.Fatalf("another record's proof renamed to ours: %v", err)
	}
}

// A proof that carries its record's bytes (a cairn proof, as version 1
// bundles held) is not a version 2 bundle's: refused.
func TestAttackAttachedProof(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := mustRead(t, data)
	name := "proofs/" + w.audit + ".proof"
	p, err := translog.ParseProof(b.Files[name])
	if err != nil {
		t.Fatal(err)
	}
	var x map[string]any
	if err := json.Unmarshal(p.Extra, &x); err != nil {
		t.Fatal(err)
	}
	x["content"] = []byte("{}")
	p.Extra, _ = json.Marshal(x)
	forged := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
		files[name] = p.Marshal()
		return nil
	})
	if _, err := verify(forged); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "detached proof") {
		t.Fatalf("a proof with content: %v", err)
	}
}

// The file's members: one removed, one twice, one changed in the file
// (the manifest not), a proof changed (the manifest too).
func TestAttackMembers(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := mustRead(t, data)
	manifest, err := json.Marshal(b.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	names := memberNames(&b.Manifest)
	proofs := proofNames(&b.Manifest)
	without := func(skip string) []string {
		var out []string
		for _, n := range names {
			if n != skip {
				out = append(out, n)
			}
		}
		return out
	}
	for _, c := range []struct {
		what  string
		names []string
		files map[string][]byte
		want  string
	}{
		{"the last member removed", names[:len(names)-1], b.Files, "ends before member"},
		{"a proof removed", without(proofs[0]), b.Files, "the manifest lists " + proofs[0]},
		{"a member twice", append(append([]string{}, names...), names[len(names)-1]), b.Files, "not in the manifest"},
		{"a member twice in a row", append(append([]string{names[0]}, names[0]), names[1:]...), b.Files, "the manifest lists " + names[1]},
	} {
		if _, err := verify(rawBundle(t, manifest, c.names, c.files)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.what, err)
		}
	}
	// A proof's bytes changed in the file, the manifest not.
	changed := map[string][]byte{}
	for k, v := range b.Files {
		changed[k] = v
	}
	p := bytes.Clone(changed[proofs[0]])
	p[len(p)/2] ^= 1
	changed[proofs[0]] = p
	if _, err := verify(rawBundle(t, manifest, names, changed)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "member "+proofs[0]+": its sha256") {
		t.Errorf("a proof changed: %v", err)
	}
	// A hash of a proof's inclusion path changed, the manifest made
	// again: the proof no longer proves. Each of its hashes in turn: the
	// nodes near the root are those of the other proofs' paths too, which
	// are checked beside it (proof.DetachedParser).
	pr, err := translog.ParseProof(b.Files[proofs[0]])
	if err != nil {
		t.Fatal(err)
	}
	for k := range pr.Path {
		forged := rewrite(t, data, func(m *Manifest, files map[string][]byte) []string {
			pr, err := translog.ParseProof(files[proofs[0]])
			if err != nil {
				t.Fatal(err)
			}
			pr.Path[k][0] ^= 1
			files[proofs[0]] = pr.Marshal()
			return nil
		})
		if _, err := verify(forged); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "does not lead to the root") {
			t.Errorf("hash %d of a proof's path changed: %v", k, err)
		}
	}
	// The manifest listing a member twice.
	m := b.Manifest
	m.Members = append(append([]Member{}, m.Members...), m.Members[0])
	twice, _ := json.Marshal(m)
	if _, err := verify(rawBundle(t, twice, append(append([]string{}, names...), names[0]), b.Files)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "lists "+names[0]+" twice") {
		t.Errorf("a member listed twice: %v", err)
	}
}

// A version 1 bundle (a gzip-compressed tar, or its manifest saying
// version 1) is refused, saying which version this cairn reads.
func TestOldVersionRefused(t *testing.T) {
	w := newWorld(t)
	data, _, err := w.bundle(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	if _, err := verify(gz.Bytes()); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), "reads cairn-evidence versions 2 to 3") {
		t.Errorf("a gzip-compressed bundle: %v", err)
	}
	b := mustRead(t, data)
	m := b.Manifest
	m.Version = 1
	manifest, _ := json.Marshal(m)
	if _, err := verify(rawBundle(t, manifest, memberNames(&b.Manifest), b.Files)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "version 1: this cairn reads cairn-evidence versions 2 to 3") {
		t.Errorf("a version 1 manifest: %v", err)
	}
	// A version this cairn does not know yet.
	m.Version = Version + 1
	manifest, _ = json.Marshal(m)
	if _, err := verify(rawBundle(t, manifest, memberNames(&b.Manifest), b.Files)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), fmt.Sprintf("version %d: this cairn reads cairn-evidence versions 2 to 3", Version+1)) {
		t.Errorf("a version %d manifest: %v", Version+1, err)
	}
	// Not a tar at all.
	if _, err := verify([]byte("hello")); !errors.Is(err, ErrMalformed) {
		t.Errorf("not a tar: %v", err)
	}
	// A member that is not a regular file.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: ManifestName, Typeflag: tar.TypeSymlink, Linkname: "x"})
	tw.Close()
	if _, err := verify(buf.Bytes()); !errors.Is(err, ErrMalformed) {
		t.Errorf("a link first: %v", err)
	}
}

// Members are read in place whatever their headers: ustar (read by
// Read itself), pax (a path too long for ustar, read by archive/tar),
// each member's bytes exactly its own, empty ones included.
func TestReadHeaders(t *testing.T) {
	long := "repos/0/" + strings.Repeat("d/", 150) + "x.json"
	files := map[string][]byte{
		"project/cairn.yaml": []byte("a"),
		long:                 bytes.Repeat([]byte("pax "), 300),
		"empty":              {},
		"repos/0/api/v1/log/subject/1009/" + strings.Repeat("ab", 32) + ".json": bytes.Repeat([]byte{7}, 512),
	}
	names := []string{"project/cairn.yaml", long, "empty", "repos/0/api/v1/log/subject/1009/" + strings.Repeat("ab", 32) + ".json"}
	var out bytes.Buffer
	if err := Write(&out, Manifest{}, names, files); err != nil {
		t.Fatal(err)
	}
	// From a file (its size known) and from a stream.
	for _, r := range []io.Reader{bytes.NewReader(out.Bytes()), io.MultiReader(bytes.NewReader(out.Bytes()))} {
		b, err := Read(r, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if !bytes.Equal(b.Files[n], files[n]) {
				t.Errorf("%s: read %d bytes, wrote %d", n, len(b.Files[n]), len(files[n]))
			}
		}
	}
	// The pax header is there: the archive is not all ustar.
	tr := tar.NewReader(bytes.NewReader(out.Bytes()))
	pax := false
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		pax = pax || hdr.Format == tar.FormatPAX
	}
	if !pax {
		t.Fatal("no pax header written for a path over ustar's")
	}
}

// The member kinds are told apart as these expressions tell them (the
// paths docs/evidence.md names).
func TestMemberKinds(t *testing.T) {
	proofRE := regexp.MustCompile(`^proofs/([0-9a-f]{64})\.proof$`)
	blobRE := regexp.MustCompile(`^blobs/sha256/([0-9a-f]{64})$`)
	repoRE := regexp.MustCompile(`^repos/(0|[1-9][0-9]*)/`)
	hex := strings.Repeat("0a", 32)
	for _, name := range []string{
		"proofs/" + hex + ".proof", "proofs/" + strings.ToUpper(hex) + ".proof", "proofs/" + hex[1:] + ".proof", "proofs/" + hex + "0.proof",
		"proofs/" + hex + ".prooff", "xproofs/" + hex + ".proof", "proofs/" + hex[:63] + "g.proof", "proofs/.proof",
		"blobs/sha256/" + hex, "blobs/sha256/" + hex + "/", "blobs/sha256/" + hex[2:], "blobs/sha512/" + hex, "blobs/sha256/" + hex[:63] + "G",
		"repos/0/log/checkpoint", "repos/1/x", "repos/10/x", "repos/01/x", "repos/00/x", "repos//x", "repos/0", "repos/a/x", "repos/1a/x",
		"repos/9/", "repos/-1/x", "repos/12345678901234567890/x", "project/cairn.yaml", "", "sbom.cdx.json",
	} {
		id, isProof := proofMember(name)
		if m := proofRE.FindStringSubmatch(name); (m != nil) != isProof || (m != nil && m[1] != id) {
			t.Errorf("%q: proofMember says %q %v, the expression %q", name, id, isProof, m)
		}
		if isBlobMember(name) != blobRE.MatchString(name) {
			t.Errorf("%q: isBlobMember says %v", name, isBlobMember(name))
		}
		n, isRepo := repoMember(name)
		if m := repoRE.FindStringSubmatch(name); (m != nil) != isRepo || (m != nil && m[1] != n) {
			t.Errorf("%q: repoMember says %q %v, the expression %q", name, n, isRepo, m)
		}
	}
}
