package evidence

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/index"
	"cairn.dev/cairn/internal/plan"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/proof"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/remote"
	"cairn.dev/cairn/internal/sbom"
	"cairn.dev/cairn/internal/transport"
)

// errMoved says a server signed a new checkpoint while a bundle was
// being read from it: nothing is wrong, the read is to be done again.
var errMoved = errors.New("the server moved on during the read: run the command again")

// ErrNotServed is the parent of Make's errors for a project that reads a
// repository on disk (path:): only a served repository's signed
// checkpoint proves what an index held.
var ErrNotServed = errors.New("an evidence bundle proves a repository by its server's signed checkpoint")

// Options configures Make.
type Options struct {
	// Dir is the project: cairn.yaml and cairn.lock.
	Dir string
	// WithBlobs puts every locked artifact into the bundle too.
	WithBlobs bool
	// HTTP is the client the servers are read with (nil:
	// transport.Client()).
	HTTP *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// MadeBy names the program that made the bundle ("cairn v…").
	MadeBy string
}

// Made is a bundle made, and what it says.
type Made struct {
	Manifest Manifest
	Size     int64 // bytes written
}

// Make writes the evidence bundle of the project o.Dir to w
// (docs/evidence.md): it opens every repository with a light client,
// checks the lock against them as cairn install does (plan.Check), judges
// it by the project's policy, and keeps what the light client read, the
// blobs the lock names and each record's offline proof. A lock the
// indexes do not bear out is an error, and nothing is written; a plan
// the policy refuses is written, its verdicts saying so, and Make returns
// the *policy.RefusedError after writing it.
func Make(ctx context.Context, w io.Writer, o Options) (*Made, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	p, err := plan.ReadProject(o.Dir)
	if err != nil {
		return nil, err
	}
	l, err := plan.ReadLock(p.Dir)
	if err != nil {
		return nil, fmt.Errorf("the evidence is of a lock: %w (run cairn lock)", err)
	}
	var urls []string
	for i := range p.Repositories {
		r := &p.Repositories[i]
		if r.URL == "" {
			return nil, fmt.Errorf("repository %s (%s line %d) is an index on disk: %w: serve it (cairn serve) and name it by url:", r.Name, plan.ProjectFile, r.Line, ErrNotServed)
		}
		urls = append(urls, r.URL)
		light := true
		r.Light = &light // a light client's reads are what a bundle keeps
	}
	base := o.HTTP
	if base == nil {
		base = transport.Client()
	}
	next := base.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	rec := newRecorder(next, newResources(urls, Version))
	client := *base
	client.Transport = rec

	cache, err := os.MkdirTemp("", "cairn-evidence-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(cache)
	srcs, err := plan.Open(ctx, p, plan.Options{Cache: cache, NoLightState: true, Remote: remote.Options{Client: &client, Now: now}})
	if err != nil {
		return nil, err
	}
	defer srcs.Close()
	if err := plan.Check(ctx, p, l, nil, srcs); err != nil {
		return nil, fmt.Errorf("%s does not check against the repositories, so there is nothing to prove: %w", plan.LockFile, err)
	}
	pol, err := plan.LoadPolicy(p, "", srcs)
	if err != nil {
		return nil, err
	}
	// The verdicts are judged at the time the bundle names, as Verify
	// derives it: the newest checkpoint verified.
	var judgedAt time.Time
	for _, s := range srcs {
		if s.View != nil && s.View.Checkpoint.Time.After(judgedAt) {
			judgedAt = s.View.Checkpoint.Time.UTC()
		}
	}
	verdicts, refused := plan.Evaluate(l, srcs, pol, judgedAt)
	var re *policy.RefusedError
	if refused != nil && !errors.As(refused, &re) {
		return nil, refused
	}

	files := map[string][]byte{}
	var names []string
	add := func(name string, data []byte) {
		if _, ok := files[name]; !ok {
			names = append(names, name)
		}
		files[name] = data
	}
	raw, err := os.ReadFile(filepath.Join(p.Dir, plan.ProjectFile))
	if err != nil {
		return nil, err
	}
	add("project/"+plan.ProjectFile, raw)
	if raw, err = os.ReadFile(filepath.Join(p.Dir, plan.LockFile)); err != nil {
		return nil, err
	}
	add("project/"+plan.LockFile, raw)
	// A policy of the index (index:NAME) is read through the sources,
	// and so proved by the reads the bundle records; a file is kept.
	if _, inIndex := plan.IndexPolicy(p.Policy); p.Policy != "" && !inIndex {
		rel := filepath.ToSlash(filepath.Clean(p.Policy))
		if checkPath("project/"+rel) != nil || filepath.IsAbs(p.Policy) {
			return nil, fmt.Errorf("policy %s: an evidence bundle keeps the policy inside the project: name it by a path relative to %s", p.Policy, plan.ProjectFile)
		}
		if raw, err = os.ReadFile(filepath.Join(p.Dir, p.Policy)); err != nil {
			return nil, err
		}
		add("project/"+rel, raw)
	}

	// The artifacts, if asked, fetched (and checked) through the
	// sources, as install fetches them. (Descriptors and snapshots are
	// files of the index: their packages' documents hold and prove them.)
	var refs []blobOf
	for _, pkg := range l.Packages {
		if o.WithBlobs {
			for _, a := range pkg.Artifacts {
				refs = append(refs, blobOf{a.Ref, pkg.Repository, pkg.ID() + "'s " + a.File})
			}
		}
	}
	for _, b := range refs {
		name := "blobs/sha256/" + b.ref.SHA256
		if _, ok := files[name]; ok {
			continue
		}
		data, err := fetch(ctx, srcs.Get(b.repo), b.ref)
		if err != nil {
			return nil, fmt.Errorf("%s (%s): %w", b.what, b.ref.SHA256, err)
		}
		files[name] = data
	}

	// The records' offline proofs: their reads are not kept (the proofs
	// carry their paths).
	rec.setOn(false)
	ids, err := recordsOf(l, srcs)
	if err != nil {
		return nil, err
	}
	var proofs []string
	for _, id := range ids {
		s := srcs.Get(id.repo)
		made, err := proof.FromView(ctx, s.View, s.URL, id.id)
		if err != nil {
			return nil, fmt.Errorf("the proof of record %s: %w", id.id, err)
		}
		// Detached: the record's bytes are in its repository's reads,
		// once (docs/evidence.md, Proofs).
		detached, err := proof.Detach(made.Proof)
		if err != nil {
			return nil, fmt.Errorf("the proof of record %s: %w", id.id, err)
		}
		files["proofs/"+id.id+".proof"] = detached.Marshal()
		proofs = append(proofs, "proofs/"+id.id+".proof")
	}
	if rec.err != nil {
		return nil, rec.err
	}

	// The lock's SBOM: each artifact's SHA-512 from its bytes, fetched
	// through the sources when the bundle does not hold them.
	bom, err := sbom.Make(ctx, l, srcs, sbom.Options{Tool: o.MadeBy, Open: func(ctx context.Context, pkg *plan.Locked, ref blob.Ref) (io.ReadCloser, error) {
		if data, ok := files["blobs/sha256/"+ref.SHA256]; ok {
			return io.NopCloser(bytes.NewReader(data)), nil
		}
		data, err := fetch(ctx, srcs.Get(pkg.Repository), ref)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(data)), nil
	}})
	if err != nil {
		return nil, fmt.Errorf("the lock's SBOM: %w", err)
	}
	add(SBOMName, bom.JSON)

	m := Manifest{Format: Format, Version: Version, Created: now().UTC().Truncate(time.Second), MadeBy: o.MadeBy, Policy: filepath.ToSlash(p.Policy), Verdicts: verdicts, JudgedAt: judgedAt}
	for i, r := range p.Repositories {
		m.Repositories = append(m.Repositories, Repository{Name: r.Name, URL: r.URL, Introduction: r.Introduction, CheckpointKeys: rec.keys[i]})
	}
	var kept []string
	for name := range rec.files {
		if len(name) <= 6 || name[:6] != "blobs/" {
			kept = append(kept, name)
		}
		files[name] = rec.files[name]
	}
	slices.Sort(kept)
	var blobs []string
	for name := range files {
		if len(name) > 6 && name[:6] == "blobs/" {
			blobs = append(blobs, name)
		}
	}
	slices.Sort(blobs)
	names = append(names, kept...)
	names = append(names, blobs...)
	slices.Sort(proofs)
	names = append(names, proofs...)

	cw := &countingWriter{w: w}
	if err := Write(cw, m, names, files); err != nil {
		return nil, err
	}
	made := &Made{Manifest: m, Size: cw.n}
	if re != nil {
		return made, re
	}
	return made, nil
}

type blobOf struct {
	ref  blob.Ref
	repo string
	what string
}

// fetch reads a blob from a source's stores, checked by its digest and
// size as it streams (blob.Store's contract).
func fetch(ctx context.Context, s *plan.Source, ref blob.Ref) ([]byte, error) {
	if s == nil {
		return nil, fmt.Errorf("no repository serves it")
	}
	var errs []error
	for _, st := range s.Blobs {
		rc, err := st.Open(ctx, ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err == nil {
			return data, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

type recordOf struct {
	id, repo string
	// rec is the record as the catalog read it, when it is about the
	// version (nil for a record that ended one and is about another).
	rec *record.Record
}

// recordsOf returns every record about each locked version (the
// repository's own, and an organisation's about an upstream's version),
// with the records that ended them, each once, in the lock's order: every
// record a verdict can name.
func recordsOf(l *plan.Lock, srcs plan.Sources) ([]recordOf, error) {
	var out []recordOf
	seen := map[string]bool{}
	add := func(id, repo string, recs []index.RecordView) {
		if !seen[id] {
			seen[id] = true
			ro := recordOf{id: id, repo: repo}
			for _, r := range recs {
				if r.ID == id && r.Record != nil && r.Record.ID == id {
					ro.rec = r.Record
					break
				}
			}
			out = append(out, ro)
		}
	}
	for _, pkg := range l.Packages {
		s := srcs.Get(pkg.Repository)
		if s == nil {
			return nil, fmt.Errorf("package %s: repository %s is not in %s", pkg.ID(), pkg.Repository, plan.ProjectFile)
		}
		_, _, recs, err := s.Catalog.VersionShared(pkg.Name, pkg.Version)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			add(r.ID, s.Name, recs)
			if r.EndedBy != "" {
				add(r.EndedBy, s.Name, recs)
			}
		}
		if s.Via != nil {
			own, err := s.Via.Catalog.UpstreamRecords(s.Upstream, pkg.Name, pkg.Version)
			if err != nil {
				return nil, err
			}
			for _, r := range own {
				add(r.ID, s.Via.Name, own)
				if r.EndedBy != "" {
					add(r.EndedBy, s.Via.Name, own)
				}
			}
		}
	}
	return out, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
