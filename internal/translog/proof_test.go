package translog

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testOrigin is the origin of the test checkpoints: a cairn index's.
const testOrigin = "cairn.dev/index/" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"

// testContent is the file of leaf i of the test logs (see testEntry).
func testContent(i int64) []byte { return []byte(fmt.Sprint("file ", i)) }

// signedCheckpoint returns a checkpoint of tree, with cairn's extension
// lines, signed as a note by a new key named origin, and that key's
// verifier key.
func signedCheckpoint(t testing.TB, origin string, tree tlog.Tree) (msg []byte, vkey string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	text := torchwood.Checkpoint{Origin: origin, Tree: tree, Extension: "cairn-map " + base64.StdEncoding.EncodeToString(make([]byte, 32)) +
		"\ncairn-head " + strings.Repeat("c", 40) + "\ncairn-time 1700000000\n"}.String()
	msg, err = note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg, vkey
}

// testProof returns the proof of leaf i of a test log of n leaves (the
// log is grown to n), against a checkpoint signed by a new key. Its extra
// data is opaque here: the test's own bytes.
func testProof(t testing.TB, l *Log, i, n int64) (*Proof, string) {
	t.Helper()
	if l.Size() < n {
		grow(t, l, l.Size(), n, "head"+strconv.FormatInt(n, 10))
	}
	root, err := l.TreeHash(n)
	if err != nil {
		t.Fatal(err)
	}
	msg, vkey := signedCheckpoint(t, testOrigin, tlog.Tree{N: n, Hash: root})
	path, err := l.ProveRecord(i, n)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proof{Extra: []byte(fmt.Sprint("extra of ", i)), Index: i, Path: path, Checkpoint: msg}
	if _, err := checkLeaf(p, testEntry(i).Text(), testContent(i)); err != nil {
		t.Fatal(err)
	}
	return p, vkey
}

// checkLeaf checks that p proves the leaf entry, with content, in the
// tree of its checkpoint, whose text torchwood parses (internal/proof
// parses it with internal/checkpoint, which imports this package).
func checkLeaf(p *Proof, entry, content []byte) (Entry, error) {
	i := bytes.LastIndex(p.Checkpoint, []byte("\n\n"))
	if i < 0 {
		return Entry{}, fmt.Errorf("%w: the checkpoint is not a signed note", ErrProof)
	}
	c, err := torchwood.ParseCheckpoint(string(p.Checkpoint[:i+1]))
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrProof, err)
	}
	return p.CheckLeaf(entry, content, c.Origin, c.Tree)
}

// A proof made from the log round-trips through its text, and its
// inclusion part proves the leaf's entry and content in the checkpoint's
// tree, at leaves on tile boundaries and at both ends.
func TestProofRoundTrip(t *testing.T) {
	l := openLog(t, t.TempDir())
	for _, c := range []struct{ i, n int64 }{{0, 1}, {0, 2}, {1, 2}, {0, 600}, {255, 600}, {256, 600}, {599, 600}, {300, 513}} {
		p, _ := testProof(t, l, c.i, c.n)
		text := p.Marshal()
		if !bytes.HasPrefix(text, []byte("c2sp.org/tlog-proof@v1\nextra ")) || !bytes.Contains(text, []byte("\nindex "+strconv.FormatInt(c.i, 10)+"\n")) {
			t.Fatalf("proof of %d in %d:\n%s", c.i, c.n, text)
		}
		q, err := ParseProof(text)
		if err != nil {
			t.Fatalf("ParseProof of a marshaled proof: %v\n%s", err, text)
		}
		if !bytes.Equal(q.Marshal(), text) {
			t.Fatalf("round trip changed the proof:\n%s\n---\n%s", text, q.Marshal())
		}
		if len(q.Path) != len(p.Path) || q.Index != c.i || !bytes.Equal(q.Checkpoint, p.Checkpoint) {
			t.Fatalf("parsed %+v, want %+v", q, p)
		}
		e, err := checkLeaf(q, testEntry(c.i).Text(), testContent(c.i))
		if err != nil {
			t.Fatalf("inclusion of %d in %d: %v", c.i, c.n, err)
		}
		if e != testEntry(c.i) || !bytes.Equal(q.Extra, p.Extra) {
			t.Fatalf("inclusion of %d in %d: entry %+v, extra %q", c.i, c.n, e, q.Extra)
		}
	}
}

// Interop, cairn → elsewhere: a proof cairn writes is checked by code
// written elsewhere. torchwood's spicy (a go tool of torchwood that
// verifies the same index/path/checkpoint lines, without the header and
// extra lines) accepts it and refuses it once a path hash is altered; and
// x/mod's tlog.CheckRecord proves it against a root x/mod computes from
// the same entries, with the checkpoint parsed by torchwood.
func TestProofInteropElsewhere(t *testing.T) {
	l := openLog(t, t.TempDir())
	const n = 300
	var ref memTree
	for i := int64(0); i < n; i++ {
		ref.add(i, testEntry(i).Text())
	}
	refRoot, err := tlog.TreeHash(n, ref)
	if err != nil {
		t.Fatal(err)
	}
	p, vkey := testProof(t, l, 257, n)
	text := p.Marshal()

	// Read the proof back as the spec says, by hand, not with ParseProof.
	lines := strings.Split(string(text), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" || !strings.HasPrefix(lines[1], "extra ") || lines[2] != "index 257" {
		t.Fatalf("proof lines: %q", lines[:3])
	}
	var path tlog.RecordProof
	k := 3
	for ; lines[k] != ""; k++ {
		h, err := tlog.ParseHash(lines[k])
		if err != nil {
			t.Fatal(err)
		}
		path = append(path, h)
	}
	checkpoint := strings.Join(lines[k+1:], "\n")
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	nt, err := note.Open([]byte(checkpoint), note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	c, err := torchwood.ParseCheckpoint(nt.Text)
	if err != nil {
		t.Fatal(err)
	}
	if c.N != n || c.Hash != refRoot {
		t.Fatalf("checkpoint tree %v, x/mod computes %d %v", c.Tree, n, refRoot)
	}
	if err := tlog.CheckRecord(path, n, refRoot, 257, tlog.RecordHash(testEntry(257).Text())); err != nil {
		t.Fatalf("x/mod tlog.CheckRecord refuses cairn's proof: %v", err)
	}

	// torchwood's spicy: the file is the entry line, its .spicy the proof
	// from the index line on.
	spicy := filepath.Join(t.TempDir(), "spicy")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	if out, err := exec.Command(goBin, "build", "-o", spicy, "filippo.io/torchwood/cmd/spicy").CombinedOutput(); err != nil {
		t.Fatalf("go build spicy: %v\n%s", err, out)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "leaf")
	if err := os.WriteFile(file, testEntry(257).Text(), 0o644); err != nil {
		t.Fatal(err)
	}
	body := strings.Join(lines[2:], "\n")
	verify := func(body string) error {
		if err := os.WriteFile(file+".spicy", []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(spicy, "-verify", vkey, file).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := verify(body); err != nil {
		t.Fatalf("spicy refuses cairn's proof: %v", err)
	}
	bad := path[2]
	bad[0] ^= 1
	if err := verify(strings.Replace(body, path[2].String(), bad.String(), 1)); err == nil {
		t.Fatal("spicy accepts cairn's proof with a path hash altered: the check above proves nothing")
	}
}

// Interop, elsewhere → cairn: an inclusion path x/mod computes over the
// same entries, in a checkpoint torchwood formats, is one cairn accepts.
func TestProofInteropFromTlog(t *testing.T) {
	const n = 1000
	var ref memTree
	for i := int64(0); i < n; i++ {
		ref.add(i, testEntry(i).Text())
	}
	root, _ := tlog.TreeHash(n, ref)
	msg, _ := signedCheckpoint(t, testOrigin, tlog.Tree{N: n, Hash: root})
	for _, i := range []int64{0, 511, 512, 999} {
		path, err := tlog.ProveRecord(n, i, ref)
		if err != nil {
			t.Fatal(err)
		}
		p := &Proof{Index: i, Path: path, Checkpoint: msg}
		if _, err := checkLeaf(p, testEntry(i).Text(), testContent(i)); err != nil {
			t.Fatalf("cairn refuses x/mod's inclusion path of %d: %v", i, err)
		}
	}
}

// Attacks on the inclusion part: each alteration of a good proof, or of
// the entry and content it claims, is refused as a security error with
// its evidence.
func TestProofTampered(t *testing.T) {
	l := openLog(t, t.TempDir())
	good, _ := testProof(t, l, 300, 700)
	other := testEntry(301)
	type leaf struct {
		entry   []byte
		content []byte
	}
	cases := []struct {
		name   string
		change func(p *Proof, x *leaf)
		want   string // in the error
	}{
		{"content", func(p *Proof, x *leaf) { x.content = []byte("file 3000") }, "content is 9 bytes, the entry says 8"},
		{"content same size", func(p *Proof, x *leaf) { x.content = []byte("file 301") }, "content's sha256 is"},
		{"entry of another leaf", func(p *Proof, x *leaf) { x.entry, x.content = other.Text(), testContent(301) }, "does not lead to the root"},
		{"entry with another time", func(p *Proof, x *leaf) {
			e := testEntry(300)
			e.Time++
			x.entry = e.Text()
		}, "does not lead to the root"},
		{"entry's hash, content to match", func(p *Proof, x *leaf) {
			e := NewEntry(testEntry(300).Commit, testEntry(300).Time, testEntry(300).Path, []byte("evil 30"))
			x.entry, x.content = e.Text(), []byte("evil 30")
		}, "does not lead to the root"},
		{"index", func(p *Proof, x *leaf) { p.Index = 301 }, "does not lead to the root"},
		{"index past the tree", func(p *Proof, x *leaf) { p.Index = 700 }, "not in a tree of 700 leaves"},
		{"path hash", func(p *Proof, x *leaf) { p.Path[3][7] ^= 0x40 }, "does not lead to the root"},
		{"path shortened", func(p *Proof, x *leaf) { p.Path = p.Path[:len(p.Path)-1] }, "does not lead to the root"},
		{"path lengthened", func(p *Proof, x *leaf) { p.Path = append(p.Path, p.Path[0]) }, "does not lead to the root"},
		{"checkpoint root", func(p *Proof, x *leaf) {
			c := p.Checkpoint
			root := strings.SplitN(string(c), "\n", 4)[2]
			raw, _ := base64.StdEncoding.DecodeString(root)
			raw[31] ^= 1
			p.Checkpoint = bytes.Replace(c, []byte(root), []byte(base64.StdEncoding.EncodeToString(raw)), 1)
		}, "does not lead to the root"},
		// (A size with the same shape of path, 701, proves the same root:
		// the checkpoint's signature binds its size, not the path.)
		{"checkpoint size", func(p *Proof, x *leaf) {
			p.Checkpoint = bytes.Replace(p.Checkpoint, []byte("\n700\n"), []byte("\n1500\n"), 1)
		}, "does not lead to the root"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseProof(good.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			x := leaf{testEntry(300).Text(), testContent(300)}
			c.change(p, &x)
			// Through the text too: the file is what an attacker hands over.
			p, err = ParseProof(p.Marshal())
			if err != nil {
				t.Fatalf("the tampered proof does not parse: %v", err)
			}
			_, err = checkLeaf(p, x.entry, x.content)
			var ie *InclusionError
			if !errors.As(err, &ie) || !errors.Is(err, ErrProofRefused) {
				t.Fatalf("CheckLeaf = %v, want an *InclusionError", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "SECURITY ERROR") || !strings.Contains(err.Error(), testOrigin) {
				t.Fatalf("error %q, want it to say %q, with the checkpoint's origin", err, c.want)
			}
		})
	}
}

// A malformed entry is refused as malformed, not proven.
func TestProofMalformedEntry(t *testing.T) {
	l := openLog(t, t.TempDir())
	good, _ := testProof(t, l, 3, 10)
	entry := strings.TrimSuffix(string(testEntry(3).Text()), "\n")
	for name, e := range map[string]string{
		"entry without newline": entry,
		"entry in upper case":   strings.ToUpper(entry) + "\n",
		"a map leaf":            string(MapEntry{Commit: testEntry(3).Commit, Time: 1}.Text()),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := good.CheckLeaf([]byte(e), testContent(3), testOrigin, tlog.Tree{N: 10}); !errors.Is(err, ErrProof) {
				t.Fatalf("CheckLeaf = %v, want ErrProof", err)
			}
		})
	}
}

// ParseProof accepts exactly the canonical form: each deviation is
// refused, naming the line.
func TestParseProofStrict(t *testing.T) {
	l := openLog(t, t.TempDir())
	good, _ := testProof(t, l, 5, 9)
	text := string(good.Marshal())
	lines := strings.Split(text, "\n")
	extraLine, indexLine, hashLine := lines[1], lines[2], lines[3]
	h, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(hashLine, ""))
	for _, c := range []struct {
		name, text, want string
	}{
		{"empty", "", "line 1"},
		{"other header", strings.Replace(text, "c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1), "line 1"},
		{"header with CR", strings.Replace(text, "c2sp.org/tlog-proof@v1\n", "c2sp.org/tlog-proof@v1\r\n", 1), "line 1"},
		{"empty extra", strings.Replace(text, extraLine, "extra ", 1), "line 2"},
		{"extra not base64", strings.Replace(text, extraLine, "extra %%%", 1), "line 2"},
		{"extra with padding bits set", strings.Replace(text, extraLine, "extra YWJ=", 1), "line 2"},
		{"extra with CRs", strings.Replace(text, extraLine, extraLine[:10]+"\r\r\r\r"+extraLine[10:], 1), "line 2"},
		{"extra without padding", strings.Replace(text, extraLine, strings.TrimRight(extraLine, "="), 1), "line 2"},
		{"no index", strings.Replace(text, indexLine+"\n", "", 1), "line 3"},
		{"index with leading zero", strings.Replace(text, "index 5\n", "index 05\n", 1), "line 3"},
		{"index with sign", strings.Replace(text, "index 5\n", "index +5\n", 1), "line 3"},
		{"negative index", strings.Replace(text, "index 5\n", "index -5\n", 1), "line 3"},
		{"index with a space", strings.Replace(text, "index 5\n", "index 5 \n", 1), "line 3"},
		{"index too large", strings.Replace(text, "index 5\n", "index 9223372036854775808\n", 1), "line 3"},
		{"index before extra", strings.Replace(text, extraLine+"\n"+indexLine, indexLine+"\n"+extraLine, 1), "line 3"},
		{"short hash", strings.Replace(text, hashLine, base64.StdEncoding.EncodeToString(h[:31]), 1), "line 4"},
		{"hash not canonical", strings.Replace(text, hashLine, hashLine[:42]+string(hashLine[42]^1)+"=", 1), "line 4"},
		{"hash with space", strings.Replace(text, hashLine, hashLine+" ", 1), "line 4"},
		{"no blank line", strings.Replace(text, "\n\n"+string(good.Checkpoint), "\n", 1), "line"},
		{"no checkpoint", strings.TrimSuffix(text, string(good.Checkpoint)), "no checkpoint"},
		{"too many hashes", strings.Replace(text, hashLine, strings.Repeat(hashLine+"\n", 64)+hashLine, 1), "more than 63"},
		{"too large", text + strings.Repeat("x", MaxProof), "more than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseProof([]byte(c.text))
			if !errors.Is(err, ErrProof) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseProof = %+v, %v; want ErrProof naming %q", p, err, c.want)
			}
		})
	}
	// The hash mutated above is not canonical only because its last
	// character's unused bits are set: check the case tests that.
	if s := hashLine[:42] + string(hashLine[42]^1) + "="; func() bool { _, err := base64.StdEncoding.DecodeString(s); return err != nil }() {
		t.Fatalf("%q does not decode: the non-canonical case tests the wrong thing", s)
	}
	// "YWJ=" is "ab" ("YWI=") with an unused bit set: a lax decoder
	// takes it, and one with CRs inside, so the cases above test the
	// spelling, not the decoding.
	if b, err := base64.StdEncoding.DecodeString("YWJ="); err != nil || string(b) != "ab" {
		t.Fatalf("YWJ= decodes to %q, %v: the padding-bits case tests the wrong thing", b, err)
	}
	if _, err := base64.StdEncoding.DecodeString(extraLine[6:10] + "\r\r\r\r" + extraLine[10:]); err != nil {
		t.Fatalf("a lax decoder refuses CRs (%v): the CR case tests the wrong thing", err)
	}
	// No extra at all is the format's, if not cairn's.
	p, err := ParseProof([]byte(strings.Replace(text, extraLine+"\n", "", 1)))
	if err != nil || p.Extra != nil || p.Index != 5 {
		t.Fatalf("a proof without extra: %+v, %v", p, err)
	}
	// Nor need there be any hash: a tree of one leaf.
	one, _ := testProof(t, openLog(t, t.TempDir()), 0, 1)
	if len(one.Path) != 0 || !strings.Contains(string(one.Marshal()), "\nindex 0\n\n") {
		t.Fatalf("proof in a tree of one:\n%s", one.Marshal())
	}
	if q, err := ParseProof(one.Marshal()); err != nil || len(q.Path) != 0 {
		t.Fatalf("ParseProof of a proof without hashes: %+v, %v", q, err)
	}
}

// FuzzParseProof: whatever ParseProof accepts, Marshal writes back
// byte for byte (one spelling per proof), and CheckLeaf never panics on
// it (its extra data read as the entry).
func FuzzParseProof(f *testing.F) {
	l := openLog(f, f.TempDir())
	for _, c := range []struct{ i, n int64 }{{0, 1}, {3, 10}, {255, 300}} {
		p, _ := testProof(f, l, c.i, c.n)
		f.Add(p.Marshal())
	}
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\nx\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra AA==\nindex 10\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProof(data)
		if err != nil {
			if p != nil || !errors.Is(err, ErrProof) {
				t.Fatalf("ParseProof = %v, %v", p, err)
			}
			return
		}
		if got := p.Marshal(); !bytes.Equal(got, data) {
			t.Fatalf("Marshal(ParseProof(%q)) = %q", data, got)
		}
		if e, err := checkLeaf(p, p.Extra, nil); err == nil && e.Size != 0 {
			t.Fatalf("CheckLeaf = %+v for no content", e)
		}
	})
}

// BenchmarkParseProof parses a proof whose extra data is 6 KiB (a
// record and its entry, as cairn's proofs carry) and whose path is 9
// hashes long.
func BenchmarkParseProof(b *testing.B) {
	l := openLog(b, b.TempDir())
	p, _ := testProof(b, l, 300, 400)
	p.Extra = bytes.Repeat([]byte("0123456789abcdef"), 6<<10/16)
	data := p.Marshal()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseProof(data); err != nil {
			b.Fatal(err)
		}
	}
}
