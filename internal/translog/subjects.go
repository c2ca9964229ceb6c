package translog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// SubjectsMedia is the media type of the compact encoding of a batch
// read's answer (POST /api/v1/log/subjects, docs/transparency.md,
// "Serving"): a client that sends it in Accept is answered in it, and
// any other in JSON. It carries the same documents, files and proofs as
// the JSON answer, with each file's bytes and each hash as they are
// (not in base64) and no member names: a third fewer bytes, and nothing
// to decode but lengths.
const SubjectsMedia = "application/vnd.cairn.subjects.v1"

// AcceptsSubjects says whether a batch read asks for the compact
// encoding: whether accept, the values of its Accept header, name
// SubjectsMedia with a q other than 0. The one rule of every reader that
// answers batches (a server, an evidence bundle's replay).
func AcceptsSubjects(accept []string) bool {
	for _, v := range accept {
		for part := range strings.SplitSeq(v, ",") {
			media, params, _ := strings.Cut(part, ";")
			if strings.TrimSpace(media) != SubjectsMedia {
				continue
			}
			for param := range strings.SplitSeq(params, ";") {
				if k, q, ok := strings.Cut(strings.TrimSpace(param), "="); ok && strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(q, 64); err == nil && f == 0 {
						return false
					}
				}
			}
			return true
		}
	}
	return false
}

// subjectsMagic begins every batch of the compact encoding.
const subjectsMagic = "cairn-subjects v1\n"

// SubjectFile is one file of a subject document: its leaf index, entry
// line and bytes.
type SubjectFile struct {
	Index   int64
	Entry   []byte
	Content []byte
	// Derived says ParseSubjects made Entry from Content (an entry said
	// by its file's bytes): its sha256 and size are Content's, hashed
	// once, here. Never set for an entry sent whole, nor by AppendSubject.
	Derived bool
}

// SubjectDoc is one subject document of a batch: the subject, the
// log size it was read at, its value's count, its files and its map
// proof. Whether it proves anything is the client's to check (an entry
// line said by its file's bytes is made from them: it is what the leaf
// hash is checked over).
type SubjectDoc struct {
	Subject string
	Size    int64
	Count   uint64
	Files   []SubjectFile
	Proof   MapProof
}

// AppendSubjectsHeader appends the header of a batch of n documents read
// at log size size; the n documents (AppendSubject) follow it.
//
//	"cairn-subjects v1\n" uvarint(size) uvarint(n) document…
func AppendSubjectsHeader(b []byte, size int64, n int) []byte {
	b = append(b, subjectsMagic...)
	b = binary.AppendUvarint(b, uint64(size))
	return binary.AppendUvarint(b, uint64(n))
}

// AppendSubject appends one document of a batch (its Size is the
// batch's, not repeated):
//
//	bytes(subject) uvarint(count) uvarint(files) file × files
//	uvarint(depth) bytes(bitmap) uvarint(siblings) siblings × 32 bytes
//	0, or 1 and other key (32 bytes) uvarint(other count) other chain (32 bytes)
//
// where bytes(x) is uvarint(len(x)) then x. A file is its leaf index,
// its entry line, and its bytes. The entry line is sent whole (0) or, as
// it is for every file of an index, said by what its bytes do not say
// (1): its commit and time ("<commit> <time>", or nothing when the file
// before it in the document has the same), and its path as the length
// of the prefix it shares with the path of the file before it and the
// rest; its sha256 and size are its bytes':
//
//	uvarint(index) 0 bytes(entry) bytes(content)
//	uvarint(index) 1 bytes(commit and time) uvarint(shared) bytes(rest of path) bytes(content)
func AppendSubject(b []byte, d *SubjectDoc) []byte {
	b = appendBytes(b, []byte(d.Subject))
	b = binary.AppendUvarint(b, d.Count)
	b = binary.AppendUvarint(b, uint64(len(d.Files)))
	var lastCT, lastPath []byte
	for _, f := range d.Files {
		b = binary.AppendUvarint(b, uint64(f.Index))
		ct, path, ok := derivedEntry(f.Entry, f.Content)
		if !ok {
			b = append(b, 0)
			b = appendBytes(b, f.Entry)
			b = appendBytes(b, f.Content)
			continue
		}
		b = append(b, 1)
		if bytes.Equal(ct, lastCT) {
			b = appendBytes(b, nil)
		} else {
			b = appendBytes(b, ct)
		}
		shared := 0
		for shared < len(path) && shared < len(lastPath) && path[shared] == lastPath[shared] {
			shared++
		}
		b = binary.AppendUvarint(b, uint64(shared))
		b = appendBytes(b, path[shared:])
		b = appendBytes(b, f.Content)
		lastCT, lastPath = ct, path
	}
	p := &d.Proof
	b = binary.AppendUvarint(b, uint64(p.Depth))
	b = appendBytes(b, p.Bitmap)
	b = binary.AppendUvarint(b, uint64(len(p.Siblings)))
	for i := range p.Siblings {
		b = append(b, p.Siblings[i][:]...)
	}
	if p.Other == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	b = append(b, p.Other.Key[:]...)
	b = binary.AppendUvarint(b, p.Other.Value.Count)
	return append(b, p.Other.Value.Chain[:]...)
}

// derivedEntry splits an entry line into "<commit> <time>" and its path
// if the line is the one those and content make (derive): an entry
// whose sha256 and size are content's, in its one spelling.
func derivedEntry(entry, content []byte) (ct, path []byte, ok bool) {
	e, err := ParseEntry(entry)
	if err != nil || e.Size != int64(len(content)) || e.SHA256 != sha256.Sum256(content) {
		return nil, nil, false
	}
	i := bytes.IndexByte(entry, ' ')
	j := bytes.IndexByte(entry[i+1:], ' ') + i + 1
	ct, path = entry[:j], entry[len(entry)-1-len(e.Path):len(entry)-1]
	if !bytes.Equal(derive(ct, path, nil, content), entry) {
		return nil, nil, false
	}
	return ct, path, true
}

// derive returns the entry line of a file of bytes content at path,
// added by the commit and time ct ("<commit> <time>"). The path is given
// in two parts, head then tail, joined in the line (a compact document
// says each path by the bytes it shares with the one before and the
// rest).
func derive(ct, head, tail, content []byte) []byte {
	sum := sha256.Sum256(content)
	e := make([]byte, 0, len(ct)+len(head)+len(tail)+90)
	e = append(e, ct...)
	e = append(e, ' ')
	e = hex.AppendEncode(e, sum[:])
	e = append(e, ' ')
	e = strconv.AppendInt(e, int64(len(content)), 10)
	e = append(e, ' ')
	e = append(e, head...)
	e = append(e, tail...)
	return append(e, '\n')
}

func appendBytes(b, x []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(x))), x...)
}

// ErrSubjects is the parent of the errors of a compact batch that does
// not parse.
var ErrSubjects = errors.New("not a batch of subject documents")

// ParseSubjects decodes one batch of the compact encoding or more, one
// after the other (a client keeps several in one file). Each document's
// Size is its batch's; its files' Content are slices of body, not
// copies. Spans are the bytes of each document in body (after its
// batch's header), which a batch of some of them is made of again.
func ParseSubjects(body []byte) (docs []SubjectDoc, spans [][2]int, err error) {
	err = readBatches(body, false, func(d *SubjectDoc, span [2]int) {
		docs, spans = append(docs, *d), append(spans, span)
	})
	if err != nil {
		return nil, nil, err
	}
	return docs, spans, nil
}

// SubjectSpans checks that body is one batch of the compact encoding or
// more, one after the other, as ParseSubjects does, reading lengths only
// (no file is copied, no entry line made): each document's bytes in
// body and the size of its batch. What it accepts, ParseSubjects parses
// (FuzzParseSubjects), but for the entry lines of files, which it does
// not check (a client's ParseSubjects makes them, and its checks of the
// documents refuse what does not prove). It serves a reader that answers
// batches made of the documents of others (evidence bundles).
func SubjectSpans(body []byte) (sizes []int64, spans [][2]int, err error) {
	err = readBatches(body, true, func(d *SubjectDoc, span [2]int) {
		sizes, spans = append(sizes, d.Size), append(spans, span)
	})
	if err != nil {
		return nil, nil, err
	}
	return sizes, spans, nil
}

// readBatches reads body, one batch of the compact encoding or more, and
// gives each document read (its Size its batch's) and its bytes in body
// to each, in order; with lengths, documents are read as
// subjectReader.lengths says. The first error ends it.
func readBatches(body []byte, lengths bool, each func(d *SubjectDoc, span [2]int)) error {
	r := subjectReader{b: body, lengths: lengths}
	for r.off < len(body) {
		if len(body)-r.off < len(subjectsMagic) || string(body[r.off:r.off+len(subjectsMagic)]) != subjectsMagic {
			return fmt.Errorf("%w: byte %d: no %q header", ErrSubjects, r.off, subjectsMagic[:len(subjectsMagic)-1])
		}
		r.off += len(subjectsMagic)
		size := r.uvarint()
		n := r.uvarint()
		if r.err == nil && (size > 1<<62 || n > uint64(len(body)-r.off)) {
			r.fail("a batch of %d documents at size %d", n, size)
		}
		for k := uint64(0); k < n && r.err == nil; k++ {
			start := r.off
			d := SubjectDoc{Size: int64(size)}
			r.doc(&d)
			if r.err == nil {
				each(&d, [2]int{start, r.off})
			}
		}
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// subjectReader reads the compact encoding; its first error sticks.
// With lengths set, doc checks a document's lengths and markers only:
// it keeps no file and makes no entry line.
type subjectReader struct {
	b       []byte
	off     int
	err     error
	lengths bool
}

func (r *subjectReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: byte %d: %s", ErrSubjects, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *subjectReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 || n != max(1, (bits.Len64(v)+6)/7) {
		// One encoding for each number (none padded): a document
		// encodes back to the bytes it was read from.
		r.fail("a truncated, overlong or padded number")
		return 0
	}
	r.off += n
	return v
}

// bytes reads n bytes (a slice of the body), or fails.
func (r *subjectReader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail("%d bytes announced, %d left", n, len(r.b)-r.off)
		return nil
	}
	x := r.b[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return x
}

func (r *subjectReader) hash() (h tlog.Hash) {
	copy(h[:], r.bytes(tlog.HashSize))
	return h
}

func (r *subjectReader) doc(d *SubjectDoc) {
	d.Subject = string(r.bytes(r.uvarint()))
	d.Count = r.uvarint()
	files := r.uvarint()
	// Each file takes 3 bytes at least: no more files than bytes left.
	if r.err == nil && files > uint64(len(r.b)-r.off)/3 {
		r.fail("subject %q: %d files announced, %d bytes left", d.Subject, files, len(r.b)-r.off)
	}
	if r.err != nil {
		return
	}
	if !r.lengths {
		d.Files = make([]SubjectFile, files)
	}
	var lastCT, lastPath []byte
	lastPathLen := 0 // with lengths, lastPath is not made: its length is kept
	for i := range int(files) {
		var f SubjectFile
		index := r.uvarint()
		if index > 1<<62 {
			r.fail("subject %q: leaf index %d", d.Subject, index)
		}
		f.Index = int64(index)
		switch kind := r.bytes(1); {
		case r.err != nil:
			return
		case kind[0] == 0:
			f.Entry = r.bytes(r.uvarint())
			f.Content = r.bytes(r.uvarint())
		case kind[0] == 1:
			ct := r.bytes(r.uvarint())
			if len(ct) == 0 {
				ct = lastCT
			}
			shared := r.uvarint()
			if r.err == nil && (len(ct) == 0 || shared > uint64(lastPathLen)) {
				r.fail("subject %q: file %d: no commit and time, or a path sharing %d bytes with the %d before it", d.Subject, i, shared, lastPathLen)
			}
			rest := r.bytes(r.uvarint())
			f.Content = r.bytes(r.uvarint())
			if r.err != nil {
				return
			}
			lastCT, lastPathLen = ct, int(shared)+len(rest)
			if !r.lengths {
				// The path is the entry's, ended by its newline.
				f.Entry, f.Derived = derive(ct, lastPath[:shared], rest, f.Content), true
				lastPath = f.Entry[len(f.Entry)-1-int(shared)-len(rest) : len(f.Entry)-1]
			}
		default:
			r.fail("subject %q: file %d: entry kind %d, want 0 or 1", d.Subject, i, kind[0])
		}
		if !r.lengths && r.err == nil {
			d.Files[i] = f
		}
	}
	p := &d.Proof
	depth := r.uvarint()
	if r.err == nil && depth > 256 {
		r.fail("subject %q: map proof depth %d is outside 0..256", d.Subject, depth)
	}
	p.Depth = int(depth)
	p.Bitmap = r.bytes(r.uvarint())
	if p.Bitmap == nil {
		p.Bitmap = []byte{}
	}
	sibs := r.uvarint()
	if r.err == nil && sibs > 256 {
		r.fail("subject %q: %d map proof siblings, at most 256", d.Subject, sibs)
	}
	if r.err != nil {
		return
	}
	p.Siblings = make([]tlog.Hash, sibs)
	for i := range p.Siblings {
		p.Siblings[i] = r.hash()
	}
	switch other := r.bytes(1); {
	case r.err != nil:
	case other[0] == 0:
	case other[0] == 1:
		o := &MapLeaf{Key: r.hash()}
		o.Value.Count = r.uvarint()
		o.Value.Chain = r.hash()
		p.Other = o
	default:
		r.fail("subject %q: map proof other leaf marker %d, want 0 or 1", d.Subject, other[0])
	}
}
