package index

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/gitx"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/snapshot"
)

// Added reports what an operation added to the index.
type Added struct {
	Commit  string   `json:"commit"`
	Records []string `json:"records"`
	Paths   []string `json:"paths"`
}

func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// ident is the commit author for a signer: its holder and key id.
func (r *Repo) ident(ctx context.Context, s keys.Signer) string {
	id := keys.ID(s.Public())
	name := "cairn"
	if st, err := r.headState(ctx); err == nil {
		if k, _ := st.Key(id); k != nil && k.Holder() != "" {
			name = k.Holder()
		} else if root, _ := st.Root(); root != nil && root.Holders[id] != "" {
			name = root.Holders[id]
		}
	}
	name = strings.Map(func(c rune) rune {
		if c == '<' || c == '>' || c == '\n' {
			return '_'
		}
		return c
	}, name)
	return name + " <" + id + ">"
}

func (r *Repo) headState(ctx context.Context) (*Overlay, error) {
	head, err := r.Head(ctx)
	if err != nil {
		return nil, err
	}
	return r.State(ctx, head)
}

func (r *Repo) append(ctx context.Context, s keys.Signer, message string, recs []*record.Record, dirs []string, extra ...gitx.File) (*Added, error) {
	out := &Added{}
	files := extra
	for _, f := range extra {
		out.Paths = append(out.Paths, f.Path)
	}
	for i, rec := range recs {
		p := RecordPath(dirs[i], rec.ID)
		if dirs[i] == "root" {
			p = RootPath(rec.Predicate.(record.RootPredicate).Version)
		}
		files = append(files, gitx.File{Path: p, Data: rec.Raw})
		out.Records = append(out.Records, rec.ID)
		out.Paths = append(out.Paths, p)
	}
	c, err := r.Append(ctx, files, r.ident(ctx, s), message)
	out.Commit = c
	return out, err
}

// Published reports a publish.
type Published struct {
	Added
	Descriptor *descriptor.Descriptor `json:"descriptor"`
	Ref        blob.Ref               `json:"descriptor_ref"`
}

// Publish publishes the package in dir (a cairn-package.yaml and its
// artifact files): artifacts and descriptor go to the blob store first,
// then the descriptor and the signer's authored record to the index in one
// commit. A package's uuid comes from the index when the manifest has none.
func (r *Repo) Publish(ctx context.Context, dir string, s keys.Signer) (*Published, error) {
	st, err := r.headState(ctx)
	if err != nil {
		return nil, err
	}
	d, err := descriptor.FromDir(ctx, dir, r.Blobs, func(name string) (string, error) {
		u, err := st.UUID(name)
		if u == "" && err == nil {
			u = uuid.NewString()
		}
		return u, err
	})
	if err != nil {
		return nil, err
	}
	data, err := d.Marshal()
	if err != nil {
		return nil, err
	}
	ref := blob.DigestBytes(data)
	if err := r.Blobs.Put(ctx, ref, strings.NewReader(string(data))); err != nil {
		return nil, err
	}
	payload, err := record.Build(record.Authored,
		[]record.Subject{{Name: d.ID(), Digest: map[string]string{"sha256": ref.SHA256}}},
		record.AuthoredPredicate{Descriptor: ref, Issued: now()})
	if err != nil {
		return nil, err
	}
	rec, err := record.Sign(payload, s)
	if err != nil {
		return nil, err
	}
	vdir := VersionDir(d.Name, d.Version)
	added, err := r.append(ctx, s, "publish "+d.ID(), []*record.Record{rec}, []string{vdir},
		gitx.File{Path: vdir + "/" + DescriptorFile, Data: data})
	if err != nil {
		return nil, err
	}
	return &Published{Added: *added, Descriptor: d, Ref: ref}, nil
}

// Certification asks for a certification of a version.
type Certification struct {
	Name, Version string
	Kind          record.Kind
	Artifacts     []string // labels (platform or "source") or file names; none = the whole version
	Evidence      []string // files to store as evidence blobs
	Note          string
	VulnID        string // vulnerable
	Severity      string // vulnerable: what record.ParseSeverity reads (low … critical, or a CVSS score)
	Affects       string // vulnerable: a semver range
	Result        string // tested: PASSED (default), WARNED, FAILED
	// Configuration describes a test run (tested): the command, its
	// duration, what it ran on; the evidence files are added after it.
	Configuration []record.ResourceDescriptor
	// Findings are a scanner's vulnerabilities (vulnerable), all in one
	// record, instead of VulnID, Severity and Affects; Scanner names the
	// scanner (default https://cairn.dev/certify).
	Findings   []record.VulnResult
	Scanner    string
	Supersedes string // a record id (or prefix) this one replaces
	// Upstream names the upstream whose version is certified, when more
	// than one publishes it. A version main does not publish is looked
	// for in the followed upstreams; the record then goes under
	// upstreams/UP/ (see UpstreamVersionDir).
	Upstream string
}

// Descriptor reads a published version's descriptor from the index.
func (r *Repo) Descriptor(ctx context.Context, name, version string) (*descriptor.Descriptor, blob.Ref, error) {
	head, err := r.Head(ctx)
	if err != nil {
		return nil, blob.Ref{}, err
	}
	rd, err := r.reader(ctx)
	if err != nil {
		return nil, blob.Ref{}, err
	}
	o, err := rd.Read(head + ":" + VersionDir(name, version) + "/" + DescriptorFile)
	if err != nil {
		return nil, blob.Ref{}, fmt.Errorf("%s@%s is not published in %s", name, version, r.Dir)
	}
	d, err := descriptor.Parse(o.Data)
	return d, blob.DigestBytes(o.Data), err
}

// Certify adds a certification record (and, with Supersedes, the
// supersede record that ends the one it replaces).
func (r *Repo) Certify(ctx context.Context, c Certification, s keys.Signer) (*Added, error) {
	return r.CertifyAll(ctx, []Certification{c}, s)
}

// CertifyAll adds certification records, all signed by s, in one commit:
// a scanner's scan and its findings land together or not at all.
func (r *Repo) CertifyAll(ctx context.Context, cs []Certification, s keys.Signer) (*Added, error) {
	var (
		recs  []*record.Record
		dirs  []string
		about []string
	)
	for _, c := range cs {
		rs, vdir, id, err := r.certification(ctx, c, s)
		if err != nil {
			return nil, err
		}
		for range rs {
			dirs = append(dirs, vdir)
		}
		recs = append(recs, rs...)
		about = append(about, id+" "+string(c.Kind))
	}
	if len(recs) == 0 {
		return nil, errors.New("nothing to certify")
	}
	return r.append(ctx, s, "certify "+strings.Join(about, ", "), recs, dirs)
}

// certification builds c's record (and the supersede record it needs),
// the directory they go in and the version's id.
func (r *Repo) certification(ctx context.Context, c Certification, s keys.Signer) ([]*record.Record, string, string, error) {
	if !c.Kind.IsCertification() {
		return nil, "", "", fmt.Errorf("%q is not a certification property (want one of audited, tested, reviewed, reproduced, proof-checked, scanned, vulnerable, fixed, deprecated, withdrawn)", c.Kind)
	}
	d, ref, err := r.Descriptor(ctx, c.Name, c.Version)
	vdir := VersionDir(c.Name, c.Version)
	if err != nil || c.Upstream != "" {
		u, ud, uref, uerr := r.UpstreamVersion(ctx, c.Name, c.Version, c.Upstream)
		if uerr != nil {
			return nil, "", "", uerr
		}
		d, ref, vdir = ud, uref, UpstreamVersionDir(u.Name, c.Name, c.Version)
	}
	subjects := []record.Subject{{Name: d.ID(), Digest: map[string]string{"sha256": ref.SHA256}}}
	for _, sel := range c.Artifacts {
		a, ok := d.Artifact(sel)
		if !ok {
			var have []string
			for _, a := range d.Artifacts {
				have = append(have, a.Label())
			}
			return nil, "", "", fmt.Errorf("%s has no artifact %q (it has: %s)", d.ID(), sel, strings.Join(have, ", "))
		}
		subjects = append(subjects, record.Subject{Name: a.File, Digest: map[string]string{"sha256": a.SHA256}})
	}
	var evidence []record.Evidence
	for _, p := range c.Evidence {
		ref, err := blob.PutFile(ctx, r.Blobs, p)
		if err != nil {
			return nil, "", "", fmt.Errorf("evidence %s: %w", p, err)
		}
		evidence = append(evidence, record.Evidence{Name: filepath.Base(p), Ref: ref})
	}
	pred, err := c.predicate(evidence)
	if err != nil {
		return nil, "", "", err
	}
	payload, err := record.Build(c.Kind, subjects, pred)
	if err != nil {
		return nil, "", "", err
	}
	rec, err := record.Sign(payload, s)
	if err != nil {
		return nil, "", "", err
	}
	recs := []*record.Record{rec}
	if c.Supersedes != "" {
		old, err := r.FindRecord(ctx, c.Supersedes)
		if err != nil {
			return nil, "", "", err
		}
		if old.Dir != vdir {
			return nil, "", "", fmt.Errorf("record %.16s is about another version (%s)", old.ID, old.Dir)
		}
		end, err := endRecord(record.Supersede, old.ID, "superseded by "+rec.ID, rec.ID, s)
		if err != nil {
			return nil, "", "", err
		}
		recs = append(recs, end)
	}
	return recs, vdir, d.ID(), nil
}

// predicate is the certification's predicate, by kind.
func (c *Certification) predicate(evidence []record.Evidence) (any, error) {
	switch c.Kind {
	case record.Tested:
		result := c.Result
		if result == "" {
			result = "PASSED"
		}
		conf := append([]record.ResourceDescriptor{}, c.Configuration...)
		for _, e := range evidence {
			conf = append(conf, record.ResourceDescriptor{Name: e.Name, Digest: map[string]string{"sha256": e.SHA256}, Annotations: map[string]any{"size": e.Size}})
		}
		return record.TestResultPredicate{Result: result, Configuration: conf, URL: c.Note}, nil
	case record.Vulnerable:
		results := c.Findings
		if len(results) == 0 {
			if c.VulnID == "" {
				return nil, fmt.Errorf("a vulnerable certification needs --id (an OSV, GHSA or CVE id)")
			}
			if _, err := record.ParseSeverity(c.Severity); err != nil {
				return nil, err
			}
			res := record.VulnResult{ID: c.VulnID, Severity: []record.VulnSeverity{{Method: "cairn", Score: c.Severity}}}
			if c.Affects != "" {
				res.Annotations = append(res.Annotations, map[string]string{"affects": c.Affects})
			}
			if c.Note != "" {
				res.Annotations = append(res.Annotations, map[string]string{"note": c.Note})
			}
			results = []record.VulnResult{res}
		}
		scanner := c.Scanner
		if scanner == "" {
			scanner = "https://cairn.dev/certify"
		}
		t := now()
		return record.VulnsPredicate{Scanner: record.VulnScanner{URI: scanner, Result: results}, Metadata: record.VulnMetadata{ScanStartedOn: t, ScanFinishedOn: t}}, nil
	case record.Fixed:
		if c.VulnID == "" {
			return nil, fmt.Errorf("a fixed certification needs --id: the vulnerability it answers")
		}
		return record.FixedPredicate{Vulnerabilities: strings.Split(c.VulnID, ","), Note: c.Note, Evidence: evidence, Issued: now()}, nil
	}
	return record.CertificationPredicate{Issued: now(), Note: c.Note, Evidence: evidence}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func endRecord(kind record.Kind, target, reason, replacement string, signers ...keys.Signer) (*record.Record, error) {
	payload, err := record.Build(kind, []record.Subject{{Name: "record", Digest: map[string]string{"sha256": target}}},
		record.EndPredicate{Reason: reason, Replacement: replacement, Issued: now()})
	if err != nil {
		return nil, err
	}
	return record.Sign(payload, signers...)
}

// Found locates a record in the index.
type Found struct {
	ID   string
	Dir  string
	Path string
}

// FindRecord finds a record by id or by a unique prefix of at least 8 hex
// digits.
func (r *Repo) FindRecord(ctx context.Context, idOrPrefix string) (*Found, error) {
	if len(idOrPrefix) < 8 || strings.Trim(idOrPrefix, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("record id %q: give the id, or at least its first 8 lowercase hex digits", idOrPrefix)
	}
	paths, err := r.filePaths(ctx, MainRef)
	if err != nil {
		return nil, err
	}
	var found []*Found
	for _, p := range paths {
		base := p[strings.LastIndexByte(p, '/')+1:]
		if strings.HasPrefix(base, idOrPrefix) && len(base) == 64+len(".json") {
			found = append(found, &Found{ID: strings.TrimSuffix(base, ".json"), Dir: filepath.Dir(p), Path: p})
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no record %s in %s", idOrPrefix, r.Dir)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("record prefix %s is ambiguous (%d records): give more digits", idOrPrefix, len(found))
}

// Revoke ends a record. signers is its issuer, or a threshold of root keys.
func (r *Repo) Revoke(ctx context.Context, idOrPrefix, reason string, signers ...keys.Signer) (*Added, error) {
	f, err := r.FindRecord(ctx, idOrPrefix)
	if err != nil {
		return nil, err
	}
	rec, err := endRecord(record.Revoke, f.ID, reason, "", signers...)
	if err != nil {
		return nil, err
	}
	return r.append(ctx, signers[0], "revoke "+f.ID, []*record.Record{rec}, []string{f.Dir})
}

// CreateSnapshot stores a snapshot as a blob and appends it to the index
// with the curator's snapshot record, in one commit. Every entry must be
// a published version with exactly its descriptor (the rules check).
func (r *Repo) CreateSnapshot(ctx context.Context, snap *snapshot.Snapshot, s keys.Signer) (*Added, blob.Ref, error) {
	snap.Sort()
	data, err := snap.Marshal()
	if err != nil {
		return nil, blob.Ref{}, err
	}
	ref := blob.DigestBytes(data)
	if err := r.Blobs.Put(ctx, ref, bytes.NewReader(data)); err != nil {
		return nil, ref, err
	}
	payload, err := record.Build(record.Snapshot, []record.Subject{{Name: snap.Name, Digest: map[string]string{"sha256": ref.SHA256}}},
		record.SnapshotPredicate{Snapshot: ref, Name: snap.Name, Issued: now()})
	if err != nil {
		return nil, ref, err
	}
	rec, err := record.Sign(payload, s)
	if err != nil {
		return nil, ref, err
	}
	dir := SnapshotDir(ref.SHA256)
	added, err := r.append(ctx, s, fmt.Sprintf("snapshot %s (%d packages)", snap.Name, len(snap.Packages)), []*record.Record{rec}, []string{dir},
		gitx.File{Path: dir + "/" + SnapshotFile, Data: data})
	return added, ref, err
}

// SetLabel moves a label to a snapshot of the index, named by its sha256
// (or a unique prefix of at least 8 hex digits): a signed move that names
// the label's latest move.
func (r *Repo) SetLabel(ctx context.Context, label, digest string, s keys.Signer) (*Added, blob.Ref, error) {
	if err := record.CheckLabel(label); err != nil {
		return nil, blob.Ref{}, err
	}
	c, err := r.Catalog(ctx, MainRef)
	if err != nil {
		return nil, blob.Ref{}, err
	}
	ref, err := c.findSnapshot(strings.TrimPrefix(digest, "sha256:"))
	if err != nil {
		return nil, blob.Ref{}, err
	}
	p := record.LabelPredicate{Label: label, Snapshot: ref, Issued: now()}
	if cur, err := c.Label(label); err == nil {
		p.Previous = cur.RecordID
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, ref, err
	}
	payload, err := record.Build(record.Label, []record.Subject{{Name: label, Digest: map[string]string{"sha256": ref.SHA256}}}, p)
	if err != nil {
		return nil, ref, err
	}
	rec, err := record.Sign(payload, s)
	if err != nil {
		return nil, ref, err
	}
	added, err := r.append(ctx, s, fmt.Sprintf("label %s → sha256:%.16s", label, ref.SHA256), []*record.Record{rec}, []string{LabelDir(label)})
	return added, ref, err
}

// KeyGrant asks for a grant.
type KeyGrant struct {
	Key     ed25519.PublicKey
	Holder  string
	Scopes  []string
	Expires *time.Time
}

// Grant grants a key scopes, signed by a threshold of root keys.
func (r *Repo) Grant(ctx context.Context, g KeyGrant, roots ...keys.Signer) (*Added, error) {
	for _, s := range g.Scopes {
		if _, err := record.ParseScope(s); err != nil {
			return nil, err
		}
	}
	payload, err := record.Build(record.Grant, []record.Subject{keySubject(g.Key)},
		record.GrantPredicate{Key: keys.FormatPublic(g.Key), Holder: g.Holder, Scopes: g.Scopes, Expires: g.Expires, Issued: now()})
	if err != nil {
		return nil, err
	}
	rec, err := record.Sign(payload, roots...)
	if err != nil {
		return nil, err
	}
	return r.append(ctx, roots[0], fmt.Sprintf("grant %s to %s: %s", keys.ID(g.Key), g.Holder, strings.Join(g.Scopes, " ")),
		[]*record.Record{rec}, []string{KeyDir(keys.IDHex(g.Key))})
}

func keySubject(pub ed25519.PublicKey) record.Subject {
	return record.Subject{Name: keys.ID(pub), Digest: map[string]string{"sha256": keys.IDHex(pub)}}
}

// RevokeKey revokes a key, signed by a threshold of root keys. What the
// key signed before stays valid; it signs nothing after.
func (r *Repo) RevokeKey(ctx context.Context, id, reason string, roots ...keys.Signer) (*Added, error) {
	st, err := r.headState(ctx)
	if err != nil {
		return nil, err
	}
	k, err := st.Key(id)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, fmt.Errorf("key %s is not granted in %s (see cairn key list)", id, r.Dir)
	}
	payload, err := record.Build(record.RevokeKey, []record.Subject{keySubject(k.Pub)}, record.RevokeKeyPredicate{Reason: reason, Issued: now()})
	if err != nil {
		return nil, err
	}
	rec, err := record.Sign(payload, roots...)
	if err != nil {
		return nil, err
	}
	return r.append(ctx, roots[0], "revoke key "+id, []*record.Record{rec}, []string{KeyDir(keys.IDHex(k.Pub))})
}

// RotateRoot replaces the root keys and threshold. It must be signed by a
// threshold of the current root keys and of the new ones: oldSigners and
// newSigners all sign.
func (r *Repo) RotateRoot(ctx context.Context, oldSigners, newSigners []keys.Signer, threshold int) (*Added, error) {
	st, err := r.headState(ctx)
	if err != nil {
		return nil, err
	}
	cur, err := st.Root()
	if err != nil {
		return nil, err
	}
	p := record.RootPredicate{Version: cur.Version + 1, Threshold: threshold, Previous: cur.RecordID, Issued: now()}
	var subjects []record.Subject
	for _, s := range newSigners {
		p.Keys = append(p.Keys, record.RootKey{Key: keys.FormatPublic(s.Public())})
		subjects = append(subjects, keySubject(s.Public()))
	}
	payload, err := record.Build(record.Root, subjects, p)
	if err != nil {
		return nil, err
	}
	rec, err := record.Sign(payload, append(append([]keys.Signer(nil), oldSigners...), newSigners...)...)
	if err != nil {
		return nil, err
	}
	return r.append(ctx, oldSigners[0], fmt.Sprintf("root version %d", p.Version), []*record.Record{rec}, []string{"root"})
}
