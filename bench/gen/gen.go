// Package gen builds cairn indexes of any size for benchmarks: a real
// repository made by index.Init, with real grants and real signed records,
// but whose bulk commits are written straight through gitx, without the
// rules, so that a 100k-record index takes seconds. Verification then
// replays every rule over them.
package gen

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"cairn.dev/cairn/internal/author"
	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// RecordsPerVersion is how many signed records each generated version
// carries: authored, audited, tested.
const RecordsPerVersion = 3

// Sig is one signature of the index, for measuring the floor.
type Sig struct {
	Pub ed25519.PublicKey
	Msg []byte // the PAE
	Sig []byte
	Raw []byte // the signed record's envelope, as stored
}

// Index is a generated repository.
type Index struct {
	Repo                     *index.Repo
	Publisher, Auditor, Root keys.Signer
	Records                  int
	Sigs                     []Sig
	next                     int
	keepSigs                 bool
	floor                    struct {
		g    *gitx.Repo
		rd   *gitx.Reader
		head string
	}
}

func newSigner() keys.Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	return keys.NewSigner(priv)
}

// New returns a generator with fresh keys and no repository: its Version
// makes a version's files, signed, without writing them anywhere.
func New() *Index {
	return &Index{Publisher: newSigner(), Auditor: newSigner(), Root: newSigner()}
}

// Build makes a repository at dir with about n signed records (rounded up
// to whole versions). keepSigs keeps every signature for Floor.
func Build(ctx context.Context, dir string, n int, keepSigs bool) (*Index, error) {
	ix := &Index{Publisher: newSigner(), Auditor: newSigner(), Root: newSigner(), keepSigs: keepSigs}
	r, _, err := index.Init(ctx, dir, []keys.Signer{ix.Root}, []string{"root"}, 1)
	if err != nil {
		return nil, err
	}
	ix.Repo = r
	if _, err := author.Grant(ctx, r, author.KeyGrant{Key: ix.Publisher.Public(), Holder: "publisher", Scopes: []string{"publish:*"}}, ix.Root); err != nil {
		return nil, err
	}
	if _, err := author.Grant(ctx, r, author.KeyGrant{Key: ix.Auditor.Public(), Holder: "auditor", Scopes: []string{"certify:audited", "certify:tested"}}, ix.Root); err != nil {
		return nil, err
	}
	if err := ix.Add(ctx, n); err != nil {
		return nil, err
	}
	g, err := gitx.Open(filepath.Join(r.Dir, "index.git"))
	if err != nil {
		return nil, err
	}
	if err := g.Repack(ctx); err != nil {
		return nil, err
	}
	return ix, nil
}

// Add appends about n more signed records, one commit per version, and
// moves main (without verifying: the benchmark's verify does that).
func (ix *Index) Add(ctx context.Context, n int) error {
	r := ix.Repo
	// The generator writes history in bulk, below the index's rules (the
	// benchmark's verify judges it): it opens git itself.
	g, err := gitx.Open(filepath.Join(r.Dir, "index.git"))
	if err != nil {
		return err
	}
	rd, err := g.NewReader(ctx)
	if err != nil {
		return err
	}
	defer rd.Close()
	old, err := r.Head(ctx, index.MainRef)
	if err != nil {
		return err
	}
	head := old
	c, err := rd.Commit(head)
	if err != nil {
		return err
	}
	tree := c.Tree
	t := time.Now().Unix()
	batch := g.NewBatch()
	for made := 0; made < n; made += RecordsPerVersion {
		files, err := ix.version()
		if err != nil {
			return err
		}
		if tree, err = batch.AddToTree(rd, tree, files); err != nil {
			return err
		}
		head = batch.Write("commit", gitx.FormatCommit(tree, []string{head}, "gen <gen>", t, "generated"))
		ix.Records += RecordsPerVersion
		if batch.Len() > 50_000 {
			if err := batch.Flush(); err != nil {
				return err
			}
		}
	}
	if err := batch.Flush(); err != nil {
		return err
	}
	return g.UpdateRef(ctx, index.MainRef, head, old, "gen")
}

// Version returns the files of one more generated version, without
// writing them: its descriptor, then its three signed records.
func (ix *Index) Version() ([]gitx.File, error) { return ix.version() }

// FloorRef is the ref RawCommit moves.
const FloorRef = "refs/heads/bench-floor"

// RawCommit writes files as one commit on parent (a commit of the index)
// and moves FloorRef to it with compare-and-swap, with the plain git
// writes the index makes (the objects in one pack, the tree grown on the
// added paths only, git update-ref) and none of its rules: the floor of a
// publish. Like the index, it keeps one git reader open across calls.
func (ix *Index) RawCommit(ctx context.Context, parent string, files []gitx.File) (string, error) {
	if ix.floor.rd == nil {
		g, err := gitx.Open(filepath.Join(ix.Repo.Dir, "index.git"))
		if err != nil {
			return "", err
		}
		rd, err := g.NewReader(ctx)
		if err != nil {
			return "", err
		}
		ix.floor.g, ix.floor.rd = g, rd
		if ix.floor.head, err = g.ResolveRef(ctx, FloorRef); err != nil {
			return "", err
		}
	}
	g, rd := ix.floor.g, ix.floor.rd
	update, err := g.StartRefUpdate(ctx, "bench floor")
	if err != nil {
		return "", err
	}
	defer update.Abort()
	c, err := rd.Commit(parent)
	if err != nil {
		return "", err
	}
	batch := g.NewBatch()
	tree, err := batch.AddToTree(rd, c.Tree, files)
	if err != nil {
		return "", err
	}
	id := batch.Write("commit", gitx.FormatCommit(tree, []string{parent}, "gen <gen>", time.Now().Unix(), "floor"))
	if err := batch.Flush(); err != nil {
		return "", err
	}
	if err := update.Commit(ctx, FloorRef, id, ix.floor.head); err != nil {
		return "", err
	}
	ix.floor.head = id
	return id, nil
}

// Close releases the git reader RawCommit keeps open.
func (ix *Index) Close() error {
	if ix.floor.rd != nil {
		ix.floor.rd.Close()
		ix.floor.rd = nil
	}
	return nil
}

func (ix *Index) version() ([]gitx.File, error) {
	i := ix.next
	ix.next++
	name := fmt.Sprintf("ns%d/pkg%d", i%1000, i)
	art := make([]byte, 32)
	rand.Read(art)
	d := &descriptor.Descriptor{Schema: descriptor.Schema, Name: name, Version: "1.0.0", UUID: uuid.NewString(), License: "MIT",
		Artifacts: []descriptor.Artifact{{Kind: "source", File: "src.tar.gz", Ref: blob.Ref{SHA256: hex.EncodeToString(art), Size: 1 << 20}}}}
	data, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	ref := blob.DigestBytes(data)
	subj := []record.Subject{{Name: d.ID(), Digest: map[string]string{"sha256": ref.SHA256}}}
	now := time.Now().UTC().Truncate(time.Second)
	dir := layout.VersionDir(name, "1.0.0")
	files := []gitx.File{{Path: dir + "/" + layout.DescriptorFile, Data: data}}
	for _, x := range []struct {
		kind record.Kind
		pred any
		s    keys.Signer
	}{
		{record.Authored, record.AuthoredPredicate{Descriptor: ref, Issued: now}, ix.Publisher},
		{record.Audited, record.CertificationPredicate{Issued: now, Note: "generated"}, ix.Auditor},
		{record.Tested, record.TestResultPredicate{Result: "PASSED", Configuration: []record.ResourceDescriptor{{Name: "ci"}}}, ix.Auditor},
	} {
		payload, err := record.Build(x.kind, subj, x.pred)
		if err != nil {
			return nil, err
		}
		rec, err := record.Sign(payload, x.s)
		if err != nil {
			return nil, err
		}
		if ix.keepSigs {
			ix.Sigs = append(ix.Sigs, Sig{Pub: x.s.Public(), Msg: dsse.PAE(record.PayloadType, payload), Sig: rec.Signatures[0].Sig, Raw: rec.Raw})
		}
		files = append(files, gitx.File{Path: layout.RecordPath(dir, rec.ID), Data: rec.Raw})
	}
	return files, nil
}
