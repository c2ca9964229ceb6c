package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/snapshot"
)

// Catalog reads what resolution and policy need — versions, descriptors,
// records with their status, snapshots and labels — at one commit that
// was verified before, through Files: a full replica's batch reader (no
// git process per package), or the files a light client proved. It is
// safe for concurrent use.
type Catalog struct {
	files  Files
	where  string // the repository, for messages: its directory or URL
	commit string
	root   *Root

	mu sync.Mutex // guards st, whose lookups cache
	st *Overlay

	vmu      sync.Mutex
	versions map[string]*versionRead // a light catalog's version directories, each read once
}

// versionRead is a version directory as readVersion read it, kept by a
// light catalog (whose files, proved whole subject by subject, never
// change): each read gets its own copy.
type versionRead struct {
	d    *descriptor.Descriptor
	ref  blob.Ref
	recs []RecordView
}

// copy returns a copy of vr that its reader may change.
func (vr *versionRead) copy() (*descriptor.Descriptor, blob.Ref, []RecordView) {
	var d *descriptor.Descriptor
	if vr.d != nil {
		d = cloneDescriptor(vr.d)
	}
	var recs []RecordView
	if vr.recs != nil {
		recs = make([]RecordView, len(vr.recs))
		for i, rv := range vr.recs {
			rv.Artifacts = slices.Clone(rv.Artifacts)
			if rv.Record != nil {
				r := *rv.Record // as readVersion left it: its checks shared
				r.Signatures = slices.Clone(r.Signatures)
				rv.Record = &r
			}
			recs[i] = rv
		}
	}
	return d, vr.ref, recs
}

// Catalog returns the catalog of commit (a commit id or a ref).
func (r *Repo) Catalog(ctx context.Context, commit string) (*Catalog, error) {
	id, err := r.Head(ctx, commit)
	if err != nil {
		return nil, err
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, err
	}
	return NewCatalog(newGitFiles(r.git, rd, id), r.Dir, id)
}

// NewCatalog returns the catalog of the index whose tree at commit is
// files, named where (its directory or URL) in messages. The files must
// have been verified: a full replica's verified head, or what a light
// client proved against a checkpoint whose head is commit.
func NewCatalog(files Files, where, commit string) (*Catalog, error) {
	st := NewOverlay(&treeState{files: files})
	root, err := st.Root()
	if err != nil {
		return nil, err
	}
	if root == nil {
		at := commit
		if len(at) == 40 {
			at = at[:12] // a commit id, shortened
		}
		return nil, fmt.Errorf("%s: the index at %s has no root record", where, at)
	}
	return &Catalog{files: files, where: where, commit: commit, st: NewOverlay(st), root: root}, nil
}

// Commit is the commit the catalog reads.
func (c *Catalog) Commit() string { return c.commit }

// Versions lists a package's published versions, oldest first; none (and
// no error) for a package the index does not publish.
func (c *Catalog) Versions(name string) ([]string, error) {
	if err := descriptor.CheckName(name); err != nil {
		return nil, err
	}
	entries, err := c.files.List(layout.PackageDir(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	entries = versionDirs(entries)
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name)
	}
	sort.Slice(out, func(i, j int) bool { return semverLess(out[i], out[j]) })
	return out, nil
}

// Descriptor reads a version's descriptor: parsed, its blob reference,
// and fs.ErrNotExist when the version is not published.
func (c *Catalog) Descriptor(name, version string) (*descriptor.Descriptor, blob.Ref, error) {
	path := layout.VersionDir(name, version) + "/" + layout.DescriptorFile
	data, err := c.files.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, blob.Ref{}, fmt.Errorf("%s@%s is not published at %.12s: %w", name, version, c.commit, fs.ErrNotExist)
	}
	if err != nil {
		return nil, blob.Ref{}, err
	}
	// What a light client proved was parsed once, when it was.
	if mem, ok := c.files.(*MemFiles); ok {
		if parsed := mem.parsedFile(path); parsed != nil && parsed.Desc != nil {
			return cloneDescriptor(parsed.Desc), blob.DigestBytes(data), nil
		}
	}
	d, err := descriptor.Parse(data)
	return d, blob.DigestBytes(data), err
}

// Version reads a version's descriptor (parsed, and its blob reference)
// and every record about it, with its issuer's holder and its status
// (active, revoked, superseded), in one pass over its directory; records
// are in no particular order, and Time is left zero (Show fills it from
// the history). fs.ErrNotExist if the version is not published.
func (c *Catalog) Version(name, version string) (*descriptor.Descriptor, blob.Ref, []RecordView, error) {
	if _, light := c.files.(*MemFiles); !light {
		files, err := c.files.List(layout.VersionDir(name, version))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, blob.Ref{}, nil, fmt.Errorf("%s@%s is not published at %.12s: %w", name, version, c.commit, fs.ErrNotExist)
		}
		if err != nil {
			return nil, blob.Ref{}, nil, err
		}
		return c.readVersion(layout.VersionDir(name, version), files)
	}
	vr, err := c.versionRead(name, version)
	if err != nil {
		return nil, blob.Ref{}, nil, err
	}
	d, ref, recs := vr.copy()
	return d, ref, recs, nil
}

// versionRead returns a light catalog's version directory, read once
// and kept (what failed is read again next time: a subject's load may).
func (c *Catalog) versionRead(name, version string) (*versionRead, error) {
	dir := layout.VersionDir(name, version)
	c.vmu.Lock()
	vr := c.versions[dir]
	c.vmu.Unlock()
	if vr != nil {
		return vr, nil
	}
	files, err := c.files.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s@%s is not published at %.12s: %w", name, version, c.commit, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	d, ref, recs, err := c.readVersion(dir, files)
	if err != nil {
		return nil, err
	}
	vr = &versionRead{d: d, ref: ref, recs: recs}
	c.vmu.Lock()
	if c.versions == nil {
		c.versions = map[string]*versionRead{}
	}
	if kept := c.versions[dir]; kept != nil {
		vr = kept // read at the same time by another: one is kept, for all
	} else {
		c.versions[dir] = vr
	}
	c.vmu.Unlock()
	return vr, nil
}

// VersionShared is Version for a reader that changes nothing it
// returns: from a light catalog, the version directory as it was read
// once and kept, not a copy (the descriptor, the views, their records and
// artifact lists are every such reader's); the views' capacity is their
// length, so that an append to them copies. From a full replica's
// catalog, Version's own fresh read.
func (c *Catalog) VersionShared(name, version string) (*descriptor.Descriptor, blob.Ref, []RecordView, error) {
	if _, light := c.files.(*MemFiles); !light {
		return c.Version(name, version)
	}
	vr, err := c.versionRead(name, version)
	if err != nil {
		return nil, blob.Ref{}, nil, err
	}
	return vr.d, vr.ref, slices.Clip(vr.recs), nil
}

// UpstreamRecords reads this repository's own records about a version
// that upstream up publishes (its security team's audit, say: kept under
// upstreams/UP/), with their holders and status as Version gives them;
// none when there are none.
func (c *Catalog) UpstreamRecords(up, name, version string) ([]RecordView, error) {
	dir := layout.UpstreamVersionDir(up, name, version)
	files, err := c.files.List(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	_, _, recs, err := c.readVersion(dir, files)
	return recs, err
}

// readVersion reads a version directory's descriptor and records.
func (c *Catalog) readVersion(dir string, files []DirEntry) (*descriptor.Descriptor, blob.Ref, []RecordView, error) {
	var (
		d    *descriptor.Descriptor
		ref  blob.Ref
		recs []RecordView
	)
	mem, _ := c.files.(*MemFiles)
	if len(files) > 1 { // the descriptor and records (none: recs stays nil)
		recs = make([]RecordView, 0, len(files)-1)
	}
	for _, f := range files {
		path := dir + "/" + f.Name
		data, err := c.files.Read(path)
		if err != nil {
			return nil, ref, nil, err
		}
		// What a light client proved was parsed once, when it was
		// (ParseFiles): each read gets its own copy.
		var parsed *File
		if mem != nil {
			parsed = mem.parsedFile(path)
		}
		if f.Name == layout.DescriptorFile {
			if parsed != nil && parsed.Desc != nil {
				d = cloneDescriptor(parsed.Desc)
			} else if d, err = descriptor.Parse(data); err != nil {
				return nil, ref, nil, err
			}
			ref = blob.DigestBytes(data)
			continue
		}
		var rec *record.Record
		if parsed != nil && parsed.Rec != nil {
			rec = parsed.Rec.Clone()
		} else if rec, err = record.Parse(data); err != nil {
			return nil, ref, nil, fmt.Errorf("%s: %w", path, err)
		}
		rv, err := c.view(rec, path)
		if err != nil {
			return nil, ref, nil, err
		}
		recs = append(recs, rv)
	}
	byID := map[string]*RecordView{}
	for i := range recs {
		byID[recs[i].ID] = &recs[i]
	}
	for _, rv := range recs {
		if t, ok := byID[rv.Ends]; ok && rv.Ends != "" {
			t.EndedBy = rv.ID
			if rv.Kind == string(record.Revoke) {
				t.Status = StatusRevoked
			} else {
				t.Status = StatusSuperseded
			}
		}
	}
	return d, ref, recs, nil
}

// parsedFile returns the parse of the file at path that ParseFiles made
// of the files m holds (nil if none): never changed after, it is shared,
// so the caller copies what it hands out.
func (m *MemFiles) parsedFile(path string) *File {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if f, ok := m.files[path]; ok && f.parsed != nil && f.parsed.Err == nil && bytes.Equal(f.parsed.Data, f.Data) {
		return f.parsed
	}
	return nil
}

// cloneDescriptor returns a copy of a parsed descriptor that its reader
// may change.
func cloneDescriptor(d *descriptor.Descriptor) *descriptor.Descriptor {
	c := *d
	c.Dependencies = slices.Clone(d.Dependencies)
	c.Artifacts = slices.Clone(d.Artifacts)
	if d.Go != nil {
		g := *d.Go
		c.Go = &g
	}
	return &c
}

// view is a record as people (and policies) read it. It fails when the
// issuer's key cannot be read (a mirror that did not answer): a record
// whose key's revocation is unknown is not shown as active (a light
// catalog keeps the views it makes).
func (c *Catalog) view(rec *record.Record, path string) (RecordView, error) {
	rv := RecordView{ID: rec.ID, Kind: string(rec.Kind), Issuer: rec.Issuer(), Status: StatusActive, Path: path, Record: rec}
	if rec.Kind.MultiSig() && len(rec.SignedBy(c.root.Keys)) >= c.root.Threshold {
		rv.Issuer, rv.Holder = "root", "root"
	} else if k, err := c.Key(rec.Issuer()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return RecordView{}, fmt.Errorf("%s: its issuer's key %s: %w", path, rec.Issuer(), err)
	} else if k != nil {
		rv.Holder = k.Holder()
		if k.RevokedBy != "" {
			rv.Status = StatusIssuerRevoked
		}
	}
	for _, s := range rec.Statement.Subject[1:] {
		rv.Artifacts = append(rv.Artifacts, s.Name)
	}
	rv.Detail = record.OneLine(detail(rec))
	if rec.Kind == record.Revoke || rec.Kind == record.Supersede {
		rv.Ends = rec.Statement.Subject[0].SHA256()
	}
	return rv, nil
}

// Key returns what the index says of a key at the catalog's commit.
func (c *Catalog) Key(id string) (*Key, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Key(id)
}

// Holders returns what a policy may name as an issuer of this index:
// the name of every holder its root granted a key (a root key's holder
// too), and the id of every key granted, root keys included. A light
// catalog reads every key's files (the subject "keys") for it.
func (c *Catalog) Holders() (names, ids map[string]bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	names, ids = map[string]bool{}, map[string]bool{}
	for id, h := range c.root.Holders {
		ids[id] = true
		if h != "" {
			names[h] = true
		}
	}
	shards, err := c.files.List("keys")
	if errors.Is(err, fs.ErrNotExist) {
		return names, ids, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, sh := range shards {
		if !sh.Dir {
			continue
		}
		ks, err := c.files.List("keys" + "/" + sh.Name)
		if err != nil {
			return nil, nil, err
		}
		for _, ke := range ks {
			id, err := keys.IDFromHex(ke.Name)
			if err != nil || !ke.Dir {
				continue
			}
			k, err := c.st.Key(id)
			if err != nil {
				return nil, nil, err
			}
			if k != nil {
				ids[id] = true
				if h := k.Holder(); h != "" {
					names[h] = true
				}
			}
		}
	}
	return names, ids, nil
}

// Snapshot reads a snapshot of the index by its reference: fs.ErrNotExist
// if the index has none with that digest, a mismatch error if the size
// differs.
func (c *Catalog) Snapshot(ref blob.Ref) (*snapshot.Snapshot, error) {
	if !blob.IsDigest(ref.SHA256) {
		return nil, fmt.Errorf("snapshot %q: want a sha256 digest", ref.SHA256)
	}
	data, err := c.files.Read(layout.SnapshotDir(ref.SHA256) + "/" + layout.SnapshotFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("snapshot sha256:%s is not in the index at %.12s: %w", ref.SHA256, c.commit, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	got := blob.DigestBytes(data)
	if got.SHA256 == ref.SHA256 && got.Size != ref.Size {
		// The bytes are the digest's: the size asked for is wrong (a
		// pin's typo), not what the index holds.
		return nil, fmt.Errorf("snapshot sha256:%s is %d bytes, not %d: %w", ref.SHA256, got.Size, ref.Size, ErrSizeMismatch)
	}
	if got != ref {
		return nil, &blob.MismatchError{Want: ref, GotSHA256: got.SHA256, GotSize: got.Size}
	}
	return snapshot.Parse(data)
}

// ErrSizeMismatch is a reference whose digest the index holds, at
// another size than the reference says: the reference is wrong.
var ErrSizeMismatch = errors.New("the size given is not the size of the bytes its digest names: fix the size")

// Folded returns the name of the package published in the index whose
// name case-folds onto name's (descriptor.FoldName), as published; ""
// if none. Names that differ only in case are one name in an index (rule
// name-case).
func (c *Catalog) Folded(name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.Folded(name)
}

// Label returns a label's latest move; fs.ErrNotExist if it was never set.
func (c *Catalog) Label(name string) (*LabelMove, error) {
	if err := record.CheckLabel(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	m, err := c.st.Label(name)
	c.mu.Unlock()
	if err == nil && m == nil {
		err = fmt.Errorf("label %s is not set in the index at %.12s: %w", name, c.commit, fs.ErrNotExist)
	}
	return m, err
}

// LabelView is one move of a label.
type LabelView struct {
	Label     string    `json:"label"`
	Snapshot  blob.Ref  `json:"snapshot"`
	Name      string    `json:"snapshot_name,omitempty"` // the snapshot's display name
	Record    string    `json:"record"`
	Previous  string    `json:"previous,omitempty"`
	Issuer    string    `json:"issuer"`
	Holder    string    `json:"holder,omitempty"`
	Time      time.Time `json:"time"` // when the move was appended
	Commit    string    `json:"commit"`
	Published time.Time `json:"issued"` // the mover's own claim
}

// LabelHistory returns every move of a label at main's head, oldest first.
func (r *Repo) LabelHistory(ctx context.Context, name string) ([]LabelView, error) {
	c, err := r.Catalog(ctx, MainRef)
	if err != nil {
		return nil, err
	}
	return c.LabelHistory(ctx, name)
}

// LabelHistory returns every move of a label at the catalog's commit,
// oldest first.
func (c *Catalog) LabelHistory(ctx context.Context, name string) ([]LabelView, error) {
	if _, err := c.Label(name); err != nil {
		return nil, err
	}
	var out []LabelView
	err := c.eachAdded(ctx, layout.LabelDir(name), func(a Addition, rec *record.Record) {
		p, ok := rec.Predicate.(record.LabelPredicate)
		if !ok {
			return
		}
		lv := LabelView{Label: name, Snapshot: p.Snapshot, Record: rec.ID, Previous: p.Previous, Issuer: rec.Issuer(),
			Time: a.Time, Commit: a.Commit, Published: p.Issued}
		if k, _ := c.Key(rec.Issuer()); k != nil {
			lv.Holder = k.Holder()
		}
		if s, err := c.Snapshot(p.Snapshot); err == nil {
			lv.Name = s.Name
		}
		out = append(out, lv)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FindSnapshot finds a snapshot of the index by sha256 or a unique prefix
// of at least 8 hex digits.
func (c *Catalog) FindSnapshot(prefix string) (blob.Ref, error) {
	if len(prefix) < 8 || len(prefix) > 64 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return blob.Ref{}, fmt.Errorf("snapshot %q: give its sha256, or at least its first 8 lowercase hex digits", prefix)
	}
	shard, err := c.files.List("snapshots/" + prefix[:2])
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return blob.Ref{}, err
	}
	var found []string
	for _, e := range shard {
		if strings.HasPrefix(e.Name, prefix) {
			found = append(found, e.Name)
		}
	}
	switch len(found) {
	case 0:
		return blob.Ref{}, fmt.Errorf("no snapshot sha256:%s in the index at %.12s (cairn snapshot create makes one): %w", prefix, c.commit, fs.ErrNotExist)
	case 1:
		c.mu.Lock()
		ref, err := c.st.Snapshot(found[0])
		c.mu.Unlock()
		if err != nil {
			return blob.Ref{}, fmt.Errorf("snapshot sha256:%s: %w", found[0], err)
		}
		if ref == nil {
			return blob.Ref{}, fmt.Errorf("snapshot sha256:%s: no snapshot.json in its directory", found[0])
		}
		return *ref, nil
	}
	return blob.Ref{}, fmt.Errorf("snapshot prefix %s is ambiguous (%d snapshots): give more digits", prefix, len(found))
}

// eachAdded calls fn with every record appended to dir up to the
// catalog's commit, oldest first (index order), with when and where it
// was appended.
func (c *Catalog) eachAdded(ctx context.Context, dir string, fn func(Addition, *record.Record)) error {
	added, err := c.files.Additions(ctx, dir)
	if err != nil {
		return err
	}
	for _, a := range added {
		data, err := c.files.Read(a.Path)
		if err != nil {
			return err
		}
		rec, err := record.Parse(data)
		if err != nil {
			return fmt.Errorf("%s: %w", a.Path, err)
		}
		fn(a, rec)
	}
	return nil
}
