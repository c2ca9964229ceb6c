package evidence

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

// ustarBlock is a ustar header block, its checksum right.
func ustarBlock(name string, typeflag byte, size int) []byte {
	b := make([]byte, tarBlock)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], "00000000000\x00")
	b[156] = typeflag
	copy(b[257:265], "ustar\x0000")
	for i := 148; i < 156; i++ {
		b[i] = ' '
	}
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func padded(b []byte) []byte {
	return append(b, make([]byte, (tarBlock-len(b)%tarBlock)%tarBlock)...)
}

// A member whose pax header makes it a GNU sparse file
// is read by Read as the raw bytes after its header (memberAt asks
// archive/tar for the header only, then slices hdr.Size bytes), while
// archive/tar, GNU tar and bsdtar read it through the sparse map: the
// bytes Read checked (SHA-256, then Verify) are not the bytes
// `tar -xf FILE sbom.cdx.json` extracts (docs/evidence.md tells the
// reader to do just that). The hand read and archive/tar must agree.
func TestAttackSparseMember(t *testing.T) {
	const name = "sbom.cdx.json"
	data := sparseBundle(t)
	// What archive/tar (as tar -xf) makes of the member.
	tr := tar.NewReader(bytes.NewReader(data))
	var extracted []byte
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		if hdr.Name == name {
			extracted, _ = io.ReadAll(tr)
		}
	}
	got, err := Read(bytes.NewReader(data), 0)
	if err == nil && !bytes.Equal(got.Files[name], extracted) {
		t.Fatalf("Read accepts %s as %d bytes ending %q; archive/tar extracts %d bytes ending %q: a verified bundle whose tar says otherwise",
			name, len(got.Files[name]), got.Files[name][590:], len(extracted), extracted[len(extracted)-10:])
	}
	if err == nil || !strings.Contains(err.Error(), "GNU.sparse") {
		t.Fatalf("Read(a bundle with a sparse member) = %v, want it refused naming the pax record", err)
	}
}

// sparseBundle is a bundle of one member, sbom.cdx.json, 600
// bytes "a" as Read reads it, behind a pax GNU sparse (0.1) header whose
// map says only its first 520 bytes are data.
func sparseBundle(t *testing.T) []byte {
	const name = "sbom.cdx.json"
	content := bytes.Repeat([]byte("a"), 600) // what Read will check
	var honest bytes.Buffer
	if err := Write(&honest, Manifest{}, []string{name}, map[string][]byte{name: content}); err != nil {
		t.Fatal(err)
	}
	htr := tar.NewReader(bytes.NewReader(honest.Bytes()))
	if _, err := htr.Next(); err != nil {
		t.Fatal(err)
	}
	manifest, _ := io.ReadAll(htr)

	// The manifest, then the member: a pax header saying "sparse, 600
	// bytes, data 0..520", a ustar header with 520 bytes of data
	// (2 blocks, as 600 bytes take), the 600 bytes in those 2 blocks.
	var f bytes.Buffer
	f.Write(ustarBlock(ManifestName, tar.TypeReg, len(manifest)))
	f.Write(padded(append([]byte{}, manifest...)))
	rec := func(k, v string) string {
		s := " " + k + "=" + v + "\n"
		n := len(s) + 1
		for len(fmt.Sprint(n))+len(s) != n {
			n++
		}
		return fmt.Sprint(n) + s
	}
	pax := rec("GNU.sparse.major", "0") + rec("GNU.sparse.minor", "1") + rec("GNU.sparse.name", name) +
		rec("GNU.sparse.size", "600") + rec("GNU.sparse.numblocks", "1") + rec("GNU.sparse.map", "0,520")
	f.Write(ustarBlock("PaxHeaders/x", tar.TypeXHeader, len(pax)))
	f.Write(padded([]byte(pax)))
	f.Write(ustarBlock(name, tar.TypeReg, 520))
	f.Write(padded(append([]byte{}, content...)))
	f.Write(make([]byte, 2*tarBlock))

	return f.Bytes()
}
