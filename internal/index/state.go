package index

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/record"
)

// Root is the root of trust at some commit.
type Root struct {
	Version   int
	Keys      map[string]ed25519.PublicKey // by key id
	Holders   map[string]string
	Threshold int
	RecordID  string
}

// Grant is one active grant of scopes to a key.
type Grant struct {
	Holder   string
	Scopes   []record.Scope
	Raw      []string
	Expires  *time.Time
	Issued   time.Time
	RecordID string
}

// Key is what the index says of one key.
type Key struct {
	ID        string
	Pub       ed25519.PublicKey
	Grants    []Grant
	RevokedBy string // the revoke-key record, "" while the key is valid
	Reason    string
	// RevokedLeaf and RevokedTime place the revocation in the index's
	// log: the leaf index of the revoke-key record's file and its
	// commit's time, when the reader knows them (Key.PlaceRevocation);
	// 0 and the zero time otherwise (leaf 0 is the introduction, never a
	// revocation). A checkpoint of a tree of at most RevokedLeaf leaves
	// was signed before the revocation (Key.MayHaveCheckpointed).
	RevokedLeaf int64
	RevokedTime time.Time
}

// Holder returns the name the root gave the key's holder: its first
// grant's, the earliest issued (the least record id among grants issued
// at once). Since rule one-holder every grant of a key names one holder;
// before it, grants could differ, and whichever order a reader met them
// in (a replay in the index's order, a tree's state in its files'), the
// holder is the same.
func (k *Key) Holder() string {
	if len(k.Grants) == 0 {
		return ""
	}
	first := &k.Grants[0]
	for i := range k.Grants[1:] {
		g := &k.Grants[i+1]
		if g.Issued.Before(first.Issued) || g.Issued.Equal(first.Issued) && g.RecordID < first.RecordID {
			first = g
		}
	}
	return first.Holder
}

// Active returns the grants not expired at t.
func (k *Key) Active(t time.Time) []Grant {
	var out []Grant
	for _, g := range k.Grants {
		if g.live(t) {
			out = append(out, g)
		}
	}
	return out
}

// MaySign is the one key-may-sign check, which the rules ask of every
// signature and the certifier of every version before it signs: the key
// is not revoked, a grant of it is live at at, and a live grant's scope
// allows a record of kind about name (record.Scope.Allows: a package
// name, or a label). Revoke and supersede records need no scope: who may
// end a record is the issuer-only rule. certifyOnly counts certify
// scopes alone: records about an upstream's versions, which no publish
// scope here covers. Whether the signature verifies is the caller's
// check. An empty name asks about some name (record.Scope.Covers, with
// certifyOnly): what a certifier asks of its key before it knows the
// versions it will sign. It returns nil or a *SignError naming the rule
// broken.
func (k *Key) MaySign(at time.Time, kind record.Kind, name string, certifyOnly bool) error {
	if k.RevokedBy != "" {
		return &SignError{Rule: RuleKeyRevoked, Key: k, Kind: kind, Name: name, At: at}
	}
	active := k.Active(at)
	if len(active) == 0 {
		return &SignError{Rule: RuleKeyExpired, Key: k, Kind: kind, Name: name, At: at}
	}
	if kind == record.Revoke || kind == record.Supersede {
		return nil
	}
	var have []string
	for _, g := range active {
		for i, s := range g.Scopes {
			ok := s.Allows(kind, name)
			if name == "" {
				ok = s.Covers(kind)
			}
			if ok && (!certifyOnly || s.Action == "certify") {
				return nil
			}
			have = append(have, g.Raw[i])
		}
	}
	return &SignError{Rule: RuleScope, Key: k, Kind: kind, Name: name, At: at, Have: have}
}

// SignError says why a key may not sign a record: its rule (key-revoked,
// key-expired or scope) and the evidence: the key, what it would sign,
// when, and the live scopes it holds.
type SignError struct {
	Rule string
	Key  *Key
	Kind record.Kind
	Name string
	At   time.Time
	Have []string // the scopes of the key's live grants (scope)
	// Size is the tree size of the checkpoint judged, and Detail why a
	// key revoked since may not have signed it
	// (Key.MayHaveCheckpointed); 0 and "" for every other refusal.
	Size   int64
	Detail string
}

func (e *SignError) Error() string {
	k := e.Key
	switch e.Rule {
	case RuleKeyRevoked:
		if e.Detail != "" {
			return fmt.Sprintf("key %s (holder %s) was revoked by record %.16s (%s)%s; the checkpoint of %d leaves signed at %s %s",
				k.ID, k.Holder(), k.RevokedBy, k.Reason, k.revokedWhere(), e.Size, e.At.UTC().Format(time.RFC3339), e.Detail)
		}
		return fmt.Sprintf("key %s (holder %s) was revoked by record %.16s (%s); it signs nothing after its revocation", k.ID, k.Holder(), k.RevokedBy, k.Reason)
	case RuleKeyExpired:
		return fmt.Sprintf("every grant of key %s (holder %s) had expired at %s", k.ID, k.Holder(), e.At.UTC().Format(time.RFC3339))
	}
	if e.Kind == "" { // Key.MayCheckpoint
		return fmt.Sprintf("key %s (holder %s) has scopes [%s]; signing %s needs checkpoint", k.ID, k.Holder(), strings.Join(e.Have, " "), e.Name)
	}
	return fmt.Sprintf("key %s (holder %s) has scopes [%s]; %s records on %s need %s", k.ID, k.Holder(), strings.Join(e.Have, " "), e.Kind, e.Name, record.Needed(e.Kind, e.Name))
}

// Unwrap returns ErrRule: a signature a key may not make breaks a rule.
func (e *SignError) Unwrap() error { return ErrRule }

// Version is a published version.
type Version struct {
	Descriptor blob.Ref
	UUID       string
	Artifacts  map[string]bool // artifact sha256s
}

// Upstream is an upstream index the root declared: its packages are
// served beside the repository's own, verified against its own root.
type Upstream struct {
	Name         string `json:"name"`
	URL          string `json:"url"`
	Introduction string `json:"introduction"`
	RecordID     string `json:"record_id"`            // the declaration
	RevokedBy    string `json:"revoked_by,omitempty"` // the root's revocation, "" while it is followed
}

// LabelMove is a label's latest move: the snapshot it points at.
type LabelMove struct {
	Label    string
	Snapshot blob.Ref
	RecordID string
	Issuer   string
}

// PolicyVersion is a policy's latest version: the record that published
// it and the sha256 of its text.
type PolicyVersion struct {
	Name     string
	Digest   string // sha256 (hex) of the policy's text
	RecordID string
	Issuer   string // key id of its (first) signature
}

// Rec is what the rules need of an earlier record.
type Rec struct {
	Kind    record.Kind
	Issuer  string      // key id of its (first) signature
	EndedBy string      // the revoke or supersede record that ended it, "" while it stands
	EndKind record.Kind // record.Revoke or record.Supersede, when EndedBy is set
}

// ended returns how rec was ended, as a past participle: "revoked" or
// "superseded".
func (r *Rec) ended() string {
	if r.EndKind == record.Supersede {
		return "superseded"
	}
	return "revoked"
}

// State is the index as of one commit, as the rules read it. Methods
// return nil (and no error) for what does not exist.
type State interface {
	Root() (*Root, error)
	Key(id string) (*Key, error)
	Version(name, version string) (*Version, error)
	UUID(name string) (string, error) // "" for a package with no version
	// Folded returns the name, as published, of the package whose name
	// case-folds onto name's (descriptor.FoldName); "" if none.
	Folded(name string) (string, error)
	Record(dir, id string) (*Rec, error)
	Upstream(name string) (*Upstream, error)
	Snapshot(hex string) (*blob.Ref, error)     // a snapshot created in the index, by sha256
	Label(name string) (*LabelMove, error)      // a label's latest move
	Policy(name string) (*PolicyVersion, error) // a policy's latest version
}

// treeState reads a tree lazily through Files: a commit's, through the
// batch reader, or what a light client proved. It is safe for concurrent
// use.
type treeState struct {
	files Files

	mu   sync.Mutex
	pkgs map[string][]DirEntry // package directory listings; nil: no such package

	claimsMu sync.Mutex // guards claims: see publishClaims
	claims   []claim
	claimsOK bool
}

// pkg lists a package's version directories, reading each package once.
func (t *treeState) pkg(name string) ([]DirEntry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.pkgs[name]; ok {
		return e, nil
	}
	e, err := t.tree(layout.PackageDir(name))
	if err != nil {
		return nil, err
	}
	e = versionDirs(e)
	if t.pkgs == nil {
		t.pkgs = map[string][]DirEntry{}
	}
	t.pkgs[name] = e
	return e, nil
}

// versionDirs keeps the version directories of a package directory's
// listing: beside them may lie the first element of a longer name of the
// same shard ("v2" of example.com/greet/v2 beside example.com/greet's
// versions), which descriptor.CheckName keeps from reading as a version.
// Nil if there are none.
func versionDirs(entries []DirEntry) []DirEntry {
	var out []DirEntry
	for _, e := range entries {
		if e.Dir && descriptor.CheckVersion(e.Name) == nil {
			out = append(out, e)
		}
	}
	return out
}

// Folded finds the package whose name case-folds onto name's
// (descriptor.FoldName): its name as published, "" if none. Every case
// variant of a name lies in one shard (layout.ShardDir), so this walks
// that shard's directories element by element, case-insensitively.
// Files that cannot list a shard (a light client's: a shard spans many
// subjects of the log's map, ErrUnlisted) are asked for the name and its
// lowercase form, the subjects they can prove; the publish grants, which
// match case-folded, cover the rest (internalWhy).
func (t *treeState) Folded(name string) (string, error) {
	if vs, err := t.pkg(name); err != nil || len(vs) > 0 {
		if err != nil {
			return "", err
		}
		return name, nil
	}
	elems := strings.Split(name, "/")
	found := ""
	var walk func(dir, prefix string, i int) error
	walk = func(dir, prefix string, i int) error {
		if found != "" {
			return nil
		}
		if i == len(elems) {
			if es, err := t.tree(dir); err != nil || len(versionDirs(es)) == 0 {
				return err
			}
			found = prefix
			return nil
		}
		es, err := t.tree(dir)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Dir && strings.EqualFold(e.Name, elems[i]) {
				p := e.Name
				if prefix != "" {
					p = prefix + "/" + e.Name
				}
				if err := walk(dir+"/"+e.Name, p, i+1); err != nil || found != "" {
					return err
				}
			}
		}
		return nil
	}
	err := walk(layout.ShardDir(name), "", 0)
	if errors.Is(err, ErrUnlisted) {
		lower := descriptor.FoldName(name)
		if vs, err := t.pkg(lower); err != nil || len(vs) > 0 {
			if err != nil {
				return "", err
			}
			return lower, nil
		}
		return "", nil
	}
	return found, err
}

// read reads a file; nil (and no error) if there is none.
func (t *treeState) read(path string) ([]byte, error) {
	data, err := t.files.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// tree lists a directory; nil (and no error) if there is none.
func (t *treeState) tree(path string) ([]DirEntry, error) {
	e, err := t.files.List(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return e, err
}

func (t *treeState) Root() (*Root, error) {
	entries, err := t.tree("root")
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	data, err := t.read("root/" + entries[len(entries)-1].Name)
	if err != nil {
		return nil, err
	}
	rec, err := record.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("root record %s: %w", entries[len(entries)-1].Name, err)
	}
	return rootOf(rec)
}

func rootOf(rec *record.Record) (*Root, error) {
	p, ok := rec.Predicate.(record.RootPredicate)
	if !ok {
		return nil, fmt.Errorf("record %s is a %s record, not a root", rec.ID, rec.Kind)
	}
	r := &Root{Version: p.Version, Threshold: p.Threshold, RecordID: rec.ID, Keys: map[string]ed25519.PublicKey{}, Holders: map[string]string{}}
	for _, k := range p.Keys {
		pub, _, err := keys.ParsePublic([]byte(k.Key))
		if err != nil {
			return nil, fmt.Errorf("root record %s: %w", rec.ID, err)
		}
		id := keys.ID(pub)
		if _, dup := r.Keys[id]; dup {
			return nil, fmt.Errorf("root record %s lists key %s twice", rec.ID, id)
		}
		r.Keys[id] = pub
		r.Holders[id] = k.Holder
	}
	return r, nil
}

func (t *treeState) Key(id string) (*Key, error) {
	h, err := keys.HexFromID(id)
	if err != nil {
		return nil, nil
	}
	entries, err := t.tree(layout.KeyDir(h))
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	k := &Key{ID: id}
	for _, e := range entries {
		data, err := t.read(layout.KeyDir(h) + "/" + e.Name)
		if err != nil {
			return nil, err
		}
		rec, err := record.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", layout.KeyDir(h), e.Name, err)
		}
		switch p := rec.Predicate.(type) {
		case record.GrantPredicate:
			if err := k.addGrant(rec.ID, p); err != nil {
				return nil, err
			}
		case record.RevokeKeyPredicate:
			k.RevokedBy, k.Reason = rec.ID, p.Reason
		}
	}
	if k.Pub == nil {
		return nil, nil
	}
	return k, nil
}

func (k *Key) addGrant(id string, p record.GrantPredicate) error {
	pub, _, err := keys.ParsePublic([]byte(p.Key))
	if err != nil {
		return err
	}
	k.Pub = pub
	g := Grant{Holder: p.Holder, Raw: p.Scopes, Expires: p.Expires, Issued: p.Issued, RecordID: id}
	for _, s := range p.Scopes {
		sc, err := record.ParseScope(s)
		if err != nil {
			return err
		}
		g.Scopes = append(g.Scopes, sc)
	}
	k.Grants = append(k.Grants, g)
	return nil
}

func (t *treeState) Version(name, version string) (*Version, error) {
	versions, err := t.pkg(name)
	if err != nil || versions == nil {
		return nil, err // a package with no versions has not this one
	}
	data, err := t.read(layout.VersionDir(name, version) + "/" + layout.DescriptorFile)
	if err != nil || data == nil {
		return nil, err
	}
	d, err := descriptor.Parse(data)
	if err != nil {
		return nil, err
	}
	return versionOf(d, data), nil
}

func versionOf(d *descriptor.Descriptor, data []byte) *Version {
	v := &Version{Descriptor: blob.DigestBytes(data), UUID: d.UUID, Artifacts: map[string]bool{}}
	for _, a := range d.Artifacts {
		v.Artifacts[a.SHA256] = true
	}
	return v
}

func (t *treeState) UUID(name string) (string, error) {
	entries, err := t.pkg(name)
	if err != nil || len(entries) == 0 {
		return "", err
	}
	v, err := t.Version(name, entries[0].Name)
	if err != nil || v == nil {
		return "", err
	}
	return v.UUID, nil
}

func (t *treeState) Record(dir, id string) (*Rec, error) {
	data, err := t.read(layout.RecordPath(dir, id))
	if err != nil || data == nil {
		return nil, err
	}
	rec, err := record.Parse(data)
	if err != nil {
		return nil, err
	}
	r := &Rec{Kind: rec.Kind, Issuer: rec.Issuer()}
	// Ends sit beside the record they end: the first one found (in file
	// order; the rules admit one) ended it.
	entries, err := t.tree(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.Dir || e.Name == layout.DescriptorFile || e.Name == id+".json" {
			continue
		}
		data, err := t.read(dir + "/" + e.Name)
		if err != nil {
			return nil, err
		}
		end, err := record.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, e.Name, err)
		}
		if (end.Kind == record.Revoke || end.Kind == record.Supersede) && end.Statement.Subject[0].SHA256() == id {
			r.EndedBy, r.EndKind = end.ID, end.Kind
			break
		}
	}
	return r, nil
}

func (t *treeState) Upstream(name string) (*Upstream, error) {
	entries, err := t.tree(layout.UpstreamDir(name))
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	var u Upstream
	for _, e := range entries {
		if e.Dir {
			continue
		}
		data, err := t.read(layout.UpstreamDir(name) + "/" + e.Name)
		if err != nil {
			return nil, err
		}
		rec, err := record.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", layout.UpstreamDir(name), e.Name, err)
		}
		switch p := rec.Predicate.(type) {
		case record.UpstreamPredicate:
			u.Name, u.URL, u.Introduction, u.RecordID = p.Name, p.URL, p.Introduction, rec.ID
		case record.EndPredicate:
			u.RevokedBy = rec.ID
		}
	}
	if u.RecordID == "" {
		return nil, nil
	}
	return &u, nil
}

func (t *treeState) Snapshot(hex string) (*blob.Ref, error) {
	if !blob.IsDigest(hex) {
		return nil, nil
	}
	data, err := t.read(layout.SnapshotDir(hex) + "/" + layout.SnapshotFile)
	if err != nil || data == nil {
		return nil, err
	}
	ref := blob.DigestBytes(data)
	return &ref, nil
}

func (t *treeState) Label(name string) (*LabelMove, error) {
	return chainHead(t, layout.LabelDir(name), "label "+name+": its moves", func(rec *record.Record) (LabelMove, string, bool) {
		p, ok := rec.Predicate.(record.LabelPredicate)
		return LabelMove{Label: name, Snapshot: p.Snapshot, RecordID: rec.ID, Issuer: rec.Issuer()}, p.Previous, ok
	})
}

func (t *treeState) Policy(name string) (*PolicyVersion, error) {
	return chainHead(t, layout.PolicyDir(name), "policy "+name+": its versions", func(rec *record.Record) (PolicyVersion, string, bool) {
		p, ok := rec.Predicate.(record.PolicyPredicate)
		return PolicyVersion{Name: name, Digest: record.PolicyDigest(p.Policy), RecordID: rec.ID, Issuer: rec.Issuer()}, p.Previous, ok
	})
}

// chainHead reads the records of dir, each naming the one before it
// (a label's moves, a policy's versions), and returns the item of the one
// no other names: the latest, as the rules keep them one chain. of makes
// a record's item and names the record before it; it says !ok of a
// record of another kind, which is passed over. what names the chain in
// the error when it is broken; nil if dir holds nothing.
func chainHead[T any](t *treeState, dir, what string, of func(*record.Record) (item T, previous string, ok bool)) (*T, error) {
	entries, err := t.tree(dir)
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	var items []T
	var ids []string
	named := map[string]bool{}
	for _, e := range entries {
		data, err := t.read(dir + "/" + e.Name)
		if err != nil {
			return nil, err
		}
		rec, err := record.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, e.Name, err)
		}
		item, previous, ok := of(rec)
		if !ok {
			continue
		}
		items, ids = append(items, item), append(ids, rec.ID)
		named[previous] = true
	}
	for i := range items {
		if !named[ids[i]] {
			return &items[i], nil
		}
	}
	return nil, fmt.Errorf("%s form no chain", what)
}

// Overlay is a State made of a base State plus what the commits applied
// on top of it added. Lookups in the base are cached. A nil base is the
// empty index.
type Overlay struct {
	base     State
	root     *Root
	keys     map[string]*Key
	versions map[string]*Version
	uuids    map[string]string
	folds    map[string]string // FoldName(name) → the name published, "" for none (see Folded)
	records  map[string]*Rec
	ups      map[string]*Upstream
	snaps    map[string]*blob.Ref
	labels   map[string]*LabelMove
	policies map[string]*PolicyVersion

	changed  map[string]bool // keys granted or revoked in the overlay
	claims   []claim         // see publishClaims
	claimsOK bool
}

var _ State = (*Overlay)(nil)

// NewOverlay returns an overlay on base (nil for the empty index).
func NewOverlay(base State) *Overlay {
	return &Overlay{base: base, keys: map[string]*Key{}, versions: map[string]*Version{}, uuids: map[string]string{}, folds: map[string]string{}, records: map[string]*Rec{}, ups: map[string]*Upstream{}, snaps: map[string]*blob.Ref{}, labels: map[string]*LabelMove{}, policies: map[string]*PolicyVersion{}}
}

// Size is the number of entries the overlay holds.
func (o *Overlay) Size() int {
	return len(o.keys) + len(o.versions) + len(o.uuids) + len(o.records) + len(o.ups) + len(o.snaps) + len(o.labels) + len(o.policies)
}

func (o *Overlay) child() *Overlay {
	c := NewOverlay(o)
	return c
}

// merge moves a child's entries into o.
func (o *Overlay) merge(c *Overlay) {
	o.mergeClaims(c)
	if c.root != nil {
		o.root = c.root
	}
	for k, v := range c.keys {
		o.keys[k] = v
	}
	for k, v := range c.versions {
		o.versions[k] = v
	}
	for k, v := range c.uuids {
		o.uuids[k] = v
	}
	for k, v := range c.folds {
		o.folds[k] = v
	}
	for k, v := range c.records {
		o.records[k] = v
	}
	for k, v := range c.ups {
		o.ups[k] = v
	}
	for k, v := range c.snaps {
		o.snaps[k] = v
	}
	for k, v := range c.labels {
		o.labels[k] = v
	}
	for k, v := range c.policies {
		o.policies[k] = v
	}
}

func (o *Overlay) Root() (*Root, error) {
	if o.root != nil || o.base == nil {
		return o.root, nil
	}
	r, err := o.base.Root()
	if err == nil {
		o.root = r
	}
	return r, err
}

func (o *Overlay) Key(id string) (*Key, error) {
	if k, ok := o.keys[id]; ok {
		return k, nil
	}
	if o.base == nil {
		return nil, nil
	}
	k, err := o.base.Key(id)
	if err == nil {
		o.keys[id] = k
	}
	return k, err
}

func (o *Overlay) Version(name, version string) (*Version, error) {
	id := name + "@" + version
	if v, ok := o.versions[id]; ok {
		return v, nil
	}
	if o.base == nil {
		return nil, nil
	}
	v, err := o.base.Version(name, version)
	if err == nil {
		o.versions[id] = v
	}
	return v, err
}

func (o *Overlay) UUID(name string) (string, error) {
	if u, ok := o.uuids[name]; ok {
		return u, nil
	}
	if o.base == nil {
		return "", nil
	}
	u, err := o.base.UUID(name)
	if err == nil {
		o.uuids[name] = u
	}
	return u, err
}

func (o *Overlay) Folded(name string) (string, error) {
	f := descriptor.FoldName(name)
	if n, ok := o.folds[f]; ok {
		return n, nil
	}
	if o.base == nil {
		return "", nil
	}
	n, err := o.base.Folded(name)
	if err == nil {
		o.folds[f] = n
	}
	return n, err
}

// addPackage notes that a version of name, of uuid, was published.
func (o *Overlay) addPackage(name, uuid string) {
	o.uuids[name] = uuid
	o.folds[descriptor.FoldName(name)] = name
}

func (o *Overlay) Record(dir, id string) (*Rec, error) {
	if r, ok := o.records[dir+"/"+id]; ok {
		return r, nil
	}
	if o.base == nil {
		return nil, nil
	}
	r, err := o.base.Record(dir, id)
	if err == nil {
		o.records[dir+"/"+id] = r
	}
	return r, err
}

func (o *Overlay) Upstream(name string) (*Upstream, error) {
	if u, ok := o.ups[name]; ok {
		return u, nil
	}
	if o.base == nil {
		return nil, nil
	}
	u, err := o.base.Upstream(name)
	if err == nil {
		o.ups[name] = u
	}
	return u, err
}

func (o *Overlay) Snapshot(hex string) (*blob.Ref, error) {
	if r, ok := o.snaps[hex]; ok {
		return r, nil
	}
	if o.base == nil {
		return nil, nil
	}
	r, err := o.base.Snapshot(hex)
	if err == nil {
		o.snaps[hex] = r
	}
	return r, err
}

func (o *Overlay) Label(name string) (*LabelMove, error) {
	if m, ok := o.labels[name]; ok {
		return m, nil
	}
	if o.base == nil {
		return nil, nil
	}
	m, err := o.base.Label(name)
	if err == nil {
		o.labels[name] = m
	}
	return m, err
}

// Policy returns a policy's latest version; nil if it has none.
func (o *Overlay) Policy(name string) (*PolicyVersion, error) {
	if v, ok := o.policies[name]; ok {
		return v, nil
	}
	if o.base == nil {
		return nil, nil
	}
	v, err := o.base.Policy(name)
	if err == nil {
		o.policies[name] = v
	}
	return v, err
}

// updateKey returns a copy of key id to modify (or a new one).
func (o *Overlay) updateKey(id string) (*Key, error) {
	k, err := o.Key(id)
	if err != nil {
		return nil, err
	}
	c := &Key{ID: id}
	if k != nil {
		*c = *k
		c.Grants = append([]Grant(nil), k.Grants...)
	}
	o.keys[id] = c
	o.keyChanged(id)
	return c, nil
}

// seenState is a tree's state for a replay that has seen every package
// created up to that tree: a name it has not seen has no versions. It
// holds the case-folded names (descriptor.FoldName), so that it answers
// Folded too.
type seenState struct {
	*treeState
	names *nameSet
}

func (s *seenState) Version(name, version string) (*Version, error) {
	if !s.names.has(descriptor.FoldName(name)) {
		return nil, nil
	}
	return s.treeState.Version(name, version)
}

func (s *seenState) UUID(name string) (string, error) {
	if !s.names.has(descriptor.FoldName(name)) {
		return "", nil
	}
	return s.treeState.UUID(name)
}

func (s *seenState) Folded(name string) (string, error) {
	if !s.names.has(descriptor.FoldName(name)) {
		return "", nil
	}
	return s.treeState.Folded(name)
}

// A nameSet is the package names a replay from the introduction has
// seen, by hash, in memory that does not grow with the index: exactly
// (a set of 64-bit hashes) up to nameSetExact names, then in a Bloom
// filter of a fixed nameSetBits bits. Either may answer "seen" for a
// name it was not given (a hash collision; a filter's false positive:
// about one in 500,000 at a million packages, one in 25 at ten million),
// which only costs a lookup in git; it never forgets a name it was
// given. Not safe for concurrent use.
type nameSet struct {
	exact map[uint64]struct{} // nil once bits holds the names
	bits  []uint64
}

// nameSetExact is how many names a nameSet holds exactly (about 2 MiB
// of map); past it, its Bloom filter. (A variable so that tests can make
// a replay use the filter.)
var nameSetExact = 1 << 16

const (
	// nameSetBits is the size of a nameSet's filter (8 MiB), and
	// nameSetProbes how many of its bits a name sets.
	nameSetBits   = 1 << 26
	nameSetProbes = 5
)

// nameSeed seeds the names' hashes, one per process: a Carry's set
// serves the next verification in the same process only.
var nameSeed = maphash.MakeSeed()

func newNameSet() *nameSet { return &nameSet{exact: map[uint64]struct{}{}} }

// add adds a name (case-folded).
func (s *nameSet) add(name string) {
	h := maphash.String(nameSeed, name)
	if s.exact != nil {
		if s.exact[h] = struct{}{}; len(s.exact) <= nameSetExact {
			return
		}
		s.bits = make([]uint64, nameSetBits/64)
		for h := range s.exact {
			s.set(h)
		}
		s.exact = nil
		return
	}
	s.set(h)
}

// has says whether name (case-folded) may have been added: false means
// it was not.
func (s *nameSet) has(name string) bool {
	h := maphash.String(nameSeed, name)
	if s.exact != nil {
		_, ok := s.exact[h]
		return ok
	}
	for _, b := range probes(h) {
		if s.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// set sets the filter's bits of the name of hash h.
func (s *nameSet) set(h uint64) {
	for _, b := range probes(h) {
		s.bits[b/64] |= 1 << (b % 64)
	}
}

// probes returns the filter's bits of the name of hash h: two hashes of
// 32 bits from the one of 64, each probe the first plus a multiple of the
// second.
func probes(h uint64) (p [nameSetProbes]uint32) {
	h1, h2 := uint32(h), uint32(h>>32)|1
	for i := range p {
		p[i] = (h1 + uint32(i)*h2) % nameSetBits
	}
	return p
}
