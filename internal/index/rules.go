package index

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"cairn.dev/cairn/internal/blob"
	"cairn.dev/cairn/internal/descriptor"
	"cairn.dev/cairn/internal/index/layout"
	"cairn.dev/cairn/internal/keys"
	"cairn.dev/cairn/internal/policy"
	"cairn.dev/cairn/internal/record"
	"cairn.dev/cairn/internal/snapshot"
)

// The rules, by the names errors carry.
const (
	RuleAppendOnly   = "append-only"    // a commit only adds files
	RuleLinear       = "linear-history" // one parent per commit after the introduction
	RuleIntroduction = "introduction"   // the first commit is the pinned root record alone
	RuleWellFormed   = "well-formed"    // every file parses and sits at the path its content implies
	RuleSignature    = "signature"      // the signature verifies under a key granted in the index
	RuleScope        = "scope"          // the key is granted the scope the record needs
	RuleKeyRevoked   = "key-revoked"    // a revoked key signs nothing more
	RuleKeyExpired   = "key-expired"    // an expired grant signs nothing more
	RulePublishOnce  = "publish-once"   // a version is published once, with one descriptor
	RuleUUID         = "uuid-fixed"     // every version of a package has its uuid
	RuleSubject      = "subject"        // a certification speaks of a published version and its artifacts
	RuleIssuerOnly   = "issuer-only"    // only the issuer or the root ends a record
	RuleEndOnce      = "end-once"       // a record is ended once: nothing revokes or supersedes an ended record, nor names one as replacement
	RuleThreshold    = "threshold"      // root acts need a threshold of distinct root keys
	RuleRootRotation = "root-rotation"  // rotations chain, signed by old and new roots
	RuleTimeOrder    = "time-order"     // a commit is not older than its parent
	RuleUpstream     = "upstream"       // upstreams are declared once by the root; records on their versions need one followed
	RuleSnapshot     = "snapshot"       // a snapshot names published descriptors and comes with its curator's record
	RuleLabel        = "label-chain"    // a label moves to a snapshot of the index, each move naming the one before
	RulePolicy       = "policy-chain"   // a policy's versions compile, each naming the one before, signed by the root or a policy:NAME key
	RuleActWindow    = "act-window"     // a root act enters the index by its apply_by time
	RuleActIndex     = "act-index"      // a root act names the index it is for
	RuleOneHolder    = "one-holder"     // every grant of a key names the same holder
	RuleNonEmpty     = "non-empty"      // a commit adds a file: the index holds nobody's unsigned commits
	RuleSeverity     = "severity"       // a vulnerable record's scores read: one cairn ranks, none a number outside CVSS's 0–10
	RuleFoldedName   = "name-case"      // a new package's name does not case-fold onto another's (descriptor.FoldName)
)

// ruleSince is when each rule added after the index format's first release
// began. A commit dated before it is judged without it, so that a history
// made under the earlier rules still verifies (a record revoked twice, a
// scanner's "99" beside cairn's "high"); a later commit cannot claim the
// earlier rules, since commit times only grow (time-order) and a server
// bounds a pushed commit's date by its own clock.
var ruleSince = map[string]time.Time{
	RuleEndOnce:   time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
	RuleSeverity:  time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
	RuleActIndex:  time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
	RuleOneHolder: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
	RuleNonEmpty:  time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
}

// RuleSince says from when rule holds: the zero time for the rules the
// index began with.
func RuleSince(rule string) time.Time { return ruleSince[rule] }

// ErrRule is the parent of every RuleError.
var ErrRule = errors.New("index rule broken")

// RuleError is a broken rule, with the evidence: which commit, which file,
// which record, which key.
type RuleError struct {
	Rule   string
	Commit string
	Path   string
	Record string
	Key    string
	Detail string
	Err    error  // the cause, when another package's check found it (a malformed record)
	Apart  bool   // the record is a root act signed apart (it has an apply_by time): see Hint
	hint   string // what to do, where the rule's own hint does not fit (Hint)
}

func (e *RuleError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rule %s broken", e.Rule)
	if e.Commit != "" {
		fmt.Fprintf(&b, " in commit %.12s", e.Commit)
	}
	if e.Path != "" {
		fmt.Fprintf(&b, " at %s", e.Path)
	}
	if e.Record != "" {
		fmt.Fprintf(&b, " (record %.16s", e.Record)
		if e.Key != "" {
			fmt.Fprintf(&b, ", signed by %s", e.Key)
		}
		b.WriteString(")")
	} else if e.Key != "" {
		fmt.Fprintf(&b, " (signed by %s)", e.Key)
	}
	b.WriteString(": " + e.Detail)
	return b.String()
}

// Unwrap returns ErrRule and the cause, if any, so that errors.As finds
// both families (a *RuleError for a malformed record is also a
// record.ErrMalformed).
func (e *RuleError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrRule, e.Err}
	}
	return []error{ErrRule}
}

// File is one changed path of a commit.
type File struct {
	Path   string
	Status byte   // 'A', 'M', 'D', 'T'
	Mode   string // the new mode
	Data   []byte // for added files

	// Filled by prepare.
	Rec  *record.Record
	Desc *descriptor.Descriptor
	Snap *snapshot.Snapshot
	Loc  layout.Location
	Err  error
}

// Commit is one commit as the rules see it.
type Commit struct {
	ID      string
	Parents []string
	Time    time.Time // committer time: when the records were appended
	Files   []*File

	// ParentTime is the parent's committer time (zero: not checked).
	// Grant expiry and "signed before revocation" are judged by commit
	// times, so a commit may not claim to be older than its parent.
	ParentTime time.Time
	// Received, when set, is when a server received the commit (its
	// clock, as it checks a push): a grant is judged live at the later
	// of it and Time, so that a key whose grant has ended cannot sign by
	// dating its commit back within the server's clock skew. A replay of
	// what a server accepted (no Received) judges by Time alone, and
	// accepts it.
	Received time.Time
}

// prepare parses an added file. It is the part of checking that needs no
// state, so that it can run in parallel ahead of the rules.
func prepare(f *File) {
	if f.Status != 'A' {
		return
	}
	f.Loc, f.Err = layout.ParsePath(f.Path)
	if f.Err != nil {
		return
	}
	switch f.Loc.Place {
	case layout.PlaceDescriptor:
		f.Desc, f.Err = descriptor.Parse(f.Data)
		return
	case layout.PlaceSnapshotFile:
		f.Snap, f.Err = snapshot.Parse(f.Data)
		return
	}
	f.Rec, f.Err = record.Parse(f.Data)
}

// order is the order in which a commit's files are checked: descriptors,
// then package records, then records that end others, then the key and
// root records, so that within one commit every package record is checked
// against the keys as they were at the parent commit.
func order(f *File) int {
	if f.Desc != nil || f.Snap != nil {
		return 0
	}
	switch f.Rec.Kind {
	case record.Upstream:
		return 0
	case record.Authored, record.Snapshot:
		return 1
	case record.Supersede:
		return 3
	case record.Revoke:
		return 4
	case record.Grant:
		return 5
	case record.RevokeKey:
		return 6
	case record.Root:
		return 7
	}
	return 2
}

// Apply checks a commit against the state of its parent and, if every
// rule holds, adds its effects to st. On error st is unchanged. pinned is
// the repository's introduction (the id of its first root record).
func Apply(st *Overlay, c *Commit, pinned string) error {
	root, err := st.Root()
	if err != nil {
		return err
	}
	if root == nil {
		return applyIntroduction(st, c, pinned)
	}
	if len(c.Parents) != 1 {
		return &RuleError{Rule: RuleLinear, Commit: c.ID, Detail: fmt.Sprintf("commit has %d parents; the index is one line of commits: rebase instead of merging", len(c.Parents))}
	}
	if !c.ParentTime.IsZero() && c.Time.Before(c.ParentTime) {
		return &RuleError{Rule: RuleTimeOrder, Commit: c.ID, Detail: fmt.Sprintf("commit time %s is before its parent's (%s): appends are dated by when they happen", c.Time.UTC().Format(time.RFC3339), c.ParentTime.UTC().Format(time.RFC3339))}
	}
	tx := st.child()
	a := &applier{st: tx, c: c, root: root, intro: pinned, published: map[string]blob.Ref{}, authored: map[string]bool{}, snapshots: map[string]bool{}}
	if len(c.Files) == 0 && a.enforced(RuleNonEmpty) {
		// A commit that adds nothing carries no signature: anyone's, it
		// would only date main (up to the server's clock skew ahead, so
		// that others' rebased commits seemed older than their parent)
		// and put words in the audit trail.
		return &RuleError{Rule: RuleNonEmpty, Commit: c.ID, Detail: "the commit adds no file: every commit of the index adds signed records (or a version's descriptor and its records)"}
	}
	for _, f := range c.Files {
		if err := a.checkChange(f); err != nil {
			return err
		}
	}
	files := append([]*File(nil), c.Files...)
	sort.SliceStable(files, func(i, j int) bool { return order(files[i]) < order(files[j]) })
	for _, f := range files {
		if err := a.apply(f); err != nil {
			return err
		}
	}
	for id := range a.published {
		if !a.authored[id] {
			name, ver := descriptor.SplitID(id)
			return &RuleError{Rule: RulePublishOnce, Commit: c.ID, Path: layout.VersionDir(name, ver) + "/" + layout.DescriptorFile, Detail: "a descriptor was added without its publisher's authored record"}
		}
	}
	for hex, recorded := range a.snapshots {
		if !recorded {
			return &RuleError{Rule: RuleSnapshot, Commit: c.ID, Path: layout.SnapshotDir(hex) + "/" + layout.SnapshotFile, Detail: "a snapshot was added without its curator's snapshot record"}
		}
	}
	st.merge(tx)
	return nil
}

type applier struct {
	st        *Overlay
	c         *Commit
	root      *Root
	intro     string              // the index's introduction (see record.Record.ActIndex)
	published map[string]blob.Ref // name@version → descriptor, added in this commit
	authored  map[string]bool
	snapshots map[string]bool // snapshot sha256 added in this commit → its record seen
}

// enforced reports whether rule holds for the commit being applied (see
// ruleSince). A commit without a time is held to every rule.
func (a *applier) enforced(rule string) bool {
	return a.c.Time.IsZero() || !a.c.Time.Before(ruleSince[rule])
}

func (a *applier) fail(rule string, f *File, detail string, args ...any) error {
	e := &RuleError{Rule: rule, Commit: a.c.ID, Detail: fmt.Sprintf(detail, args...)}
	if f != nil {
		e.Path = f.Path
		if f.Rec != nil {
			e.Record, e.Key = f.Rec.ID, f.Rec.Issuer()
			e.Apart = f.Rec.ApplyBy() != nil
		}
	}
	return e
}

func (a *applier) checkChange(f *File) error {
	switch f.Status {
	case 'A':
	case 'D':
		return a.fail(RuleAppendOnly, f, "file deleted; records are never removed: end a record with a revoke or supersede record instead")
	case 'M', 'T':
		return a.fail(RuleAppendOnly, f, "file modified; records never change: end a record with a revoke or supersede record instead")
	default:
		return a.fail(RuleAppendOnly, f, "change of status %c; a commit may only add files", f.Status)
	}
	if f.Mode != "100644" {
		return a.fail(RuleWellFormed, f, "mode %s; the index holds regular files only", f.Mode)
	}
	if f.Err != nil {
		e := a.fail(RuleWellFormed, f, "%v", f.Err)
		e.(*RuleError).Err = f.Err
		return e
	}
	return nil
}

func (a *applier) apply(f *File) error {
	if f.Desc != nil {
		return a.publish(f)
	}
	if f.Snap != nil {
		return a.addSnapshot(f)
	}
	rec := f.Rec
	want := ""
	switch {
	case rec.Kind == record.Root:
		if f.Loc.Place != layout.PlaceRoot {
			return a.fail(RuleWellFormed, f, "a root record belongs under root/")
		}
	case rec.Kind == record.Grant || rec.Kind == record.RevokeKey:
		if f.Loc.Place != layout.PlaceKey || f.Loc.KeyHex != rec.Statement.Subject[0].SHA256() {
			return a.fail(RuleWellFormed, f, "a %s record belongs in the directory of the key it names", rec.Kind)
		}
		want = f.Loc.RecordID
	case rec.Kind == record.Upstream:
		if f.Loc.Place != layout.PlaceUpstream {
			return a.fail(RuleWellFormed, f, "an upstream declaration belongs at upstreams/NAME/ID.json")
		}
		want = f.Loc.RecordID
	case rec.Kind == record.Snapshot:
		if f.Loc.Place != layout.PlaceSnapshot {
			return a.fail(RuleWellFormed, f, "a snapshot record belongs at snapshots/XX/SHA256/ID.json, beside its snapshot")
		}
		want = f.Loc.RecordID
	case rec.Kind == record.Label:
		if f.Loc.Place != layout.PlaceLabel {
			return a.fail(RuleWellFormed, f, "a label move belongs at labels/LABEL/ID.json")
		}
		want = f.Loc.RecordID
	case rec.Kind == record.Policy:
		if f.Loc.Place != layout.PlacePolicy {
			return a.fail(RuleWellFormed, f, "a policy version belongs at policies/NAME/ID.json")
		}
		want = f.Loc.RecordID
	case rec.Kind == record.Authored && f.Loc.Place == layout.PlaceUpstreamRecord:
		return a.fail(RuleUpstream, f, "a version is authored in the index that publishes it; upstreams/ holds this repository's certifications of upstream versions")
	default:
		pl := f.Loc.Place
		if pl != layout.PlaceRecord && pl != layout.PlaceUpstreamRecord && !(pl == layout.PlaceUpstream && rec.Kind == record.Revoke) {
			return a.fail(RuleWellFormed, f, "a %s record belongs in a package version's directory", rec.Kind)
		}
		want = f.Loc.RecordID
	}
	if want != "" && want != rec.ID {
		return a.fail(RuleWellFormed, f, "file is named %s.json but the record's id is %s", want, rec.ID)
	}
	if err := a.actWindow(f); err != nil {
		return err
	}
	var err error
	switch rec.Kind {
	case record.Authored:
		err = a.authoredRecord(f)
	case record.Revoke, record.Supersede:
		err = a.end(f)
	case record.Grant:
		err = a.grant(f)
	case record.RevokeKey:
		err = a.revokeKey(f)
	case record.Root:
		err = a.rotate(f)
	case record.Upstream:
		err = a.declareUpstream(f)
	case record.Snapshot:
		err = a.snapshotRecord(f)
	case record.Label:
		err = a.moveLabel(f)
	case record.Policy:
		err = a.publishPolicy(f)
	default:
		err = a.certification(f)
	}
	if err != nil {
		return err
	}
	if pl := f.Loc.Place; pl != layout.PlaceRoot {
		a.st.records[f.Loc.Dir+"/"+rec.ID] = &Rec{Kind: rec.Kind, Issuer: rec.Issuer()}
	}
	return nil
}

func (a *applier) publish(f *File) error {
	d := f.Desc
	if f.Loc.Name != d.Name || f.Loc.Version != d.Version {
		return a.fail(RuleWellFormed, f, "descriptor of %s sits at the path of %s@%s", d.ID(), f.Loc.Name, f.Loc.Version)
	}
	old, err := a.st.Version(d.Name, d.Version)
	if err != nil {
		return err
	}
	if old != nil {
		return a.fail(RulePublishOnce, f, "%s is already published (descriptor sha256:%s); a version is published once: publish a new version", d.ID(), old.Descriptor.SHA256)
	}
	u, err := a.st.UUID(d.Name)
	if err != nil {
		return err
	}
	if u != "" && u != d.UUID {
		return a.fail(RuleUUID, f, "%s has uuid %s but earlier versions of %s have %s", d.ID(), d.UUID, d.Name, u)
	}
	if u == "" {
		other, err := a.st.Folded(d.Name)
		if err != nil {
			return err
		}
		if other != "" && other != d.Name {
			return a.fail(RuleFoldedName, f, "new package %s differs only in case from %s, published here: names that differ only in case are one name; publish under %s, or choose another name", d.Name, other, other)
		}
	}
	v := versionOf(d, f.Data)
	a.st.versions[d.ID()] = v
	a.st.addPackage(d.Name, d.UUID)
	a.published[d.ID()] = v.Descriptor
	return nil
}

// signer checks the single signature of a package record: a key granted
// in the index whose signature verifies, and that may sign kind on name
// at the commit's time (Key.MaySign; a certify scope, with certifyOnly).
func (a *applier) signer(f *File, kind record.Kind, name string, certifyOnly bool) (*Key, error) {
	rec := f.Rec
	id := rec.Issuer()
	k, err := a.st.Key(id)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, a.fail(RuleSignature, f, "key %s is not granted in this repository: ask the root for a grant (cairn key grant)", id)
	}
	if !rec.VerifySignature(0, k.Pub) {
		return nil, a.fail(RuleSignature, f, "signature does not verify under key %s", id)
	}
	at := a.c.Time
	if a.c.Received.After(at) {
		at = a.c.Received
	}
	if err := k.MaySign(at, kind, name, certifyOnly); err != nil {
		return nil, a.refusedSigner(f, err)
	}
	return k, nil
}

// refusedSigner is a RuleError for what Key.MaySign refused.
func (a *applier) refusedSigner(f *File, err error) error {
	var se *SignError
	if !errors.As(err, &se) {
		return err
	}
	return a.fail(se.Rule, f, "%s", se.Error())
}

// actWindow checks a root act: it names an index and a time to be
// applied by (since act-index; signed in one process or apart), it is
// for this index (its index is this one's introduction), its window is
// at most record.MaxActWindow long, and the commit that adds it is dated
// within it.
func (a *applier) actWindow(f *File) error {
	rec := f.Rec
	by := rec.ApplyBy()
	if by == nil {
		// Before act-index, an act signed in one process named no index
		// nor time; since, every root act does but the introduction.
		if isRootAct(rec) && a.enforced(RuleActIndex) {
			return a.fail(RuleActIndex, f, "the %s act names no index: it could be copied from any index with the same root keys (staging into production); a root act names the index it is for since %s: make it again with this cairn", rec.Kind, ruleSince[RuleActIndex].Format(time.DateOnly))
		}
		return nil
	}
	switch idx := rec.ActIndex(); {
	case idx == "":
		return a.fail(RuleActWindow, f, "the %s act, signed apart, names no index: it could be applied to any index with the same root keys; prepare it again from this repository", rec.Kind)
	case a.intro == "" || idx != a.intro:
		return a.fail(RuleActWindow, f, "the %s act was prepared for the index whose introduction is %s, not this one (%s): an act applies only to the index it was prepared for", rec.Kind, idx, a.intro)
	}
	if w := rec.Window(); w > record.MaxActWindow {
		return a.fail(RuleActWindow, f, "the %s act's window (apply_by %s) is %s long; at most %s is allowed", rec.Kind, by.UTC().Format(time.RFC3339), w, record.MaxActWindow)
	}
	if a.c.Time.After(*by) {
		return a.fail(RuleActWindow, f, "the %s act was to be applied by %s; this commit is dated %s: prepare the act again and have its holders sign it", rec.Kind, by.UTC().Format(time.RFC3339), a.c.Time.UTC().Format(time.RFC3339))
	}
	return nil
}

// isRootAct says whether rec is an act of the root that binds to an
// index: a grant, a key's revocation, an upstream's declaration, a
// rotation (not the first root, which the introduction is).
func isRootAct(rec *record.Record) bool {
	switch p := rec.Predicate.(type) {
	case record.GrantPredicate, record.RevokeKeyPredicate, record.UpstreamPredicate:
		return true
	case record.RootPredicate:
		return p.Version > 1
	}
	return false
}

// rootSigned checks that a threshold of distinct root keys signed.
func (a *applier) rootSigned(f *File, root *Root) error {
	got := f.Rec.SignedBy(root.Keys)
	if len(got) < root.Threshold {
		// The signers that do not count, named: a key rotated out, or
		// one never a root key, given beside the root's.
		var others []string
		for _, s := range f.Rec.Signatures {
			if root.Keys[s.KeyID] == nil && !slices.Contains(others, s.KeyID) {
				others = append(others, s.KeyID)
			}
		}
		not := ""
		if len(others) > 0 {
			not = fmt.Sprintf(" (not root keys of that version: %s)", strings.Join(others, ", "))
		}
		err := a.fail(RuleThreshold, f, "signed by %d distinct root key(s) of root version %d; it needs %d%s", len(got), root.Version, root.Threshold, not)
		if len(others) > 0 {
			err.(*RuleError).hint = fmt.Sprintf("sign with %d of the root keys of version %d (cairn key list shows them), not with the keys named", root.Threshold, root.Version)
		}
		return err
	}
	return nil
}

func (a *applier) authoredRecord(f *File) error {
	rec, loc := f.Rec, f.Loc
	id := loc.Name + "@" + loc.Version
	p := rec.Predicate.(record.AuthoredPredicate)
	ref, fresh := a.published[id]
	if !fresh {
		return a.fail(RulePublishOnce, f, "authored record for %s, which this commit does not publish; a version is authored once, with its descriptor", id)
	}
	if a.authored[id] {
		return a.fail(RulePublishOnce, f, "%s has a second authored record in the same commit", id)
	}
	s := rec.Statement.Subject
	if len(s) != 1 || s[0].Name != id || s[0].SHA256() != ref.SHA256 || p.Descriptor != ref {
		return a.fail(RuleSubject, f, "authored record must name %s with descriptor %s", id, ref)
	}
	if _, err := a.signer(f, record.Authored, loc.Name, false); err != nil {
		return err
	}
	a.authored[id] = true
	return nil
}

func (a *applier) certification(f *File) error {
	if err := a.severity(f); err != nil {
		return err
	}
	rec, loc := f.Rec, f.Loc
	id := loc.Name + "@" + loc.Version
	if loc.Place == layout.PlaceUpstreamRecord {
		return a.upstreamCertification(f)
	}
	v, err := a.st.Version(loc.Name, loc.Version)
	if err != nil {
		return err
	}
	if v == nil {
		return a.fail(RuleSubject, f, "%s is not published", id)
	}
	s := rec.Statement.Subject
	if s[0].Name != id || s[0].SHA256() != v.Descriptor.SHA256 {
		return a.fail(RuleSubject, f, "subject 0 must be %s with its descriptor's sha256 %s", id, v.Descriptor.SHA256)
	}
	for _, art := range s[1:] {
		if !v.Artifacts[art.SHA256()] {
			return a.fail(RuleSubject, f, "subject %s (sha256:%s) is not an artifact of %s", art.Name, art.SHA256(), id)
		}
	}
	_, err = a.signer(f, rec.Kind, loc.Name, false)
	return err
}

// severity checks a vulnerable record's scores (rule severity).
func (a *applier) severity(f *File) error {
	p, ok := f.Rec.Predicate.(record.VulnsPredicate)
	if !ok || !a.enforced(RuleSeverity) {
		return nil
	}
	for _, r := range p.Scanner.Result {
		if err := r.CheckSeverity(); err != nil {
			return a.fail(RuleSeverity, f, "%v", err)
		}
	}
	return nil
}

// upstreamCertification checks this repository's certification of a
// version an upstream publishes (its security team's audit, say). The
// version is not in this index, so its subject is judged where it is
// read: beside the upstream's own descriptor, matched by digest.
func (a *applier) upstreamCertification(f *File) error {
	rec, loc := f.Rec, f.Loc
	id := loc.Name + "@" + loc.Version
	u, err := a.st.Upstream(loc.Upstream)
	if err != nil {
		return err
	}
	if u == nil || u.RevokedBy != "" {
		return a.fail(RuleUpstream, f, "this repository does not follow an upstream %s (the root declares upstreams: cairn upstream add)", loc.Upstream)
	}
	why, err := internalWhy(a.st, a.c.Time, loc.Name)
	if err != nil {
		return err
	}
	if why != "" {
		return a.fail(RuleUpstream, f, "%s: internal names win, so upstream %s's %s is never served here; certify the internal version", why, u.Name, loc.Name)
	}
	if rec.Statement.Subject[0].Name != id {
		return a.fail(RuleSubject, f, "subject 0 must be %s with the upstream descriptor's sha256", id)
	}
	_, err = a.signer(f, rec.Kind, loc.Name, true)
	return err
}

// addSnapshot checks a snapshot file: at the path of its digest, every
// entry a version published in this index with exactly that descriptor.
func (a *applier) addSnapshot(f *File) error {
	ref := blob.DigestBytes(f.Data)
	if ref.SHA256 != f.Loc.Snapshot {
		return a.fail(RuleWellFormed, f, "the snapshot's sha256 is %s, not the %s its path names", ref.SHA256, f.Loc.Snapshot)
	}
	for _, e := range f.Snap.Packages {
		v, err := a.st.Version(e.Name, e.Version)
		if err != nil {
			return err
		}
		if v == nil {
			return a.fail(RuleSnapshot, f, "entry %s@%s is not published in this index; a snapshot names published versions only", e.Name, e.Version)
		}
		if v.Descriptor != e.Descriptor {
			return a.fail(RuleSnapshot, f, "entry %s@%s names descriptor %s, but the version's descriptor is %s", e.Name, e.Version, e.Descriptor, v.Descriptor)
		}
	}
	a.st.snaps[ref.SHA256] = &ref
	a.snapshots[ref.SHA256] = false
	return nil
}

// snapshotRecord checks a curator's record of a snapshot: its subject is
// the snapshot beside it, and its key holds the snapshot scope.
func (a *applier) snapshotRecord(f *File) error {
	rec, hex := f.Rec, f.Loc.Snapshot
	p := rec.Predicate.(record.SnapshotPredicate)
	s := rec.Statement.Subject
	if len(s) != 1 || s[0].SHA256() != hex || s[0].Name != p.Name || p.Snapshot.SHA256 != hex {
		return a.fail(RuleSubject, f, "a snapshot record's only subject is the snapshot %s, named by its display name", hex)
	}
	ref, err := a.st.Snapshot(hex)
	if err != nil {
		return err
	}
	if ref == nil || *ref != p.Snapshot {
		return a.fail(RuleSnapshot, f, "snapshot %s is not in the index: a snapshot record comes with its snapshot.json", p.Snapshot)
	}
	if _, err := a.signer(f, record.Snapshot, p.Name, false); err != nil {
		return err
	}
	if _, fresh := a.snapshots[hex]; fresh {
		a.snapshots[hex] = true
	}
	return nil
}

// moveLabel checks a label move: to a snapshot of the index, by a key
// whose label scope matches, naming the label's latest move as previous.
func (a *applier) moveLabel(f *File) error {
	rec, name := f.Rec, f.Loc.Label
	p := rec.Predicate.(record.LabelPredicate)
	s := rec.Statement.Subject
	if p.Label != name || len(s) != 1 || s[0].Name != name || s[0].SHA256() != p.Snapshot.SHA256 {
		return a.fail(RuleSubject, f, "a move of label %s sits at labels/%s/ and its only subject is the snapshot, named %s", p.Label, p.Label, p.Label)
	}
	ref, err := a.st.Snapshot(p.Snapshot.SHA256)
	if err != nil {
		return err
	}
	if ref == nil || *ref != p.Snapshot {
		return a.fail(RuleLabel, f, "snapshot %s is not in this index: create it first (cairn snapshot create)", p.Snapshot)
	}
	cur, err := a.st.Label(name)
	if err != nil {
		return err
	}
	switch {
	case cur == nil && p.Previous != "":
		return a.fail(RuleLabel, f, "label %s has never been set, but the move names %.16s as previous", name, p.Previous)
	case cur != nil && p.Previous != cur.RecordID:
		return a.fail(RuleLabel, f, "label %s's latest move is %.16s, but this move follows %.16s: a move names the one it follows", name, cur.RecordID, p.Previous)
	}
	if _, err := a.signer(f, record.Label, name, false); err != nil {
		return err
	}
	a.st.labels[name] = &LabelMove{Label: name, Snapshot: p.Snapshot, RecordID: rec.ID, Issuer: rec.Issuer()}
	return nil
}

// publishPolicy checks a new version of a named policy: its text parses
// and compiles as a policy (policy.Parse), it names the policy's latest
// version as previous (one chain, as label moves), and it is signed by a
// threshold of root keys or by one key granted policy:PATTERN for the
// name.
func (a *applier) publishPolicy(f *File) error {
	rec, name := f.Rec, f.Loc.Policy
	p := rec.Predicate.(record.PolicyPredicate)
	s := rec.Statement.Subject
	if p.Name != name || len(s) != 1 || s[0].Name != name || s[0].SHA256() != record.PolicyDigest(p.Policy) {
		return a.fail(RuleSubject, f, "a version of policy %s sits at policies/%s/ and its only subject is its text, named %s, with the text's sha256", p.Name, p.Name, p.Name)
	}
	cur, err := a.st.Policy(name)
	if err != nil {
		return err
	}
	switch {
	case cur == nil && p.Previous != "":
		return a.fail(RulePolicy, f, "policy %s has no version yet, but this one names %.16s as previous", name, p.Previous)
	case cur != nil && p.Previous != cur.RecordID:
		return a.fail(RulePolicy, f, "policy %s's latest version is %.16s, but this one follows %.16s: a version names the one it follows (publish again on top of the latest)", name, cur.RecordID, p.Previous)
	}
	if len(rec.SignedBy(a.root.Keys)) < a.root.Threshold {
		if len(rec.Signatures) != 1 {
			return a.fail(RuleThreshold, f, "several signatures but below the root threshold of %d: a policy is signed by a threshold of root keys or by one key granted policy:%s", a.root.Threshold, name)
		}
		if _, err := a.signer(f, record.Policy, name, false); err != nil {
			return err
		}
	}
	if _, err := policy.Parse(layout.PolicyDir(name), []byte(p.Policy)); err != nil {
		e := a.fail(RulePolicy, f, "the text of policy %s does not compile: %v", name, err)
		e.(*RuleError).Err = err
		return e
	}
	a.st.policies[name] = &PolicyVersion{Name: name, Digest: s[0].SHA256(), RecordID: rec.ID, Issuer: rec.Issuer()}
	return nil
}

// declareUpstream checks the root's declaration of an upstream: once per
// name, signed by a threshold of root keys.
func (a *applier) declareUpstream(f *File) error {
	rec := f.Rec
	p := rec.Predicate.(record.UpstreamPredicate)
	s := rec.Statement.Subject
	if p.Name != f.Loc.Upstream || len(s) != 1 || s[0].Name != p.Name || s[0].SHA256() != p.Introduction {
		return a.fail(RuleWellFormed, f, "an upstream declaration sits at upstreams/%s/ and its only subject is the upstream's introduction, named %s", p.Name, p.Name)
	}
	if err := a.rootSigned(f, a.root); err != nil {
		return err
	}
	old, err := a.st.Upstream(p.Name)
	if err != nil {
		return err
	}
	if old != nil {
		return a.fail(RuleUpstream, f, "upstream %s is already declared (record %.16s); a name is declared once: use another name", p.Name, old.RecordID)
	}
	a.st.ups[p.Name] = &Upstream{Name: p.Name, URL: p.URL, Introduction: p.Introduction, RecordID: rec.ID}
	return nil
}

// end checks a revoke or supersede record: it ends a package record in
// its directory, and comes from that record's issuer (the same key, or a
// key the root granted to the same holder) or from a threshold of root keys.
func (a *applier) end(f *File) error {
	rec, loc := f.Rec, f.Loc
	s := rec.Statement.Subject
	if len(s) != 1 || s[0].Name != "record" {
		return a.fail(RuleWellFormed, f, "a %s record's only subject is the record it ends, named \"record\"", rec.Kind)
	}
	targetID := s[0].SHA256()
	target, err := a.st.Record(loc.Dir, targetID)
	if err != nil {
		return err
	}
	if target == nil {
		return a.fail(RuleSubject, f, "record %.16s is not in %s; a revoke or supersede record sits beside the record it ends", targetID, loc.Dir)
	}
	byRoot := len(rec.SignedBy(a.root.Keys)) >= a.root.Threshold
	if target.Kind == record.Upstream && rec.Kind == record.Revoke {
		return a.unfollow(f, byRoot)
	}
	if !target.Kind.IsPackage() {
		return a.fail(RuleSubject, f, "record %.16s is a %s record; only package records (and, by the root, upstream declarations) can be ended", targetID, target.Kind)
	}
	again := target.EndedBy != ""
	if again && a.enforced(RuleEndOnce) {
		hint := "it no longer counts: nothing more to do"
		if rec.Kind == record.Supersede {
			hint = "certify anew instead of superseding an ended record"
		}
		return a.fail(RuleEndOnce, f, "record %.16s was already %s by record %.16s: a record is ended once; %s", targetID, target.ended(), target.EndedBy, hint)
	}
	if !byRoot {
		if len(rec.Signatures) != 1 {
			return a.fail(RuleThreshold, f, "several signatures but below the root threshold of %d", a.root.Threshold)
		}
		k, err := a.st.Key(rec.Issuer())
		if err != nil {
			return err
		}
		if k == nil || !rec.VerifySignature(0, k.Pub) {
			return a.fail(RuleSignature, f, "signature does not verify under a key granted in this repository")
		}
		if err := k.MaySign(a.c.Time, rec.Kind, loc.Dir, false); err != nil {
			return a.refusedSigner(f, err)
		}
		if k.ID != target.Issuer {
			orig, err := a.st.Key(target.Issuer)
			if err != nil {
				return err
			}
			if orig == nil || orig.Holder() == "" || orig.Holder() != k.Holder() {
				holder := "?"
				if orig != nil {
					holder = orig.Holder()
				}
				return a.fail(RuleIssuerOnly, f, "record %.16s was issued by %s (holder %s); %s (holder %s) may not %s it: only its issuer or the root can", targetID, target.Issuer, holder, k.ID, k.Holder(), rec.Kind)
			}
		}
	}
	if rec.Kind == record.Supersede {
		repl := rec.Predicate.(record.EndPredicate).Replacement
		r, err := a.st.Record(loc.Dir, repl)
		if err != nil {
			return err
		}
		if r == nil || repl == targetID || !r.Kind.IsPackage() {
			return a.fail(RuleSubject, f, "replacement %.16s must be another package record in %s", repl, loc.Dir)
		}
		if !byRoot && r.Issuer != rec.Issuer() {
			return a.fail(RuleIssuerOnly, f, "replacement %.16s was issued by %s, not by the superseding key", repl, r.Issuer)
		}
		if r.EndedBy != "" && a.enforced(RuleEndOnce) {
			return a.fail(RuleEndOnce, f, "replacement %.16s was already %s by record %.16s: a record is ended once; name an active record as the replacement", repl, r.ended(), r.EndedBy)
		}
	}
	if again {
		return nil // before end-once: the first end stands
	}
	ended := *target
	ended.EndedBy, ended.EndKind = rec.ID, rec.Kind
	a.st.records[loc.Dir+"/"+targetID] = &ended
	return nil
}

// unfollow checks the root's revocation of an upstream declaration.
func (a *applier) unfollow(f *File, byRoot bool) error {
	if !byRoot {
		return a.fail(RuleThreshold, f, "only a threshold of root keys (%d) ends an upstream declaration", a.root.Threshold)
	}
	u, err := a.st.Upstream(f.Loc.Upstream)
	if err != nil {
		return err
	}
	if u.RevokedBy != "" {
		return a.fail(RuleUpstream, f, "upstream %s was already revoked by record %.16s", u.Name, u.RevokedBy)
	}
	c := *u
	c.RevokedBy = f.Rec.ID
	a.st.ups[u.Name] = &c
	return nil
}

func (a *applier) grant(f *File) error {
	rec := f.Rec
	p := rec.Predicate.(record.GrantPredicate)
	pub, _, err := keys.ParsePublic([]byte(p.Key))
	if err != nil {
		return a.fail(RuleWellFormed, f, "grant key: %v", err)
	}
	s := rec.Statement.Subject
	if len(s) != 1 || s[0].Name != keys.ID(pub) || s[0].SHA256() != keys.IDHex(pub) {
		return a.fail(RuleWellFormed, f, "a grant's only subject is the granted key %s", keys.ID(pub))
	}
	if err := a.rootSigned(f, a.root); err != nil {
		return err
	}
	k, err := a.st.updateKey(keys.ID(pub))
	if err != nil {
		return err
	}
	if k.RevokedBy != "" {
		err := a.fail(RuleKeyRevoked, f, "key %s was revoked by record %.16s; a revoked key is never granted again: make a new key", k.ID, k.RevokedBy)
		err.(*RuleError).hint = "the key granted is the revoked one, not the root's: make a new key for its holder (cairn key new) and grant that one"
		return err
	}
	// A key's records go by its holder's name (only their issuer ends
	// them, a policy's by: names it): a second name would make the
	// holder's key another's.
	if h := k.Holder(); h != "" && h != p.Holder && a.enforced(RuleOneHolder) {
		return a.fail(RuleOneHolder, f, "key %s is held by %s, and this grant names %s: a key has one holder, whose name its records go by; grant it as %s, or give %s a key of its own", k.ID, h, p.Holder, h, p.Holder)
	}
	return k.addGrant(rec.ID, p)
}

func (a *applier) revokeKey(f *File) error {
	rec := f.Rec
	s := rec.Statement.Subject
	k, err := a.st.Key(s[0].Name)
	if err != nil {
		return err
	}
	if len(s) != 1 || k == nil || keys.IDHex(k.Pub) != s[0].SHA256() {
		return a.fail(RuleSubject, f, "key %s is not granted in this repository", s[0].Name)
	}
	if err := a.rootSigned(f, a.root); err != nil {
		return err
	}
	k, _ = a.st.updateKey(k.ID)
	k.RevokedBy, k.Reason = rec.ID, rec.Predicate.(record.RevokeKeyPredicate).Reason
	return nil
}

func (a *applier) rotate(f *File) error {
	rec := f.Rec
	p := rec.Predicate.(record.RootPredicate)
	if f.Loc.RootVersion != p.Version || p.Version != a.root.Version+1 || p.Previous != a.root.RecordID {
		if p.Version <= a.root.Version && p.Previous != a.root.RecordID {
			// Prepared against a root that another rotation has replaced
			// since: no signature mends it.
			err := a.fail(RuleRootRotation, f, "this rotation was prepared as root version %d, after record %.16s; the root has moved since, to version %d (record %.16s): it no longer applies", p.Version, p.Previous, a.root.Version, a.root.RecordID)
			err.(*RuleError).hint = "prepare the rotation again from the current root (cairn root rotate … --unsigned) and have its holders sign that one"
			return err
		}
		return a.fail(RuleRootRotation, f, "root record at %s is version %d: it must be version %d, after version %d (record %.16s), and name that record as previous", f.Path, p.Version, a.root.Version+1, a.root.Version, a.root.RecordID)
	}
	next, err := checkRootRecord(rec)
	if err != nil {
		return a.fail(RuleWellFormed, f, "%v", err)
	}
	if err := a.rootSigned(f, a.root); err != nil {
		return err
	}
	if got := rec.SignedBy(next.Keys); len(got) < next.Threshold {
		return a.fail(RuleThreshold, f, "signed by %d distinct key(s) of the new root; it needs %d", len(got), next.Threshold)
	}
	a.st.root, a.root = next, next
	return nil
}

// checkRootRecord checks a root record's subjects against its keys.
func checkRootRecord(rec *record.Record) (*Root, error) {
	r, err := rootOf(rec)
	if err != nil {
		return nil, err
	}
	if len(rec.Statement.Subject) != len(r.Keys) {
		return nil, fmt.Errorf("a root record's subjects are exactly its keys")
	}
	for _, s := range rec.Statement.Subject {
		pub, ok := r.Keys[s.Name]
		if !ok || keys.IDHex(pub) != s.SHA256() {
			return nil, fmt.Errorf("subject %s is not one of the root keys", s.Name)
		}
	}
	return r, nil
}

func applyIntroduction(st *Overlay, c *Commit, pinned string) error {
	fail := func(f *File, format string, args ...any) error {
		e := &RuleError{Rule: RuleIntroduction, Commit: c.ID, Detail: fmt.Sprintf(format, args...)}
		if f != nil {
			e.Path = f.Path
			if f.Rec != nil {
				e.Record = f.Rec.ID
			}
			e.Err = f.Err
		}
		return e
	}
	if len(c.Parents) != 0 {
		return fail(nil, "the first commit of an index has no parent")
	}
	if len(c.Files) != 1 || c.Files[0].Path != layout.RootPath(1) || c.Files[0].Status != 'A' {
		return fail(nil, "the first commit adds %s and nothing else", layout.RootPath(1))
	}
	f := c.Files[0]
	if f.Err != nil || f.Rec == nil || f.Rec.Kind != record.Root {
		return fail(f, "not a root record: %v", f.Err)
	}
	if pinned != "" && f.Rec.ID != pinned {
		return fail(f, "this index starts with root record %s, but the repository is pinned to introduction %s: it is another repository", f.Rec.ID, pinned)
	}
	p := f.Rec.Predicate.(record.RootPredicate)
	if p.Version != 1 {
		return fail(f, "the introduction is root version 1, not %d", p.Version)
	}
	root, err := checkRootRecord(f.Rec)
	if err != nil {
		return fail(f, "%v", err)
	}
	if got := f.Rec.SignedBy(root.Keys); len(got) < root.Threshold {
		return &RuleError{Rule: RuleThreshold, Commit: c.ID, Path: f.Path, Record: f.Rec.ID, Detail: fmt.Sprintf("the introduction is signed by %d distinct root key(s); it needs %d", len(got), root.Threshold)}
	}
	st.root = root
	return nil
}
